"""WhatsApp webhooks and the sandbox outbox over HTTP, on real PostgreSQL and Temporal.

The app is built here with the webhook and sandbox routers only, on the real
command bus, query bus, projector (caught up explicitly with ``sync``), webhook
inbox and Temporal gateway; webhook bodies are built and signed like 360dialog's
(``tests.fakes``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from adapters.api_keys import ApiKeyStore
from adapters.cqrs import CommandBus, QueryBus
from adapters.crypto.keys import PostgresSubjectKeyStore
from adapters.postgres.event_store import PostgresEventStore
from adapters.projections import PersonalData, Projector, all_projections, run_projector
from adapters.projections import status as projection_status
from adapters.pseudonym import HmacPseudonymizer
from adapters.settings import Settings
from adapters.temporal.client import data_converter
from adapters.temporal.gateway import TemporalWorkflowGateway
from adapters.temporal.search_attributes import CLINIC_ID
from adapters.whatsapp import SandboxWhatsAppTransport
from api.auth import Authenticator
from api.errors import install_problem_handlers
from api.sandbox import create_sandbox_router, sandbox_outbox
from api.webhooks import (
    WebhookConfig,
    WhatsAppWebhooks,
    build_whatsapp_webhooks,
    create_webhook_router,
)
from domain.commands import (
    MarkMessageSent,
    QueueWhatsAppMessage,
    RecordConsent,
    RegisterPatient,
)
from domain.cqrs import Command, CommandContext
from domain.events import ConsentType
from domain.functions.registry import REGISTRY
from domain.queries import CheckConsent, GetMessageStatus, GetPatientActivity
from tests.fakes import cloud_webhook, sign_webhook, status_update, text_message, webhook_body
from tests.fixtures.temporal import TEST_SECRET
from workflows.worker import WorkerResources, build_workers, running

pytestmark = pytest.mark.asyncio(loop_scope="session")

SECRET = "whsec-medicalcor-test"
VERIFY_TOKEN = "verify-me-please"
MAPPED_NUMBER_ID = "106540352242922"  # cloud_webhook's default phone_number_id
HOT_TEXT = "Vreau All-on-4 cat mai repede, cat costa? buget euro"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def new_phone() -> str:
    """A fresh valid Romanian mobile number, as WhatsApp writes it (no '+')."""
    return "4072" + str(uuid.uuid4().int)[:7]


@dataclass
class Stack:
    app: FastAPI
    http: httpx.AsyncClient
    pool: asyncpg.Pool
    commands: CommandBus
    queries: QueryBus
    projector: Projector
    temporal: Client
    settings: Settings
    workflows: TemporalWorkflowGateway
    mapped_clinic: str

    async def post(
        self,
        clinic: str | None,
        payload: dict[str, Any],
        *,
        secret: str = SECRET,
        header: str = "X-Hub-Signature-256",
    ) -> httpx.Response:
        body = webhook_body(payload)
        path = "/webhooks/whatsapp" + (f"/{clinic}" if clinic else "")
        headers = {header: sign_webhook(body, secret), "Content-Type": "application/json"}
        return await self.http.post(path, content=body, headers=headers)

    async def run(self, clinic: str, command: Command) -> dict[str, Any]:
        context = CommandContext(clinic_id=clinic, actor="test:seed")
        return (await self.commands.execute(command, context)).result

    async def ask(self, clinic: str, query: Any) -> Any:
        context = CommandContext(clinic_id=clinic, actor="test")
        return await self.queries.ask(query, context, min_position=await self.sync())

    async def sync(self) -> int:
        """Bring every read model up to the end of the log; the position reached."""
        await self.projector.catch_up()
        return int(await self.pool.fetchval("SELECT coalesce(max(global_position), 0) FROM events"))

    async def events(self, clinic: str) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            "SELECT stream_id, event_type, data FROM events WHERE clinic_id = $1"
            " ORDER BY global_position",
            clinic,
        )

    async def types(self, clinic: str) -> list[str]:
        return [e["event_type"] for e in await self.events(clinic)]

    async def inbox(self, clinic: str) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            "SELECT item_key, outcome, detail FROM webhook_inbox WHERE clinic_id = $1"
            " ORDER BY processed_at",
            clinic,
        )

    def webhooks(
        self, config: WebhookConfig, workflows: TemporalWorkflowGateway | None = None
    ) -> WhatsAppWebhooks:
        """Webhook processing like the app's, with another configuration or Temporal."""
        return build_whatsapp_webhooks(
            settings=self.settings,
            pool=self.pool,
            commands=self.commands,
            queries=self.queries,
            workflows=workflows or self.workflows,
            config=config,
        )

    def resources(self) -> WorkerResources:
        pseudonymizer = HmacPseudonymizer(self.settings.secret_key.encode())
        return WorkerResources(
            commands=self.commands,
            queries=self.queries,
            store=PostgresEventStore(self.pool),
            pseudonymizer=pseudonymizer,
            whatsapp=SandboxWhatsAppTransport(self.pool),
            hubspot=None,
            registry=REGISTRY,
        )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def projector_running(pg_pool: asyncpg.Pool) -> AsyncIterator[None]:
    """The projector, as in production: webhooks read the read models it keeps."""
    stop = asyncio.Event()
    personal = PersonalData(  # the stack's secret (settings_for_test)
        HmacPseudonymizer(TEST_SECRET.encode()),
        PostgresSubjectKeyStore.from_secret(pg_pool, TEST_SECRET),
    )
    task = asyncio.create_task(run_projector(pg_pool, stop, personal=personal, poll_interval=0.05))
    for _ in range(200):  # until it leads every projection (it campaigns on start)
        if all(row["leader"] for row in await projection_status(pg_pool)):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the projector did not take the lead of the projections")
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


