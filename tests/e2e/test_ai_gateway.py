"""The AI gateway end to end: live uvicorn over the real stack.

PostgreSQL (event store, command and query buses, projector, API keys, audit,
idempotency), Temporal (dev server, MedicalCor's workers, the workflow gateway)
and a fake 360dialog speaking the WhatsApp wire protocol. Everything goes through
``POST /ai/execute`` as an LLM agent would use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from adapters.cqrs import CommandBus, QueryBus
from adapters.crypto.keys import PostgresSubjectKeyStore
from adapters.postgres.event_store import PostgresEventStore
from adapters.projections import PersonalData
from adapters.projections.runner import run_projector
from adapters.pseudonym import HmacPseudonymizer
from adapters.temporal.gateway import TemporalWorkflowGateway
from adapters.whatsapp import WhatsAppClient
from api.ai import mount_ai_gateway, run_ai_gateway
from domain.commands import AddDoctor, ConfigureClinic, RegisterPatient
from domain.cqrs import CommandContext
from domain.dates import clinic_today
from domain.functions import REGISTRY
from domain.messaging import TEMPLATES
from tests.e2e.ai_support import app_with, serve
from tests.fakes import Fake360Dialog
from tests.fixtures.stack import projections_caught_up
from tests.fixtures.temporal import next_weekday, settings_for_test
from workflows.worker import WorkerResources, build_workers, running

CLINIC = "clinic-e2e"
PHONE = "+40721234567"
ADMIN = CommandContext(clinic_id=CLINIC, actor="test:seed", scopes=frozenset({"admin"}))


@dataclass
class Stack:
    http: httpx.AsyncClient
    pool: asyncpg.Pool
    whatsapp: Fake360Dialog
    key: str

    async def execute(self, body: dict[str, Any], **headers: str) -> dict[str, Any]:
        response = await self.http.post(
            "/ai/execute", json=body, headers={"X-API-Key": self.key, **headers}
        )
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    async def call(
        self, function: str, arguments: dict[str, Any], **headers: str
    ) -> dict[str, Any]:
        answer = await self.execute(
            {"type": "function_call", "calls": [{"function": function, "arguments": arguments}]},
            **headers,
        )
        (result,) = answer["results"]
        return {**result, "position": answer.get("position")}

    async def status(self, task_id: str) -> dict[str, Any]:
        result = await self.call("get_workflow_status", {"taskId": task_id})
        assert result["success"], result
        status: dict[str, Any] = result["result"]
        return status

    async def until(self, task_id: str, done: Any, within_s: float = 30.0) -> dict[str, Any]:
        """Poll get_workflow_status until ``done(status)``."""
        deadline = time.monotonic() + within_s
        while True:
            status = await self.status(task_id)
            if done(status):
                return status
            assert time.monotonic() < deadline, f"workflow {task_id} stuck: {status}"
            await asyncio.sleep(0.2)


def step(status: dict[str, Any], step_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in status["steps"] if s["stepId"] == step_id)
    return found


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(
    pg_pool: asyncpg.Pool, event_store: PostgresEventStore, temporal_env: WorkflowEnvironment
) -> AsyncIterator[Stack]:
    settings = settings_for_test(rate_limit_per_key_per_s=1000.0, rate_limit_burst=1000)
    pseudonymizer = HmacPseudonymizer(settings.secret_key.encode())
    commands = CommandBus(event_store, pool=pg_pool, pseudonymizer=pseudonymizer)
    keys = PostgresSubjectKeyStore.from_secret(pg_pool, settings.secret_key)
    queries = QueryBus(pg_pool, pseudonymizer=pseudonymizer, keys=keys)
    workflows = TemporalWorkflowGateway(temporal_env.client, settings, registry=REGISTRY)
    await _seed(commands)
    stop = asyncio.Event()
    personal = PersonalData(pseudonymizer, keys)
    projector = asyncio.create_task(
        run_projector(pg_pool, stop, personal=personal, poll_interval=0.05)
    )
    await projections_caught_up(pg_pool)  # every test may read the seed at once
    counts = {name: len(t.params) for name, t in TEMPLATES.items()}
    with Fake360Dialog(templates=counts) as fake:
        async with WhatsAppClient(fake.api_key, base_url=fake.url + "/v1") as whatsapp:
            resources = WorkerResources(
                commands=commands,
                queries=queries,
                store=event_store,
                pseudonymizer=pseudonymizer,
                whatsapp=whatsapp,
                hubspot=None,
                registry=REGISTRY,
            )
            app = app_with(
                lambda app: run_ai_gateway(
                    app,
                    pool=pg_pool,
                    settings=settings,
                    commands=commands,
                    queries=queries,
                    workflows=workflows,
                )
            )
            mount_ai_gateway(app)
            workers = build_workers(temporal_env.client, settings, resources)
            async with running(workers), serve(app) as url:
                _, key = await app.state.api_keys.create(CLINIC, {"admin"}, "e2e agent")
                async with httpx.AsyncClient(base_url=url, timeout=30.0) as http:
                    yield Stack(http, pg_pool, fake, key)
    stop.set()
    with contextlib.suppress(asyncio.CancelledError):
        await projector


async def _seed(commands: CommandBus) -> None:
    await commands.execute(ConfigureClinic(name="Clinica E2E", location="Str. Lunii 3"), ADMIN)
    await commands.execute(AddDoctor(doctor_id="doc-1", name="Dr. Ionescu"), ADMIN)
    for patient_id, phone in (("pat-1", PHONE), ("pat-2", "+40722000111")):
        await commands.execute(
            RegisterPatient(patient_id=patient_id, first_name="Ana", phone=phone), ADMIN
        )


def consent(patient_id: str, phone: str, consent_type: str) -> dict[str, Any]:
    return {
        "patientId": patient_id,
        "phone": phone,
        "consentType": consent_type,
        "status": "granted",
        "source": "web_form",
    }


# --- reads see writes -----------------------------------------------------------------------


async def test_a_read_after_a_write_sees_it_when_given_the_position(stack: Stack):
    updated = await stack.call(
        "update_patient", {"patientId": "pat-1", "updates": {"notes": "e2e"}}
    )
    assert updated["success"] and updated["result"]["changedFields"] == ["notes"]
    position = str(updated["position"])
    found = await stack.call(
        "get_patient", {"phone": "0721 234 567"}, **{"X-Min-Position": position}
    )
    assert found["result"]["found"] is True
    assert found["result"]["patient"]["notes"] == "e2e"


async def test_leads_are_scored_and_counted(stack: Stack):
    scored = await stack.call(
        "score_lead",
        {
            "phone": "0733 111 222",
            "channel": "whatsapp",
            "messages": [{"role": "user", "content": "Cât costă All-on-4? Am buget."}],
        },
    )
    assert scored["result"]["classification"] == "HOT"
    today = clinic_today(datetime.now(UTC)).isoformat()  # the clinic's day, not the host's
    figures = await stack.call(
        "get_lead_analytics",
        {"startDate": today, "endDate": today, "groupBy": "channel"},
        **{"X-Min-Position": str(scored["position"])},
    )
    assert figures["result"]["totals"]["leads"] >= 1 and figures["result"]["totals"]["hot"] >= 1


# --- booking ----------------------------------------------------------------------------------


async def test_booking_needs_consent_then_runs_the_booking_workflow(stack: Stack):
    day = next_weekday(7).isoformat()
    book = {"patientId": "pat-2", "serviceType": "cleaning", "preferredDate": day}
    refused = await stack.call("schedule_appointment", book)
    assert refused["error"]["code"] == "CONSENT_REQUIRED"
    assert refused["error"]["details"]["missing"] == ["data_processing"]

    granted = await stack.call(
        "record_consent", consent("pat-2", "0722 000 111", "data_processing")
    )
    assert granted["success"]
    started = await stack.call(
        "schedule_appointment",
        {**book, "preferredTimeSlot": "morning"},
        **{"X-Min-Position": str(granted["position"])},
    )
    assert started["success"] and started["result"]["status"] == "pending"
    task = started["result"]["workflowId"]
    status = await stack.until(task, lambda s: step(s, "confirmation")["status"] == "completed")
    assert step(status, "confirm")["status"] == "completed" and status["status"] == "running"
    sent = [m for m in stack.whatsapp.accepted if m.get("to") in ("40722000111", "+40722000111")]
    assert sent, "the confirmation never reached the WhatsApp provider"

    cancelled = await stack.call(
        "cancel_appointment", {"appointmentId": started["result"]["appointmentId"], "reason": "e2e"}
    )
    assert cancelled["result"]["status"] == "cancelled"
    assert cancelled["result"]["remindersStopped"] is True
    await stack.until(task, lambda s: s["status"] != "running")
    again = await stack.call(
        "cancel_appointment", {"appointmentId": started["result"]["appointmentId"]}
    )
    assert again["error"]["code"] == "CONFLICT"


# --- messaging ---------------------------------------------------------------------------------


async def test_send_whatsapp_goes_through_the_outbox_to_the_provider(stack: Stack):
    await stack.call("record_consent", consent("pat-1", PHONE, "data_processing"))
    sent = await stack.call("send_whatsapp", {"to": "0721 234 567", "message": "Vă așteptăm!"})
    assert sent["success"], sent
    assert sent["result"]["patientId"] == "pat-1"  # looked up by phone
    delivery = sent["result"]["deliveryWorkflowId"]
    await stack.until(delivery, lambda s: s["status"] == "completed")
    texts = [m.get("text", {}).get("body") for m in stack.whatsapp.accepted]
    assert "Vă așteptăm!" in texts


# --- plans --------------------------------------------------------------------------------------


async def test_a_workflow_request_with_references_runs_durably(stack: Stack):
    answer = await stack.execute(
        {
            "type": "workflow",
            "steps": [
                {"stepId": "find", "function": "get_patient", "arguments": {"phone": PHONE}},
                {
                    "stepId": "check",
                    "function": "check_consent",
                    "arguments": {"patientId": {"$ref": "steps.find.result.patient.patientId"}},
                    "dependsOn": ["find"],
                },
            ],
        }
    )
    assert answer["success"] and [s["stepId"] for s in answer["plan"]["steps"]] == ["find", "check"]
    status = await stack.until(answer["workflowId"], lambda s: s["status"] != "running")
    assert status["status"] == "completed", status
    assert step(status, "check")["result"]["patientId"] == "pat-1"


async def test_a_sentence_with_two_requests_becomes_a_plan(stack: Stack):
    answer = await stack.execute(
        {"type": "natural", "query": "Caută pacientul pat-1 și verifică acordul pacientului pat-1"}
    )
    assert answer["intent"]["functions"] == ["get_patient", "check_consent"], answer
    status = await stack.until(answer["workflowId"], lambda s: s["status"] != "running")
    assert status["status"] == "completed", status
    assert [s["status"] for s in status["steps"]] == ["completed", "completed"]


async def test_trigger_workflow_starts_a_catalogue_workflow(stack: Stack):
    started = await stack.call(
        "trigger_workflow", {"workflow": "patient-journey", "payload": {"patientId": "pat-1"}}
    )
    assert started["success"], started
    status = await stack.status(started["result"]["workflowId"])
    assert status["status"] in ("running", "completed")
    unknown = await stack.call("get_workflow_status", {"taskId": "clinic-other:ai-plan:x"})
    assert unknown["error"]["code"] == "NOT_FOUND"


# --- idempotency ----------------------------------------------------------------------------------


async def test_an_idempotent_retry_over_the_real_stack_writes_once(stack: Stack):
    body = {
        "type": "function_call",
        "calls": [
            {
                "function": "update_patient",
                "arguments": {"patientId": "pat-1", "updates": {"tags": ["retry"]}},
            }
        ],
    }
    first = await stack.execute(body, **{"Idempotency-Key": "e2e-retry"})
    second = await stack.execute(body, **{"Idempotency-Key": "e2e-retry"})
    assert first == second
    count = await stack.pool.fetchval(
        "SELECT count(*) FROM events WHERE clinic_id = $1 AND event_type = 'PatientUpdated' "
        "AND idempotency_key LIKE 'http:e2e-retry%'",
        CLINIC,
    )
    assert count == 1
