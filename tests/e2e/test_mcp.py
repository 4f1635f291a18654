"""The gateway as an MCP server: the SDK's streamable-HTTP client against live uvicorn.

PostgreSQL is real (API keys, audit); the clinic's side is the in-memory domain.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx2
import pytest
import pytest_asyncio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from adapters.settings import Settings
from api.ai import mount_ai_gateway, run_ai_gateway
from domain.events import LeadCreated, LeadScored
from domain.functions import REGISTRY
from domain.functions.schemas import input_schema, output_schema
from domain.queries import GetPatient, PatientView
from tests.e2e.ai_support import app_with, serve
from tests.unit.gateway_fakes import NOW, CannedQueries, MemoryCommands, RecordingWorkflows

PHONE = "+40721234567"


@dataclass
class Live:
    url: str
    app: Any
    pool: asyncpg.Pool
    commands: MemoryCommands

    async def key(self, scopes: set[str], clinic: str = "clinic-mcp") -> str:
        _, plaintext = await self.app.state.api_keys.create(clinic, scopes, "mcp-test")
        return plaintext

    def client(self, key: str | None) -> Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(10.0))
        return Client(streamable_http_client(f"{self.url}/mcp", http_client=http))


@pytest_asyncio.fixture(loop_scope="session")
async def live(pg_pool: asyncpg.Pool) -> AsyncIterator[Live]:
    commands, queries = MemoryCommands(), CannedQueries()
    queries.answer(GetPatient, lambda q: PatientView(patient_id="pat-1", phone=PHONE))
    settings = Settings.model_validate({"rate_limit_per_key_per_s": 1000})

    def resources(app: Any) -> Any:
        return run_ai_gateway(
            app,
            pool=pg_pool,
            settings=settings,
            commands=commands,
            queries=queries,
            workflows=RecordingWorkflows(),
            clock=lambda: NOW,
        )

    app = app_with(resources)
    mount_ai_gateway(app)
    async with serve(app) as url:
        yield Live(url, app, pg_pool, commands)


async def test_without_a_key_the_endpoint_answers_401(live: Live):
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"{live.url}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Accept": "application/json, text/event-stream"},
        )
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHENTICATED"
    with pytest.raises(Exception):  # noqa: B017 - the SDK surfaces the 401 as its own error
        async with live.client("mc_not-a-key") as client:
            await client.list_tools()


async def test_tools_are_the_registrys_with_annotations_and_schemas(live: Live):
    async with live.client(await live.key({"read"})) as client:
        listed = await client.list_tools()
    tools = {t.name: t for t in listed.tools}
    assert list(tools) == [s.name for s in REGISTRY.allowed({"read"})]
    patient = tools["get_patient"]
    spec = REGISTRY.get("get_patient")
    assert patient.description == spec.description
    assert patient.input_schema == input_schema(spec)
    assert patient.output_schema == output_schema(spec)
    assert patient.annotations is not None
    hints = patient.annotations
    assert (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint) == (
        True,
        False,
        True,
    )


async def test_an_admin_sees_every_tool_with_the_right_hints(live: Live):
    async with live.client(await live.key({"admin"})) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert len(tools) == 12
    cancel = tools["cancel_appointment"].annotations
    assert cancel is not None and cancel.destructive_hint is True and cancel.read_only_hint is False
    send = tools["send_whatsapp"].annotations
    assert send is not None and send.open_world_hint is True


async def test_a_tool_call_runs_through_the_gateway_and_is_audited(live: Live):
    async with live.client(await live.key({"read"})) as client:
        result = await client.call_tool("get_patient", {"phone": "0721 234 567"})
    assert result.is_error is not True
    assert result.structured_content == {"found": True, "patient": _camel_patient()}
    text = result.content[0]
    assert json.loads(text.text)["found"] is True  # type: ignore[union-attr]
    row = await live.pool.fetchrow(
        "SELECT function, decision, surface FROM audit_log WHERE clinic_id = 'clinic-mcp' "
        "ORDER BY id DESC LIMIT 1"
    )
    assert dict(row) == {"function": "get_patient", "decision": "allowed", "surface": "mcp"}


def _camel_patient() -> dict[str, Any]:
    return {
        "patientId": "pat-1",
        "firstName": None,
        "lastName": None,
        "phone": PHONE,
        "email": None,
        "dateOfBirth": None,
        "notes": None,
        "tags": [],
        "leadId": None,
        "createdAt": None,
        "updatedAt": None,
    }


async def test_tool_errors_say_what_to_fix(live: Live):
    async with live.client(await live.key({"read"})) as client:
        invalid = await client.call_tool("get_patient", {"phone": "12"})
        forbidden = await client.call_tool("score_lead", {"phone": PHONE, "channel": "web"})
        unknown = await client.call_tool("get_pacient", {})
    assert invalid.is_error is True
    error = json.loads(invalid.content[0].text)  # type: ignore[union-attr]
    assert error["code"] == "INVALID_ARGUMENTS" and error["details"]["errors"][0]["path"] == "phone"
    assert json.loads(forbidden.content[0].text)["code"] == "FORBIDDEN"  # type: ignore[union-attr]
    missing = json.loads(unknown.content[0].text)  # type: ignore[union-attr]
    assert missing["code"] == "FUNCTION_NOT_FOUND"
    assert missing["details"]["suggestions"][0] == "get_patient"
    assert live.commands.executed == []


async def test_a_write_tool_writes_for_the_keys_clinic(live: Live):
    async with live.client(await live.key({"write"}, clinic="clinic-mcp-w")) as client:
        result = await client.call_tool(
            "score_lead", {"phone": "0721 234 567", "channel": "whatsapp"}
        )
    assert result.is_error is not True and result.structured_content["created"] is True  # type: ignore[index]
    events = await live.commands.events("clinic-mcp-w")
    assert [type(e) for e in events] == [LeadCreated, LeadScored]