@pytest_asyncio.fixture(loop_scope="session")
async def stack(
    pg_pool: asyncpg.Pool,
    projector_running: None,
    temporal_env: WorkflowEnvironment,
    temporal_settings: Settings,
) -> AsyncIterator[Stack]:
    settings = temporal_settings.model_copy(update={"whatsapp_webhook_secret": SECRET})
    pseudonymizer = HmacPseudonymizer(settings.secret_key.encode())
    store = PostgresEventStore(pg_pool)
    commands = CommandBus(store, pool=pg_pool, pseudonymizer=pseudonymizer)
    keys = PostgresSubjectKeyStore.from_secret(pg_pool, settings.secret_key)
    queries = QueryBus(pg_pool, pseudonymizer=pseudonymizer, keys=keys)
    projector = Projector(pg_pool, all_projections(PersonalData(pseudonymizer, keys)))
    workflows = TemporalWorkflowGateway(temporal_env.client, settings, registry=REGISTRY)
    mapped_clinic = new_id("clinic-mapped")
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(create_webhook_router())
    app.include_router(create_sandbox_router())
    config = WebhookConfig.from_settings(
        settings,
        phone_number_clinics={MAPPED_NUMBER_ID: mapped_clinic},
        verify_token=VERIFY_TOKEN,
    )
    app.state.whatsapp_webhooks = build_whatsapp_webhooks(
        settings=settings,
        pool=pg_pool,
        commands=commands,
        queries=queries,
        workflows=workflows,
        config=config,
    )
    keys = ApiKeyStore(pg_pool, settings.secret_key)
    app.state.api_keys = keys
    app.state.authenticator = Authenticator(keys, rate_per_s=1000, burst=1000)
    app.state.whatsapp_sandbox = sandbox_outbox(SandboxWhatsAppTransport(pg_pool), pg_pool)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://crm") as http:
        yield Stack(
            app,
            http,
            pg_pool,
            commands,
            queries,
            projector,
            temporal_env.client,
            settings,
            workflows,
            mapped_clinic,
        )
    await store.aclose()


def other_clinic_payload(sender: str, text: str, **kw: Any) -> dict[str, Any]:
    """A webhook from a number no clinic is mapped to."""
    return cloud_webhook(messages=[text_message(sender, text, **kw)], phone_number_id="999000")


async def register_patient(
    stack: Stack, clinic: str, phone: str, consents: Sequence[ConsentType] = ()
) -> str:
    patient_id = new_id("pat")
    await stack.run(
        clinic, RegisterPatient(patient_id=patient_id, first_name="Ana", phone="+" + phone)
    )
    for consent in consents:
        await stack.run(
            clinic,
            RecordConsent(
                patient_id=patient_id,
                phone="+" + phone,
                consent_type=consent,
                status="granted",
                source="test",
            ),
        )
    await stack.sync()
    return patient_id


