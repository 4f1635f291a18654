"""The gateway's HTTP surface on a real database: keys, audit, idempotency, problems.

PostgreSQL is real (API keys, audit log, idempotency keys); the clinic's side
(commands, queries, workflows) is the in-memory domain and port fakes of the unit
tests, so each test controls what the functions see.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from adapters.settings import Settings
from api.ai import mount_ai_gateway, run_ai_gateway
from domain.commands import RegisterPatient
from domain.cqrs import CommandContext
from domain.events import LeadCreated
from domain.queries import GetPatient, PatientView
from tests.unit.gateway_fakes import NOW, CannedQueries, MemoryCommands, RecordingWorkflows

PHONE = "+40721234567"


@dataclass
class Stack:
    app: FastAPI
    http: httpx.AsyncClient
    pool: asyncpg.Pool
    commands: MemoryCommands
    queries: CannedQueries
    workflows: RecordingWorkflows

    async def key(self, clinic: str, scopes: set[str], **limits: Any) -> str:
        _, plaintext = await self.app.state.api_keys.create(clinic, scopes, "test", **limits)
        return plaintext

    async def execute(self, key: str, body: dict[str, Any], **headers: str) -> httpx.Response:
        return await self.http.post(
            "/ai/execute", json=body, headers={"Authorization": f"Bearer {key}", **headers}
        )


@pytest_asyncio.fixture(loop_scope="session")
async def stack(pg_pool: asyncpg.Pool) -> AsyncIterator[Stack]:
    settings = Settings.model_validate(
        {"max_calls_per_request": 3, "rate_limit_per_key_per_s": 1000, "rate_limit_burst": 1000}
    )
    commands, queries, workflows = MemoryCommands(), CannedQueries(), RecordingWorkflows()
    queries.answer(GetPatient, lambda q: PatientView(patient_id="pat-1", phone=PHONE))
    app = FastAPI()
    mount_ai_gateway(app)
    resources = run_ai_gateway(
        app,
        pool=pg_pool,
        settings=settings,
        commands=commands,
        queries=queries,
        workflows=workflows,
        clock=lambda: NOW,
    )
    async with (
        in_own_task(resources),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway"
        ) as http,
    ):
        yield Stack(app, http, pg_pool, commands, queries, workflows)


@asynccontextmanager
async def in_own_task(resources: AbstractAsyncContextManager[Any]) -> AsyncIterator[None]:
    """Enter and leave ``resources`` in one task (the MCP SDK's task group requires it)."""
    entered, leave = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with resources:
            entered.set()
            await leave.wait()

    holder = asyncio.create_task(hold())
    await asyncio.wait([holder, asyncio.create_task(entered.wait())], return_when="FIRST_COMPLETED")
    if holder.done():
        holder.result()  # entering failed: raise its error
    try:
        yield
    finally:
        leave.set()
        await holder


def one_call(function: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function_call", "calls": [{"function": function, "arguments": arguments}]}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["code"] == code
    assert body["type"].endswith(code.lower().replace("_", "-")) and body["title"]
    assert isinstance(body["errors"], list) and body["detail"]
    return body


# --- authentication ------------------------------------------------------------------------


async def test_no_key_or_a_bad_key_is_401_problem(stack: Stack):
    for headers in ({}, {"Authorization": "Bearer mc_nope"}, {"X-API-Key": "garbage"}):
        response = await stack.http.get("/ai/functions", headers=headers)
        assert_problem(response, 401, "UNAUTHENTICATED")
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_bearer_and_x_api_key_both_authenticate(stack: Stack):
    key = await stack.key("clinic-auth", {"read"})
    for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
        assert (await stack.http.get("/ai/categories", headers=headers)).status_code == 200


async def test_the_clinic_comes_from_the_key_never_from_a_header(stack: Stack):
    key = await stack.key("clinic-own", {"write"})
    response = await stack.execute(
        key,
        one_call("score_lead", {"phone": "0721 234 567", "channel": "web"}),
        **{"X-Clinic-Id": "clinic-victim", "X-Tenant": "clinic-victim"},
    )
    assert response.status_code == 200 and response.json()["success"]
    assert next(type(e) for e in await stack.commands.events("clinic-own")) is LeadCreated
    assert await stack.commands.events("clinic-victim") == []
    rows = await stack.pool.fetch(
        "SELECT DISTINCT clinic_id FROM audit_log WHERE request_id = $1",
        response.json()["requestId"],
    )
    assert [r["clinic_id"] for r in rows] == ["clinic-own"]


async def test_a_key_over_its_rate_gets_429_with_retry_after(stack: Stack):
    key = await stack.key("clinic-rate", {"read"}, rate_per_s=0.5, burst=2)
    headers = {"X-API-Key": key}
    assert (await stack.http.get("/ai/categories", headers=headers)).status_code == 200
    assert (await stack.http.get("/ai/categories", headers=headers)).status_code == 200
    limited = await stack.http.get("/ai/categories", headers=headers)
    body = assert_problem(limited, 429, "RATE_LIMITED")
    assert int(limited.headers["retry-after"]) >= 1 and body["retryAfter"] >= 1


async def test_a_revoked_key_is_refused_at_once(stack: Stack):
    admin = await stack.key("clinic-rev", {"admin"})
    created = await stack.http.post(
        "/ai/keys", json={"name": "agent", "scopes": ["read"]}, headers={"X-API-Key": admin}
    )
    assert created.status_code == 201
    agent, key_id = created.json()["key"], created.json()["keyId"]
    assert (await stack.http.get("/ai/categories", headers={"X-API-Key": agent})).status_code == 200

    revoked = await stack.http.delete(f"/ai/keys/{key_id}", headers={"X-API-Key": admin})
    assert revoked.status_code == 204
    refused = await stack.http.get("/ai/categories", headers={"X-API-Key": agent})
    assert_problem(refused, 401, "UNAUTHENTICATED")


async def test_key_management_needs_admin_and_stays_in_the_clinic(stack: Stack):
    reader = await stack.key("clinic-km", {"read"})
    denied = await stack.http.get("/ai/keys", headers={"X-API-Key": reader})
    assert assert_problem(denied, 403, "FORBIDDEN")["missing"] == ["admin"]

    admin = await stack.key("clinic-km", {"admin"})
    other, _ = await stack.app.state.api_keys.create("clinic-elsewhere", {"read"})
    gone = await stack.http.delete(f"/ai/keys/{other.key_id}", headers={"X-API-Key": admin})
    assert_problem(gone, 404, "NOT_FOUND")
    listed = (await stack.http.get("/ai/keys", headers={"X-API-Key": admin})).json()["keys"]
    assert {k["clinicId"] for k in listed} == {"clinic-km"}
    assert all("key" not in k for k in listed)  # secrets are never listed


# --- discovery -------------------------------------------------------------------------------


async def test_functions_can_be_filtered_by_category_and_words(stack: Stack):
    headers = {"X-API-Key": await stack.key("clinic-d", {"read"})}
    listed = (await stack.http.get("/ai/functions", headers=headers)).json()
    assert listed["count"] == 12
    appointments = await stack.http.get("/ai/functions?category=appointments", headers=headers)
    names = [f["name"] for f in appointments.json()["functions"]]
    assert names == ["schedule_appointment", "get_available_slots", "cancel_appointment"]
    unknown = await stack.http.get("/ai/functions?category=billing", headers=headers)
    assert (
        "appointments" in assert_problem(unknown, 422, "INVALID_ARGUMENTS")["errors"][0]["expected"]
    )
    searched = await stack.http.get("/ai/functions?search=consent%20gdpr", headers=headers)
    assert [f["name"] for f in searched.json()["functions"]] == ["record_consent"]
    allowed = {f["name"]: f["allowed"] for f in listed["functions"]}
    assert allowed["get_patient"] is True and allowed["send_whatsapp"] is False


async def test_an_unknown_function_is_a_404_problem_listing_the_names(stack: Stack):
    headers = {"X-API-Key": await stack.key("clinic-d", {"read"})}
    found = await stack.http.get("/ai/functions/check_consent", headers=headers)
    assert found.json()["parameters"]["properties"]["consentTypes"]
    missing = await stack.http.get("/ai/functions/check_consnt", headers=headers)
    body = assert_problem(missing, 404, "FUNCTION_NOT_FOUND")
    assert body["suggestions"][0] == "check_consent" and len(body["available"]) == 12


async def test_tool_lists_hold_only_what_the_key_may_call(stack: Stack):
    headers = {"X-API-Key": await stack.key("clinic-d", {"read", "messaging"})}
    openai = (await stack.http.get("/ai/openai/tools", headers=headers)).json()
    anthropic = (await stack.http.get("/ai/anthropic/tools", headers=headers)).json()
    names = [t["function"]["name"] for t in openai]
    assert names == [t["name"] for t in anthropic]
    assert "send_whatsapp" in names and "get_patient" in names and "score_lead" not in names
    assert all(t["function"]["strict"] is True for t in openai)
    categories = (await stack.http.get("/ai/categories", headers=headers)).json()
    assert [c["name"] for c in categories][:2] == ["leads", "patients"]
    assert categories[0]["allowed"] == []


async def test_the_openapi_document_spells_out_every_request_variant(stack: Stack):
    headers = {"X-API-Key": await stack.key("clinic-d", {"read"})}
    doc = (await stack.http.get("/ai/schema", headers=headers)).json()
    schemas = doc["components"]["schemas"]
    assert doc["openapi"].startswith("3.") and {"/ai/execute", "/ai/keys"} <= set(doc["paths"])
    assert {"FunctionCallRequest", "NaturalRequest", "WorkflowRequest"} <= set(schemas)
    assert len(schemas["Call"]["oneOf"]) == 12
    assert schemas["Call"]["discriminator"]["mapping"]["get_patient"].endswith("GetPatientCall")
    assert schemas["ScheduleAppointmentArguments"]["required"] == [
        "patientId",
        "serviceType",
        "preferredDate",
    ]
    assert "ScheduleAppointmentResult" in schemas and "Problem" in schemas
    execute = doc["paths"]["/ai/execute"]["post"]
    assert {"422", "429", "409"} <= set(execute["responses"])


# --- execution -------------------------------------------------------------------------------


async def test_execute_answers_results_and_audits_in_postgres(stack: Stack):
    key = await stack.key("clinic-x", {"read"})
    response = await stack.execute(
        key,
        {
            "type": "function_call",
            "calls": [
                {"function": "get_patient", "arguments": {"patientId": "pat-1"}, "callId": "a"},
                {"function": "update_patient", "arguments": {"patientId": "p", "updates": {}}},
            ],
        },
    )
    body = response.json()
    assert response.status_code == 200 and body["type"] == "function_call"
    assert body["success"] is False and body["traceId"] and body["totalExecutionTimeMs"] >= 0
    ok, denied = body["results"]
    assert ok["callId"] == "a" and ok["result"]["patient"]["phone"] == PHONE
    assert ok["executionTimeMs"] >= 0 and ok["executed"] is True
    assert denied["callId"] == "c2" and denied["error"]["code"] == "FORBIDDEN"
    rows = await stack.pool.fetch(
        "SELECT function, decision, reason, clinic_id, trace_id FROM audit_log "
        "WHERE request_id = $1 ORDER BY id",
        body["requestId"],
    )
    assert [(r["function"], r["decision"]) for r in rows] == [
        ("get_patient", "allowed"),
        ("update_patient", "denied"),
    ]
    assert {r["trace_id"] for r in rows} == {body["traceId"]}


async def test_too_many_calls_is_a_422_problem_not_a_silent_drop(stack: Stack):
    key = await stack.key("clinic-x", {"read"})
    calls = [{"function": "get_patient", "arguments": {"patientId": "p"}}] * 4
    response = await stack.execute(key, {"type": "function_call", "calls": calls})
    body = assert_problem(response, 422, "INVALID_ARGUMENTS")
    assert body["limit"] == 3 and body["errors"][0]["path"] == "calls"


async def test_a_malformed_request_names_the_bad_fields(stack: Stack):
    key = await stack.key("clinic-x", {"read"})
    response = await stack.execute(key, {"type": "natural", "query": "", "execute": "maybe"})
    body = assert_problem(response, 422, "INVALID_ARGUMENTS")
    assert {e["path"] for e in body["errors"]} == {"query", "execute"}
    unknown = await stack.execute(key, {"type": "telepathy"})
    assert assert_problem(unknown, 422, "INVALID_ARGUMENTS")["errors"]


async def test_min_position_reaches_the_query_side(stack: Stack):
    key = await stack.key("clinic-x", {"read", "write"})
    wrote = await stack.execute(key, one_call("score_lead", {"phone": PHONE, "channel": "web"}))
    position = int(wrote.headers["x-position"])
    assert wrote.json()["position"] == position > 0
    stack.queries.asked.clear()
    await stack.execute(
        key, one_call("get_patient", {"patientId": "pat-1"}), **{"X-Min-Position": str(position)}
    )
    assert stack.queries.asked[-1][1] == position


@pytest.mark.parametrize("raw", ["-1", "1.5", "abc", "9223372036854775808", "1" * 40, " 7"])
async def test_a_position_that_is_no_bigint_is_a_422_naming_the_header(stack: Stack, raw: str):
    key = await stack.key("clinic-x", {"read"})
    response = await stack.execute(
        key, one_call("get_patient", {"patientId": "pat-1"}), **{"X-Min-Position": raw}
    )
    body = assert_problem(response, 422, "INVALID_ARGUMENTS")
    assert body["errors"][0]["path"] == "X-Min-Position"


@pytest.mark.parametrize("rate", [0, 1e-300, 0.001, 1e6])
async def test_a_key_rate_outside_its_bounds_is_refused(stack: Stack, rate: float):
    admin = await stack.key("clinic-rate", {"admin"})
    response = await stack.http.post(
        "/ai/keys", json={"scopes": ["read"], "ratePerS": rate}, headers={"X-API-Key": admin}
    )
    body = assert_problem(response, 422, "INVALID_ARGUMENTS")
    assert body["errors"][0]["path"] == "ratePerS"


# --- idempotency -----------------------------------------------------------------------------


async def test_a_retried_request_gets_the_first_response_and_runs_nothing(stack: Stack):
    key = await stack.key("clinic-idem", {"write"})
    await stack.commands.execute(
        RegisterPatient(patient_id="pat-idem", phone=PHONE),
        CommandContext(clinic_id="clinic-idem", actor="seed"),
    )
    body = one_call("update_patient", {"patientId": "pat-idem", "updates": {"notes": "first"}})
    first = await stack.execute(key, body, **{"Idempotency-Key": "retry-1"})
    executed = len(stack.commands.executed)
    again = await stack.execute(key, body, **{"Idempotency-Key": "retry-1"})

    assert again.status_code == first.status_code == 200
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert len(stack.commands.executed) == executed  # nothing ran again
    reused = await stack.execute(
        key,
        one_call("update_patient", {"patientId": "pat-idem", "updates": {"notes": "second"}}),
        **{"Idempotency-Key": "retry-1"},
    )
    assert_problem(reused, 409, "CONFLICT")


async def test_concurrent_duplicates_run_once(stack: Stack):
    key = await stack.key("clinic-idem", {"write"})
    body = one_call(
        "trigger_workflow", {"workflow": "patient-journey", "payload": {"patientId": "p"}}
    )
    before = len(stack.workflows.of("catalogue"))
    answers = await asyncio.gather(
        *(stack.execute(key, body, **{"Idempotency-Key": "dup-1"}) for _ in range(5))
    )
    assert len(stack.workflows.of("catalogue")) == before + 1
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(200) >= 1 and set(statuses) <= {200, 409}
    done = [a for a in answers if a.status_code == 200]
    assert len({json.dumps(a.json()["results"]) for a in done}) == 1
