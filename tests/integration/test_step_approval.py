"""Approving and rejecting held AI-plan steps over HTTP, on the real system.

``POST /ai/workflows/{workflowId}/steps/{stepId}/approve`` and ``.../reject``, served by
the real app (``stack``: uvicorn over ``api.app.create_app``, the worker, the projector,
PostgreSQL, the Temporal dev server; WhatsApp through the sandbox transport). Its
Claude planner talks to a fake Anthropic API, so a natural request can plan a step that
waits for approval and the answer's evidence names the route to decide it.

A plan started through ``/ai/execute`` with ``requireApproval`` holds its
``send_whatsapp`` step in ``waiting_approval``; the tests decide it with keys of the
plan's clinic, of another clinic and without the function's scopes, and check what the
event store, the sandbox outbox and the audit log hold afterwards.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from tests.fakes import FakeAnthropic
from tests.fixtures.stack import SHARED, Stack, running_stack, temporal_address

MESSAGE_EVENTS = ("WhatsAppMessageQueued", "WhatsAppMessageSent")


@pytest.fixture(scope="module")
def anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(
    pg_dsn: str, temporal_env: WorkflowEnvironment, anthropic: FakeAnthropic
) -> AsyncIterator[Stack]:
    """The real system (``tests.fixtures.stack``) with Claude planning on the fake API."""
    async with running_stack(
        pg_dsn,
        temporal_address(temporal_env),
        ANTHROPIC_API_KEY=anthropic.api_key,
        ANTHROPIC_BASE_URL=anthropic.url,
        ANTHROPIC_MODEL="claude-test",
    ) as running:
        yield running


# --- helpers -------------------------------------------------------------------------------


def send_step(phone: str, text: str) -> dict[str, Any]:
    return {
        "stepId": "send",
        "function": "send_whatsapp",
        "arguments": {"to": phone, "message": text},
    }


async def held_plan(stack: Stack, key: str, *steps: dict[str, Any]) -> tuple[str, str]:
    """Start a plan whose ``send`` step waits for approval: (workflow id, request id)."""
    response = await stack.execute(
        key, {"type": "workflow", "requireApproval": True, "steps": list(steps)}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] and body["workflowId"], body
    workflow_id: str = body["workflowId"]
    await stack.until_workflow(key, workflow_id, lambda s: step_of(s, "send") == "waiting_approval")
    return workflow_id, body["requestId"]


def step_of(status: dict[str, Any], step_id: str) -> str | None:
    return next((s["status"] for s in status["steps"] if s["stepId"] == step_id), None)


async def decide(
    stack: Stack, key: str, workflow_id: str, step_id: str, verb: str, body: Any = None
) -> httpx.Response:
    async with stack.client(key) as http:
        path = f"/ai/workflows/{workflow_id}/steps/{step_id}/{verb}"
        return await (http.post(path) if body is None else http.post(path, json=body))


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["code"] == code and body["detail"], body
    return body


async def message_events(stack: Stack, clinic_id: str, correlation_id: str) -> list[str]:
    """Message events caused by one request (a plan's steps carry its request id)."""
    rows = await stack.pool.fetch(
        "SELECT event_type FROM events WHERE clinic_id = $1"
        " AND metadata->>'correlation_id' = $2 AND event_type = ANY($3::text[])"
        " ORDER BY global_position",
        clinic_id,
        correlation_id,
        list(MESSAGE_EVENTS),
    )
    return [r["event_type"] for r in rows]


async def outbox_rows(stack: Stack, text: str) -> int:
    count: int = await stack.pool.fetchval(
        "SELECT count(*) FROM whatsapp_sandbox_outbox WHERE body = $1", text
    )
    return count


async def decisions(stack: Stack, clinic_id: str, workflow_id: str) -> list[dict[str, Any]]:
    """The audit rows of decisions on this workflow's steps (approved/rejected/denied)."""
    rows = await stack.pool.fetch(
        "SELECT key_id, function, decision, reason, surface, request_id, trace_id"
        " FROM audit_log WHERE clinic_id = $1 AND reason LIKE '%' || $2 ORDER BY id",
        clinic_id,
        f"of {workflow_id}",
    )
    return [dict(r) for r in rows]


def unique(label: str) -> str:
    return f"{label} {uuid.uuid4().hex[:10]}"


# --- approve ---------------------------------------------------------------------------------


async def test_an_approved_step_sends_exactly_one_message(stack: Stack) -> None:
    a = stack.tenant("clinic-a")
    text = unique("Vă așteptăm mâine la 10:30.")
    workflow_id, request_id = await held_plan(stack, a.admin_key, send_step(a.only_phone, text))
    # held: nothing queued, nothing sent
    assert await message_events(stack, a.clinic_id, request_id) == []
    assert await outbox_rows(stack, text) == 0

    response = await decide(stack, a.admin_key, workflow_id, "send", "approve", {"reason": "ok"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["workflowId"] == workflow_id and body["stepId"] == "send"
    assert body["function"] == "send_whatsapp" and body["decision"] == "approved"
    assert body["status"] == "completed" and body["error"] is None, body
    assert body["finishedAt"] is not None
    assert body["traceId"] == response.headers["x-trace-id"]
    sent = body["result"]
    await stack.until_workflow(
        a.admin_key, sent["deliveryWorkflowId"], lambda s: s["status"] == "completed"
    )
    stream = await stack.pool.fetch(
        "SELECT event_type FROM events WHERE clinic_id = $1 AND stream_id = $2 ORDER BY version",
        a.clinic_id,
        f"message-{sent['messageId']}",
    )
    assert [r["event_type"] for r in stream] == list(MESSAGE_EVENTS)
    assert await message_events(stack, a.clinic_id, request_id) == list(MESSAGE_EVENTS)
    assert await outbox_rows(stack, text) == 1
    plan = await stack.until_workflow(
        a.admin_key, workflow_id, lambda s: s["status"] == "completed"
    )
    assert step_of(plan, "send") == "completed"

    # A second approval finds the step finished: 409 with its status, nothing sent again.
    again = await decide(stack, a.admin_key, workflow_id, "send", "approve")
    conflict = problem(again, 409, "CONFLICT")
    assert conflict["stepId"] == "send" and conflict["stepStatus"] == "completed"
    assert conflict["workflowId"] == workflow_id and "completed" in conflict["detail"]
    late = await decide(stack, a.admin_key, workflow_id, "send", "reject")
    assert problem(late, 409, "CONFLICT")["stepStatus"] == "completed"
    assert await message_events(stack, a.clinic_id, request_id) == list(MESSAGE_EVENTS)
    assert await outbox_rows(stack, text) == 1

    (row,) = await decisions(stack, a.clinic_id, workflow_id)
    assert row == {
        "key_id": a.admin_key_id,
        "function": "send_whatsapp",
        "decision": "approved",
        "reason": f"step send of {workflow_id}",
        "surface": "http",
        "request_id": body["requestId"],
        "trace_id": body["traceId"],
    }


async def test_two_approvals_at_once_run_the_step_once(stack: Stack) -> None:
    a = stack.tenant("clinic-a")
    text = unique("Două aprobări")
    workflow_id, request_id = await held_plan(stack, a.admin_key, send_step(a.only_phone, text))

    first, second = await asyncio.gather(
        decide(stack, a.admin_key, workflow_id, "send", "approve"),
        decide(stack, a.admin_key, workflow_id, "send", "approve"),
    )

    ok, refused = sorted((first, second), key=lambda r: r.status_code)
    assert ok.status_code == 200 and ok.json()["status"] == "completed", ok.text
    conflict = problem(refused, 409, "CONFLICT")
    assert conflict["stepStatus"] in ("running", "completed") and conflict["stepId"] == "send"
    delivery = ok.json()["result"]["deliveryWorkflowId"]
    await stack.until_workflow(a.admin_key, delivery, lambda s: s["status"] == "completed")
    assert await message_events(stack, a.clinic_id, request_id) == list(MESSAGE_EVENTS)
    assert await outbox_rows(stack, text) == 1


# --- reject ----------------------------------------------------------------------------------


async def test_a_rejected_step_is_skipped_with_the_reason_and_sends_nothing(stack: Stack) -> None:
    a = stack.tenant("clinic-a")
    text = unique("Promoție doar azi!")
    after = {
        "stepId": "after",
        "function": "check_consent",
        "arguments": {"patientId": a.only_patient_id},
        "dependsOn": ["send"],
    }
    workflow_id, request_id = await held_plan(
        stack, a.admin_key, send_step(a.only_phone, text), after
    )

    response = await decide(
        stack, a.admin_key, workflow_id, "send", "reject", {"reason": "not now"}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["decision"] == "rejected" and body["status"] == "skipped", body
    assert body["error"]["code"] == "REJECTED"
    assert body["error"]["message"] == "rejected: not now"
    assert body["result"] is None
    plan = await stack.until_workflow(
        a.admin_key, workflow_id, lambda s: s["status"] == "completed"
    )
    assert {s["stepId"]: s["status"] for s in plan["steps"]} == {
        "send": "skipped",
        "after": "skipped",
    }
    # Deciding again, either way, is a conflict naming the step's status.
    for verb in ("approve", "reject"):
        again = await decide(stack, a.admin_key, workflow_id, "send", verb)
        assert problem(again, 409, "CONFLICT")["stepStatus"] == "skipped"
    await stack.settle(a.clinic_id)
    assert await message_events(stack, a.clinic_id, request_id) == []
    assert await outbox_rows(stack, text) == 0
    assert [
        (r["decision"], r["key_id"]) for r in await decisions(stack, a.clinic_id, workflow_id)
    ] == [("rejected", a.admin_key_id)]


# --- who may decide ------------------------------------------------------------------------


async def test_another_clinics_key_gets_404_exactly_as_for_an_unknown_plan(stack: Stack) -> None:
    a, b = stack.tenant("clinic-a"), stack.tenant("clinic-b")
    text = unique("Mesaj pentru A")
    workflow_id, request_id = await held_plan(stack, a.admin_key, send_step(SHARED.phone, text))
    made_up = workflow_id.rsplit(":", 1)[0] + f":{uuid.uuid4()}"

    for verb in ("approve", "reject"):
        real = problem(
            await decide(stack, b.admin_key, workflow_id, "send", verb), 404, "NOT_FOUND"
        )
        fake = problem(await decide(stack, b.admin_key, made_up, "send", verb), 404, "NOT_FOUND")
        # no hint that the id exists: the same answer as for an id nobody has
        assert real == {
            k: v.replace(made_up, workflow_id) if isinstance(v, str) else v for k, v in fake.items()
        }
    own = problem(
        await decide(stack, a.admin_key, workflow_id, "nope", "approve"), 404, "NOT_FOUND"
    )
    assert own["stepId"] == "nope"

    status = await stack.workflow_status(a.admin_key, workflow_id)
    assert step_of(status, "send") == "waiting_approval"
    assert await message_events(stack, a.clinic_id, request_id) == []
    assert await outbox_rows(stack, text) == 0
    assert await decisions(stack, b.clinic_id, workflow_id) == []
    assert await decisions(stack, a.clinic_id, workflow_id) == []
    # The plan's own clinic still decides it.
    rejected = await decide(stack, a.admin_key, workflow_id, "send", "reject")
    assert rejected.status_code == 200 and rejected.json()["status"] == "skipped"


async def test_a_key_without_the_functions_scopes_gets_403_and_nothing_is_sent(
    stack: Stack,
) -> None:
    a = stack.tenant("clinic-a")
    text = unique("Reamintire")
    workflow_id, request_id = await held_plan(stack, a.admin_key, send_step(a.only_phone, text))
    writer = await stack.new_key(a.clinic_id, ["write", "consent"], "no messaging")

    denied = problem(
        await decide(stack, a.read_key, workflow_id, "send", "approve"), 403, "FORBIDDEN"
    )
    assert denied["missing"] == ["messaging"] and denied["function"] == "send_whatsapp"
    writer_denied = problem(
        await decide(stack, writer, workflow_id, "send", "reject"), 403, "FORBIDDEN"
    )
    assert writer_denied["missing"] == ["messaging", "read"]

    status = await stack.workflow_status(a.admin_key, workflow_id)
    assert step_of(status, "send") == "waiting_approval"
    assert await message_events(stack, a.clinic_id, request_id) == []
    assert await outbox_rows(stack, text) == 0
    rows = await decisions(stack, a.clinic_id, workflow_id)
    assert [(r["decision"], r["function"], r["reason"]) for r in rows] == [
        ("denied", "send_whatsapp", f"missing scope(s): messaging; step send of {workflow_id}"),
        (
            "denied",
            "send_whatsapp",
            f"missing scope(s): messaging, read; step send of {workflow_id}",
        ),
    ]
    assert rows[0]["key_id"] == a.read_key_id and rows[0]["request_id"] and rows[0]["trace_id"]

    # A key with exactly the function's scopes (no admin) may decide it.
    messenger = await stack.new_key(a.clinic_id, ["messaging", "read"], "front desk")
    rejected = await decide(stack, messenger, workflow_id, "send", "reject")
    assert rejected.status_code == 200 and rejected.json()["status"] == "skipped"
    assert [r["decision"] for r in await decisions(stack, a.clinic_id, workflow_id)] == [
        "denied",
        "denied",
        "rejected",
    ]


async def test_the_decision_body_is_closed_and_bounded(stack: Stack) -> None:
    a = stack.tenant("clinic-a")
    text = unique("Corp")
    workflow_id, request_id = await held_plan(stack, a.admin_key, send_step(a.only_phone, text))

    for body in ({"reason": "x" * 501}, {"reason": "ok", "approve": False}, {"reason": ""}):
        problem(
            await decide(stack, a.admin_key, workflow_id, "send", "approve", body),
            422,
            "INVALID_ARGUMENTS",
        )
    problem(
        await decide(stack, a.admin_key, workflow_id, "se nd", "approve"), 422, "INVALID_ARGUMENTS"
    )
    anonymous = await decide(stack, "", workflow_id, "send", "approve")
    problem(anonymous, 401, "UNAUTHENTICATED")

    status = await stack.workflow_status(a.admin_key, workflow_id)
    assert step_of(status, "send") == "waiting_approval"
    assert await decisions(stack, a.clinic_id, workflow_id) == []
    longest = "x" * 500
    rejected = await decide(stack, a.admin_key, workflow_id, "send", "reject", {"reason": longest})
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["error"]["message"] == f"rejected: {longest}"
    assert await message_events(stack, a.clinic_id, request_id) == []


# --- what Claude planned -------------------------------------------------------------------


async def test_the_evidence_of_a_step_claude_planned_names_the_route_that_approves_it(
    stack: Stack, anthropic: FakeAnthropic
) -> None:
    a = stack.tenant("clinic-a")
    text = unique("Confirmăm programarea.")
    anthropic.reply_with_tools(("send_whatsapp", {"to": a.only_phone, "message": text}))

    answer = await stack.execute(
        a.admin_key, {"type": "natural", "query": f"Trimite-i pacientului: {text}"}
    )

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["intent"]["source"] == "claude" and body["workflowId"], body
    workflow_id = body["workflowId"]
    (evidence,) = [e for e in body["intent"]["evidence"] if "waits for approval" in e]
    route = f"/ai/workflows/{workflow_id}/steps/c1"
    assert evidence == (
        "send_whatsapp (outbound) was planned by Claude: step c1 waits for approval before"
        f" it runs (POST {route}/approve or .../reject)"
    )
    found = re.search(r"POST (\S+)/approve", evidence)
    assert found is not None
    await stack.until_workflow(
        a.admin_key, workflow_id, lambda s: step_of(s, "c1") == "waiting_approval"
    )
    assert await outbox_rows(stack, text) == 0
    async with stack.client(a.admin_key) as http:
        approved = await http.post(found.group(1) + "/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "completed"
    delivery = approved.json()["result"]["deliveryWorkflowId"]
    await stack.until_workflow(a.admin_key, delivery, lambda s: s["status"] == "completed")
    assert await outbox_rows(stack, text) == 1


# --- the documents -------------------------------------------------------------------------


@pytest.mark.parametrize("document", ["/openapi.json", "/ai/schema"])
async def test_both_documents_describe_the_routes(stack: Stack, document: str) -> None:
    a = stack.tenant("clinic-a")
    async with stack.client(a.read_key) as http:
        response = await http.get(document)
    assert response.status_code == 200, response.text
    doc = response.json()
    schemas = doc["components"]["schemas"]
    for verb in ("approve", "reject"):
        operation = doc["paths"][f"/ai/workflows/{{workflowId}}/steps/{{stepId}}/{verb}"]["post"]
        assert {"200", "401", "403", "404", "409", "422"} <= set(operation["responses"])
        assert {p["name"] for p in operation["parameters"]} == {"workflowId", "stepId"}
        ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": "#/components/schemas/StepDecisionResponse"}
        conflict = operation["responses"]["409"]["content"]
        assert conflict == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
    request = schemas["StepDecisionRequest"]
    assert request["additionalProperties"] is False
    assert {"type": "string", "maxLength": 500, "minLength": 1} in request["properties"]["reason"][
        "anyOf"
    ]
    assert {"approved", "rejected"} == set(
        schemas["StepDecisionResponse"]["properties"]["decision"]["enum"]
    )