async def sent_message(
    stack: Stack,
    clinic: str,
    patient_id: str,
    phone: str,
    template: str,
    params: dict[str, str],
) -> tuple[str, str]:
    """An outbound template message queued and sent: (message id, provider id)."""
    message_id, provider_id = new_id("msg"), "wamid." + uuid.uuid4().hex
    await stack.run(
        clinic,
        QueueWhatsAppMessage(
            message_id=message_id,
            to="+" + phone,
            patient_id=patient_id,
            template_name=template,
            template_params=params,
        ),
    )
    await stack.run(clinic, MarkMessageSent(message_id=message_id, provider_message_id=provider_id))
    await stack.sync()
    return message_id, provider_id


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["code"] == code and body["detail"]
    return body


RENEWAL = {"name": "Ana", "date": "05.03.2027"}
REMINDER = {"name": "Ana", "time": "10:30", "location": "Str. Lunii 3"}


# --- signatures --------------------------------------------------------------------------


async def test_a_bad_or_missing_signature_is_401_and_nothing_is_stored(stack: Stack) -> None:
    clinic = new_id("clinic")
    payload = other_clinic_payload(new_phone(), HOT_TEXT)
    body = webhook_body(payload)
    path = f"/webhooks/whatsapp/{clinic}"
    attempts = [
        {},
        {"X-Hub-Signature-256": sign_webhook(body, "another-secret")},
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        {"X-360Dialog-Signature": "not-even-hex"},
        {"X-Hub-Signature-256": sign_webhook(body + b" ", SECRET)},  # signs other bytes
    ]
    for headers in attempts:
        response = await stack.http.post(path, content=body, headers=headers)
        assert_problem(response, 401, "UNAUTHENTICATED")
    assert await stack.events(clinic) == []
    assert await stack.inbox(clinic) == []
    assert (
        await stack.pool.fetchval("SELECT count(*) FROM events WHERE clinic_id = $1", clinic) == 0
    )

    # The same body, signed with the secret (bare hex in 360dialog's header), goes through.
    bare = sign_webhook(body, SECRET).removeprefix("sha256=")
    response = await stack.http.post(path, content=body, headers={"X-360Dialog-Signature": bare})
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 1, "processed": 1, "ignored": 0, "duplicates": 0}
    assert "WhatsAppMessageReceived" in await stack.types(clinic)


async def test_a_clinic_with_its_own_secret_refuses_the_shared_one(stack: Stack) -> None:
    clinic = new_id("clinic")
    webhooks = stack.app.state.whatsapp_webhooks
    own = replace(webhooks.config, clinic_secrets={clinic: "clinic-own-secret"})
    stack.app.state.whatsapp_webhooks = stack.webhooks(own)
    try:
        payload = other_clinic_payload(new_phone(), "Bună ziua")
        assert_problem(await stack.post(clinic, payload), 401, "UNAUTHENTICATED")
        assert await stack.events(clinic) == []
        ok = await stack.post(clinic, payload, secret="clinic-own-secret")
        assert ok.status_code == 200, ok.text
    finally:
        stack.app.state.whatsapp_webhooks = webhooks


# --- routing ------------------------------------------------------------------------------


async def test_the_clinic_comes_from_the_path_or_the_number_mapping(stack: Stack) -> None:
    mapped, elsewhere = stack.mapped_clinic, new_id("clinic")
    payload = cloud_webhook(messages=[text_message(new_phone(), "Bună ziua")])  # mapped number

    # A mapped number posted to another clinic's URL: refused before anything runs.
    assert_problem(await stack.post(elsewhere, payload), 403, "FORBIDDEN")
    assert await stack.events(elsewhere) == [] and await stack.events(mapped) == []

    # Without a clinic in the path, the number mapping decides.
    response = await stack.post(None, payload)
    assert response.status_code == 200, response.text
    assert await stack.types(mapped) == ["WhatsAppMessageReceived", "LeadCreated", "LeadScored"]

    # An unmapped number needs the clinic in the path; a header cannot choose one.
    unmapped = other_clinic_payload(new_phone(), "Bună ziua")
    body = webhook_body(unmapped)
    response = await stack.http.post(
        "/webhooks/whatsapp",
        content=body,
        headers={
            "X-Hub-Signature-256": sign_webhook(body, SECRET),
            "X-Clinic-Id": elsewhere,
        },
    )
    assert_problem(response, 403, "FORBIDDEN")
    assert await stack.events(elsewhere) == []


async def test_unreadable_bodies_are_refused_without_storing(stack: Stack) -> None:
    clinic = new_id("clinic")
    body = b"{not json"
    response = await stack.http.post(
        f"/webhooks/whatsapp/{clinic}",
        content=body,
        headers={"X-Hub-Signature-256": sign_webhook(body, SECRET)},
    )
    assert_problem(response, 400, "INVALID_ARGUMENTS")
    broken = other_clinic_payload(new_phone(), "hello")
    del broken["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    problem = assert_problem(await stack.post(clinic, broken), 422, "INVALID_ARGUMENTS")
    assert problem["errors"][0]["path"].endswith("messages[0].id")
    assert await stack.events(clinic) == [] and await stack.inbox(clinic) == []


# --- the subscription handshake ------------------------------------------------------------


async def test_the_verify_handshake_echoes_the_challenge_for_the_right_token(stack: Stack) -> None:
    query = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    for path in ("/webhooks/whatsapp", "/webhooks/whatsapp/clinic-x"):
        response = await stack.http.get(path, params=query)
        assert response.status_code == 200 and response.text == "1158201444"
    wrong = {**query, "hub.verify_token": "guess"}
    assert_problem(await stack.http.get("/webhooks/whatsapp", params=wrong), 403, "FORBIDDEN")
    webhooks = stack.app.state.whatsapp_webhooks
    stack.app.state.whatsapp_webhooks = stack.webhooks(replace(webhooks.config, verify_token=None))
    try:
        response = await stack.http.get("/webhooks/whatsapp", params=query)
        assert_problem(response, 404, "NOT_FOUND")
    finally:
        stack.app.state.whatsapp_webhooks = webhooks


# --- inbound messages ----------------------------------------------------------------------


async def test_an_unknown_number_becomes_a_scored_lead_and_lead_scoring_runs(
    stack: Stack,
) -> None:
    clinic, sender = new_id("clinic"), new_phone()
    payload = other_clinic_payload(sender, HOT_TEXT)
    async with running(build_workers(stack.temporal, stack.settings, stack.resources())):
        response = await stack.post(clinic, payload)
        assert response.status_code == 200, response.text
        assert response.json()["processed"] == 1
        (entry,) = await stack.inbox(clinic)
        workflow_id = entry["detail"]["workflowId"]
        handle = stack.temporal.get_workflow_handle(workflow_id)
        result = await asyncio.wait_for(handle.result(), timeout=60)
    assert entry["outcome"] == "processed" and entry["detail"]["created"] is True
    lead_id = entry["detail"]["leadId"]
    assert workflow_id.startswith(f"{clinic}:lead-scoring:")
    description = await handle.describe()
    assert description.workflow_type == "LeadScoringWorkflow"
    assert description.status == WorkflowExecutionStatus.COMPLETED
    assert description.typed_search_attributes.get(CLINIC_ID) == clinic
    assert result["leadId"] == lead_id and result["classification"] == "HOT"

    events = await stack.events(clinic)
    received = [e for e in events if e["event_type"] == "WhatsAppMessageReceived"]
    created = [e for e in events if e["event_type"] == "LeadCreated"]
    assert len(received) == 1 and received[0]["data"]["text"] == HOT_TEXT
    assert received[0]["data"]["patient_id"] is None
    assert len(created) == 1 and created[0]["stream_id"] == f"lead-{lead_id}"
    assert created[0]["data"]["channel"] == "whatsapp"
    assert created[0]["data"]["phone"] == "+" + sender
    scored = [e["data"] for e in events if e["event_type"] == "LeadScored"]
    assert scored and {s["classification"] for s in scored} == {"HOT"}
    assert "LeadAssigned" in [e["event_type"] for e in events]  # the HOT route ran


async def test_a_known_patients_message_lands_in_their_activity(stack: Stack) -> None:
    clinic, phone = new_id("clinic"), new_phone()
    patient_id = await register_patient(stack, clinic, phone)
    before = len(await stack.events(clinic))
    response = await stack.post(clinic, other_clinic_payload(phone, "Pot muta programarea?"))
    assert response.status_code == 200, response.text
    new = (await stack.events(clinic))[before:]
    assert [e["event_type"] for e in new] == ["WhatsAppMessageReceived"]
    assert new[0]["data"]["patient_id"] == patient_id
    activity = await stack.ask(clinic, GetPatientActivity(patient_id=patient_id))
    assert activity.messages_received == 1
    assert activity.recent[0].event_type == "WhatsAppMessageReceived"
    (entry,) = await stack.inbox(clinic)
    assert entry["detail"]["patientId"] == patient_id and entry["detail"]["consent"] is None
    assert "+" + phone not in str(entry["detail"]) and phone not in str(entry["detail"])


async def test_a_later_message_of_a_lead_rescores_it_only_upwards(stack: Stack) -> None:
    clinic, sender = new_id("clinic"), new_phone()
    first = await stack.post(clinic, other_clinic_payload(sender, "Bună ziua, aveți program?"))
    assert first.status_code == 200, first.text
    await stack.sync()
    lower = await stack.post(clinic, other_clinic_payload(sender, "Mulțumesc"))
    assert lower.status_code == 200, lower.text
    await stack.sync()
    higher = await stack.post(clinic, other_clinic_payload(sender, HOT_TEXT))
    assert higher.status_code == 200, higher.text
    types = await stack.types(clinic)
    assert types.count("WhatsAppMessageReceived") == 3
    assert types.count("LeadCreated") == 1
    assert types.count("LeadScored") == 2  # the first message, then the HOT one
    scored = [e["data"] for e in await stack.events(clinic) if e["event_type"] == "LeadScored"]
    assert scored[-1]["classification"] == "HOT"
    details = [e["detail"] for e in await stack.inbox(clinic)]
    assert [d["scored"] for d in details] == [True, False, True]
    assert details[0]["workflowId"] != details[2]["workflowId"]


# --- consent replies -----------------------------------------------------------------------


async def consents(stack: Stack, clinic: str) -> list[dict[str, Any]]:
    return [
        e["data"]
        for e in await stack.events(clinic)
        if e["event_type"] == "ConsentRecorded" and e["data"]["source"] == "whatsapp_reply"
    ]


async def test_consent_replies_record_marketing_consent(stack: Stack) -> None:
    clinic, phone = new_id("clinic"), new_phone()
    patient = await register_patient(
        stack, clinic, phone, ["data_processing", "appointment_reminders"]
    )
    _, renewal = await sent_message(stack, clinic, patient, phone, "consent_renewal", RENEWAL)

    # DA quoting the consent request grants marketing on WhatsApp.
    reply = text_message(phone, "Da, mulțumesc!")
    reply["context"] = {"from": "40312345678", "id": renewal}
    assert (
        await stack.post(clinic, cloud_webhook(messages=[reply], phone_number_id="1"))
    ).is_success
    assert [(c["consent_type"], c["status"]) for c in await consents(stack, clinic)] == [
        ("marketing_whatsapp", "granted")
    ]
    check = await stack.ask(
        clinic, CheckConsent(patient_id=patient, consent_types=("marketing_whatsapp",))
    )
    assert check.consents[0].status == "granted" and check.consents[0].source == "whatsapp_reply"

    # STOP withdraws whatever it answers.
    assert (await stack.post(clinic, other_clinic_payload(phone, "STOP"))).is_success
    assert [c["status"] for c in await consents(stack, clinic)] == ["granted", "withdrawn"]

    # NU answering a reminder means "I cannot come", not a consent decision; neither is
    # a DA typed after it (the last message they got was the reminder).
    _, reminder = await sent_message(
        stack, clinic, patient, phone, "appointment_reminder_24h", REMINDER
    )
    no = text_message(phone, "NU")
    no["context"] = {"from": "40312345678", "id": reminder}
    assert (await stack.post(clinic, cloud_webhook(messages=[no], phone_number_id="1"))).is_success
    assert (await stack.post(clinic, other_clinic_payload(phone, "Da"))).is_success
    assert len(await consents(stack, clinic)) == 2

    # After a new consent request, a typed "sunt de acord" (no quote) grants again.
    await sent_message(stack, clinic, patient, phone, "consent_renewal", RENEWAL)
    assert (await stack.post(clinic, other_clinic_payload(phone, "Sunt de acord"))).is_success
    recorded = await consents(stack, clinic)
    assert [c["status"] for c in recorded] == ["granted", "withdrawn", "granted"]
    assert {c["phone"] for c in recorded} == {"+" + phone}
    assert {c["policy_version"] for c in recorded} and all(c["decided_at"] for c in recorded)


async def test_an_unknown_numbers_consent_words_are_just_a_lead_message(stack: Stack) -> None:
    clinic = new_id("clinic")
    assert (await stack.post(clinic, other_clinic_payload(new_phone(), "STOP"))).is_success
    types = await stack.types(clinic)
    assert "ConsentRecorded" not in types and "LeadCreated" in types


# --- idempotency ---------------------------------------------------------------------------


async def test_the_same_webhook_delivered_twice_is_processed_once(stack: Stack) -> None:
    clinic, sender = new_id("clinic"), new_phone()
    message = text_message(sender, "Vreau un implant, cât costă?")
    payload = cloud_webhook(messages=[message, message], phone_number_id="1")
    first = await stack.post(clinic, payload)
    assert first.json() == {"received": 2, "processed": 1, "ignored": 0, "duplicates": 1}
    events = await stack.types(clinic)
    second = await stack.post(clinic, payload)
    assert second.status_code == 200
    assert second.json() == {"received": 2, "processed": 0, "ignored": 0, "duplicates": 2}
    assert await stack.types(clinic) == events
    assert events == ["WhatsAppMessageReceived", "LeadCreated", "LeadScored"]


async def test_concurrent_redeliveries_run_every_command_once(stack: Stack) -> None:
    clinic, sender = new_id("clinic"), new_phone()
    payload = other_clinic_payload(sender, "Vreau albire dentară")
    responses = await asyncio.gather(*(stack.post(clinic, payload) for _ in range(4)))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    assert await stack.types(clinic) == ["WhatsAppMessageReceived", "LeadCreated", "LeadScored"]
    (entry,) = await stack.inbox(clinic)
    workflow_ids = {entry["detail"]["workflowId"]}
    listed: set[str] = set()
    for _ in range(100):  # visibility is eventually consistent
        listed = {w.id async for w in stack.temporal.list_workflows(f"ClinicId = '{clinic}'")}
        if listed:
            break
        await asyncio.sleep(0.1)
    assert listed == workflow_ids


async def test_a_failure_answers_503_and_the_retry_completes_the_work(stack: Stack) -> None:
    clinic, sender = new_id("clinic"), new_phone()
    payload = other_clinic_payload(sender, "Aș vrea fațete dentare")
    good = stack.app.state.whatsapp_webhooks
    target = stack.temporal.service_client.config.target_host
    lost = await Client.connect(
        target, namespace=new_id("no-such-namespace"), data_converter=data_converter(stack.settings)
    )
    stack.app.state.whatsapp_webhooks = stack.webhooks(
        good.config, TemporalWorkflowGateway(lost, stack.settings)
    )
    try:
        failed = await stack.post(clinic, payload)
    finally:
        stack.app.state.whatsapp_webhooks = good
    assert_problem(failed, 503, "SERVICE_UNAVAILABLE")
    assert failed.headers["Retry-After"] == "30"
    assert await stack.inbox(clinic) == []  # not marked done: the retry must run it

    retried = await stack.post(clinic, payload)
    assert retried.json()["processed"] == 1
    assert await stack.types(clinic) == ["WhatsAppMessageReceived", "LeadCreated", "LeadScored"]
    (entry,) = await stack.inbox(clinic)
    description = await stack.temporal.get_workflow_handle(entry["detail"]["workflowId"]).describe()
    assert description.workflow_type == "LeadScoringWorkflow"


# --- delivery statuses ---------------------------------------------------------------------


async def test_delivery_statuses_update_the_message(stack: Stack) -> None:
    clinic, phone = new_id("clinic"), new_phone()
    patient = await register_patient(stack, clinic, phone, ["data_processing"])
    confirmation = {
        "name": "Ana",
        "date": "05.03.2027",
        "time": "10:30",
        "location": "Str. Lunii 3",
    }
    first, first_wamid = await sent_message(
        stack, clinic, patient, phone, "appointment_confirmation", confirmation
    )
    second, second_wamid = await sent_message(
        stack, clinic, patient, phone, "appointment_confirmation", confirmation
    )
    before = len(await stack.events(clinic))
    statuses = [
        status_update(first_wamid, "sent", phone),
        status_update(first_wamid, "delivered", phone),
        status_update(first_wamid, "read", phone),
        status_update(
            second_wamid,
            "failed",
            phone,
            errors=[{"code": 131026, "title": "Message Undeliverable"}],
        ),
        status_update("wamid.someone-elses", "delivered", phone),
    ]
    payload = cloud_webhook(statuses=statuses, phone_number_id="1")
    response = await stack.post(clinic, payload)
    assert response.json() == {"received": 5, "processed": 4, "ignored": 1, "duplicates": 0}
    new = (await stack.events(clinic))[before:]
    assert [(e["event_type"], e["data"]["message_id"]) for e in new] == [
        ("WhatsAppMessageDelivered", first),
        ("WhatsAppMessageDelivered", first),
        ("WhatsAppMessageFailed", second),
    ]
    assert [e["data"].get("status") for e in new[:2]] == ["delivered", "read"]
    assert new[2]["data"]["error_code"] == "131026"
    assert new[2]["data"]["error_message"] == "Message Undeliverable"
    (view,) = await stack.ask(clinic, GetMessageStatus(message_id=first))
    (failed,) = await stack.ask(clinic, GetMessageStatus(message_id=second))
    assert view.status == "read" and view.read_at is not None
    assert failed.status == "failed" and failed.error_code == "131026"

    again = await stack.post(clinic, payload)
    assert again.json() == {"received": 5, "processed": 0, "ignored": 0, "duplicates": 5}
    assert len(await stack.events(clinic)) == before + 3
    outcomes = {e["item_key"]: e["outcome"] for e in await stack.inbox(clinic)}
    assert outcomes["status:wamid.someone-elses:delivered"] == "ignored"
    assert outcomes[f"status:{first_wamid}:read"] == "processed"


# --- the sandbox outbox --------------------------------------------------------------------


async def test_the_sandbox_lists_a_clinics_recorded_messages_to_authorised_keys(
    stack: Stack,
) -> None:
    clinic, other, phone = new_id("clinic"), new_id("clinic"), new_phone()
    patient = await register_patient(stack, clinic, phone, ["data_processing"])
    confirmation = {
        "name": "Ana",
        "date": "05.03.2027",
        "time": "10:30",
        "location": "Str. Lunii 3",
    }
    message_id = new_id("msg")
    await stack.run(
        clinic,
        QueueWhatsAppMessage(
            message_id=message_id,
            to="+" + phone,
            patient_id=patient,
            template_name="appointment_confirmation",
            template_params=confirmation,
        ),
    )
    await stack.sync()
    # What the delivery activity does: send with the message id as idempotency key.
    transport = SandboxWhatsAppTransport(stack.pool)
    wamid = await transport.send_template(
        "+" + phone, "appointment_confirmation", "ro", list(confirmation.values()), message_id
    )
    attributed = SandboxWhatsAppTransport(stack.pool, clinic_id=other)
    other_wamid = await attributed.send_text("+" + new_phone(), "Bună!", new_id("key"))

    keys = stack.app.state.api_keys
    _, messaging = await keys.create(clinic, {"messaging"})
    _, admin_other = await keys.create(other, {"admin"})
    _, reader = await keys.create(clinic, {"read"})

    def get(key: str | None, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return stack.http.get("/sandbox/whatsapp/messages", headers=headers, params=params)

    mine = (await get(messaging)).json()
    assert mine["clinicId"] == clinic and mine["count"] == 1
    (listed,) = mine["messages"]
    assert listed["messageId"] == wamid and listed["idempotencyKey"] == message_id
    assert listed["templateName"] == "appointment_confirmation" and listed["to"] == "+" + phone
    assert listed["payload"]["template"]["name"] == "appointment_confirmation"

    theirs = (await get(admin_other)).json()
    assert [m["messageId"] for m in theirs["messages"]] == [other_wamid]
    assert (await get(messaging, to="+" + new_phone())).json()["count"] == 0
    assert (await get(messaging, to="0" + phone[2:])).json()["count"] == 1  # local form

    assert_problem(await get(reader), 403, "FORBIDDEN")
    assert_problem(await get(None), 401, "UNAUTHENTICATED")
    sandbox = stack.app.state.whatsapp_sandbox
    stack.app.state.whatsapp_sandbox = None
    try:
        assert_problem(await get(messaging), 404, "NOT_FOUND")
    finally:
        stack.app.state.whatsapp_sandbox = sandbox
