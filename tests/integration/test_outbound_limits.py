"""Outbound WhatsApp limits on the real send path: PostgreSQL, the Temporal dev server.

``send_whatsapp`` runs as the gateway runs it, on the production container
(``adapters.container.build_services``: its command bus applies the limits), with the
real workflow gateway and a worker delivering to the sandbox outbox. A refused send
answers RATE_LIMITED with ``retryAfter`` and records nothing; cooldowns live in
PostgreSQL, so another process refuses what this one reserved; other people and
booking messages are unaffected.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from activities.messaging import MessagingActivities
from activities.payloads import QueueMessagePayload
from activities.support import AggregateReader
from adapters.container import Services, build_services
from adapters.cooldowns import DEFAULT_DAILY_LIMIT
from adapters.settings import Settings
from adapters.temporal.gateway import TemporalWorkflowGateway
from adapters.temporal.payloads import Caller
from domain.commands import RecordConsent, RegisterPatient
from domain.cqrs import CommandContext
from domain.errors import DomainError, RateLimited
from domain.functions.context import FunctionContext
from domain.functions.registry import REGISTRY
from domain.messaging import cooldown_for
from tests.fixtures.stack import temporal_address
from tests.fixtures.temporal import ALL_SCOPES, seed_clinic, settings_for_test
from workflows.worker import WorkerResources, build_workers, running

ROOT = Path(__file__).resolve().parents[2]
MARKETING = "hot_lead_acknowledgment"
MARKETING_PARAMS = {"name": "Ana", "procedure": "implant"}
CONFIRMATION_PARAMS = {
    "name": "Ana",
    "date": "14.03.2031",
    "time": "10:30",
    "location": "Str. Victoriei 10, București",
}
CONSENTS = ("data_processing", "appointment_reminders", "marketing_whatsapp")


@dataclass
class Sender:
    """The production container, the workflow gateway and one clinic's patients."""

    services: Services
    gateway: TemporalWorkflowGateway
    settings: Settings
    clinic_id: str

    async def patient(self, consents: tuple[str, ...] = CONSENTS) -> tuple[str, str]:
        """A new patient of the clinic (phone, id), with ``consents`` granted."""
        phone = phone_number()
        return phone, await register_patient(self.services, self.clinic_id, phone, consents)

    async def send(self, arguments: Mapping[str, Any], key: str | None = None) -> dict[str, Any]:
        """``send_whatsapp`` as the gateway runs it (validated, then its handler)."""
        spec = REGISTRY.specs["send_whatsapp"]
        command = CommandContext(
            clinic_id=self.clinic_id,
            actor="test:agent",
            idempotency_key=key,
            scopes=frozenset(ALL_SCOPES),
        )
        ctx = FunctionContext(
            command=command,
            commands=self.services.command_bus,
            queries=self.services.query_bus,
            workflows=self.gateway,
            now=datetime.now(UTC),
        )
        result = await spec.run(spec.validate(dict(arguments)), ctx)
        return result.wire()

    async def events(self) -> list[tuple[str, str]]:
        """The clinic's events (stream, type), in order, but for the outcomes of
        deliveries, which the worker records on its own schedule."""
        rows = await self.services.pool.fetch(
            "SELECT stream_id, event_type FROM events WHERE clinic_id = $1"
            " AND event_type <> ALL($2::text[]) ORDER BY global_position",
            self.clinic_id,
            ["WhatsAppMessageSent", "WhatsAppMessageDelivered", "WhatsAppMessageFailed"],
        )
        return [(r["stream_id"], r["event_type"]) for r in rows]

    async def queued(self, patient_id: str) -> int:
        """Messages in the outbox for ``patient_id``."""
        rows = await self.services.pool.fetch(
            "SELECT data FROM events WHERE clinic_id = $1 AND event_type = $2",
            self.clinic_id,
            "WhatsAppMessageQueued",
        )
        return sum(1 for r in rows if _data(r["data"]).get("patient_id") == patient_id)


def _data(raw: Any) -> dict[str, Any]:
    return json.loads(raw) if isinstance(raw, str) else dict(raw)


def marketing(phone: str, patient_id: str) -> dict[str, Any]:
    return {
        "to": phone,
        "patientId": patient_id,
        "templateName": MARKETING,
        "templateParams": MARKETING_PARAMS,
    }


def confirmation(phone: str, patient_id: str) -> dict[str, Any]:
    return {
        "to": phone,
        "patientId": patient_id,
        "templateName": "appointment_confirmation",
        "templateParams": CONFIRMATION_PARAMS,
    }


def phone_number() -> str:
    return f"+40731{uuid.uuid4().int % 1_000_000:06d}"


async def register_patient(
    services: Services, clinic_id: str, phone: str, consents: tuple[str, ...] = CONSENTS
) -> str:
    """A patient of ``clinic_id`` who granted ``consents``; their id."""
    context = CommandContext(clinic_id=clinic_id, actor="test:seed", scopes=frozenset(ALL_SCOPES))
    patient_id = f"pat-{uuid.uuid4().hex[:8]}"
    await services.command_bus.execute(
        RegisterPatient(patient_id=patient_id, first_name="Ana", last_name="Pop", phone=phone),
        context,
    )
    for consent in consents:
        await grant(services, clinic_id, patient_id, phone, consent)
    return patient_id


async def grant(
    services: Services, clinic_id: str, patient_id: str, phone: str, consent: str
) -> None:
    context = CommandContext(clinic_id=clinic_id, actor="test:seed", scopes=frozenset(ALL_SCOPES))
    await services.command_bus.execute(
        RecordConsent(
            patient_id=patient_id,
            phone=phone,
            consent_type=consent,  # type: ignore[arg-type]
            status="granted",
            source="test",
        ),
        context,
    )


@pytest_asyncio.fixture(scope="module")
async def sender(pg_dsn: str, temporal_env: WorkflowEnvironment) -> AsyncIterator[Sender]:
    settings = settings_for_test(
        database_url=pg_dsn, temporal_address=temporal_address(temporal_env)
    )
    services = await build_services(settings, pool_min=1, pool_max=8)
    try:
        clinic_id = f"clinic-{uuid.uuid4().hex[:8]}"
        await seed_clinic(services.command_bus, clinic_id=clinic_id)
        resources = WorkerResources(
            commands=services.command_bus,
            queries=services.query_bus,
            store=services.store,
            pseudonymizer=services.pseudonymizer,
            whatsapp=services.whatsapp,
            hubspot=None,
            registry=REGISTRY,
        )
        workers = build_workers(temporal_env.client, settings, resources, queues=["messaging"])
        async with running(workers):
            gateway = TemporalWorkflowGateway(temporal_env.client, settings, registry=REGISTRY)
            yield Sender(services, gateway, settings, clinic_id)
    finally:
        await services.aclose()


async def test_a_template_inside_its_cooldown_is_refused_and_nothing_is_recorded(
    sender: Sender,
) -> None:
    phone, patient_id = await sender.patient()
    first = await sender.send(marketing(phone, patient_id))
    assert first["status"] == "queued"
    before = await sender.events()

    with pytest.raises(RateLimited) as refused:
        await sender.send(marketing(phone, patient_id), key=f"again-{uuid.uuid4().hex}")

    error = refused.value.to_dict()
    assert error["code"] == "RATE_LIMITED"
    details = error["details"]
    assert details["limit"] == "template_cooldown"
    assert details["template"] == MARKETING
    week = int(cooldown_for(MARKETING).total_seconds())
    assert week - 120 <= details["retryAfter"] <= week
    assert details["retryAfterSeconds"] == details["retryAfter"]
    assert MARKETING in error["message"]
    assert await sender.events() == before, "a refused send records nothing"
    assert await sender.queued(patient_id) == 1

    # A booking confirmation is not held back by a marketing template's cooldown.
    confirmed = await sender.send(confirmation(phone, patient_id))
    assert confirmed["status"] == "queued"
    assert await sender.queued(patient_id) == 2


async def test_a_retried_send_is_a_replay_not_a_second_message_nor_a_refusal(
    sender: Sender,
) -> None:
    phone, patient_id = await sender.patient()
    key = f"retry-{uuid.uuid4().hex}"
    first = await sender.send(marketing(phone, patient_id), key=key)
    again = await sender.send(marketing(phone, patient_id), key=key)
    assert again["messageId"] == first["messageId"]
    assert await sender.queued(patient_id) == 1
    rows = await sender.services.pool.fetch(
        "SELECT message_id FROM outbound_reservations WHERE clinic_id = $1 AND message_id = $2",
        sender.clinic_id,
        first["messageId"],
    )
    assert len(rows) == 1, "one reservation per message, however often it is retried"


async def test_concurrent_sends_of_one_template_to_one_person_queue_exactly_one(
    sender: Sender,
) -> None:
    phone, patient_id = await sender.patient()
    outcomes = await asyncio.gather(
        *(sender.send(marketing(phone, patient_id)) for _ in range(6)), return_exceptions=True
    )
    sent = [o for o in outcomes if isinstance(o, dict)]
    refused = [o for o in outcomes if isinstance(o, RateLimited)]
    assert (len(sent), len(refused)) == (1, 5), outcomes
    assert await sender.queued(patient_id) == 1


async def wait_past_local_midnight_if_close() -> None:
    """The daily limit counts per clinic-local day: do not straddle midnight."""
    now = datetime.now(ZoneInfo("Europe/Bucharest"))
    midnight = datetime.combine(now.date() + timedelta(days=1), time(0), tzinfo=now.tzinfo)
    if midnight - now < timedelta(minutes=2):
        await asyncio.sleep((midnight - now).total_seconds() + 1)


async def test_the_daily_limit_refuses_one_more_but_never_a_booking_message(
    sender: Sender,
) -> None:
    await wait_past_local_midnight_if_close()
    phone, patient_id = await sender.patient()
    for n in range(DEFAULT_DAILY_LIMIT):
        await sender.send({"to": phone, "patientId": patient_id, "message": f"Mesajul {n}"})
    before = await sender.events()

    with pytest.raises(RateLimited) as refused:
        await sender.send({"to": phone, "patientId": patient_id, "message": "încă unul"})

    details = refused.value.details
    assert details["limit"] == "daily_messages"
    assert details["dailyLimit"] == DEFAULT_DAILY_LIMIT
    assert details["template"] is None
    assert 0 < details["retryAfter"] <= 24 * 3600 + 3600  # until local midnight (DST: 25 h)
    assert await sender.events() == before
    # Booking confirmations and reminders still reach the person.
    assert (await sender.send(confirmation(phone, patient_id)))["status"] == "queued"
    reminder = {
        "to": phone,
        "patientId": patient_id,
        "templateName": "appointment_reminder_24h",
        "templateParams": {"name": "Ana", "time": "10:30", "location": "Str. Victoriei 10"},
    }
    assert (await sender.send(reminder))["status"] == "queued"
    # ... while marketing stays refused (the day's count is spent).
    with pytest.raises(RateLimited):
        await sender.send({"to": phone, "patientId": patient_id, "message": "și acum?"})


async def test_a_refusal_by_the_handler_gives_the_reservation_back(sender: Sender) -> None:
    """Consent refused after the limits were checked: the person is not left blocked."""
    phone, patient_id = await sender.patient(consents=("data_processing",))
    arguments = marketing(phone, patient_id)
    with pytest.raises(DomainError) as refused:
        await sender.send(arguments)
    assert refused.value.code == "CONSENT_REQUIRED"
    await grant(sender.services, sender.clinic_id, patient_id, phone, "marketing_whatsapp")
    assert (await sender.send(arguments))["status"] == "queued"


async def test_a_workflow_message_refused_by_a_limit_is_skipped_with_the_reason(
    sender: Sender,
) -> None:
    """The messaging activity (nurture, journeys) reports the refusal instead of failing."""
    from temporalio.testing import ActivityEnvironment

    phone, patient_id = await sender.patient()
    await sender.send(marketing(phone, patient_id))
    services = sender.services
    activities = MessagingActivities(
        services.command_bus,
        AggregateReader(services.store, services.pseudonymizer),
        services.whatsapp,
    )
    before = await sender.events()
    queued = await ActivityEnvironment().run(
        activities.queue_message,
        QueueMessagePayload(
            caller=Caller(clinic_id=sender.clinic_id, actor="test:workflow"),
            message_id=f"msg-{uuid.uuid4().hex}",
            to=phone,
            patient_id=patient_id,
            template_name=MARKETING,
            template_params=MARKETING_PARAMS,
        ),
    )
    assert queued.queued is False
    assert queued.skipped is not None and queued.skipped["code"] == "RATE_LIMITED"
    assert queued.skipped["details"]["limit"] == "template_cooldown"
    assert await sender.events() == before


OTHER_PROCESS = """
import asyncio, json, sys
from datetime import UTC, datetime

from adapters.container import build_services
from adapters.settings import Settings
from adapters.temporal.client import connect_client
from adapters.temporal.gateway import TemporalWorkflowGateway
from domain.commands import RecordConsent, RegisterPatient
from domain.cqrs import CommandContext
from domain.errors import DomainError
from domain.functions.context import FunctionContext
from domain.functions.registry import REGISTRY


async def main() -> None:
    clinic, calls = sys.argv[1], json.loads(sys.argv[2])
    settings = Settings()
    services = await build_services(settings, pool_min=1, pool_max=2)
    gateway = TemporalWorkflowGateway(await connect_client(settings, tracing=False), settings)
    spec = REGISTRY.specs["send_whatsapp"]
    out = []
    try:
        for arguments in calls:
            command = CommandContext(clinic_id=clinic, actor="test:other-process",
                                     scopes=frozenset({"read", "write", "messaging"}))
            ctx = FunctionContext(command=command, commands=services.command_bus,
                                  queries=services.query_bus, workflows=gateway,
                                  now=datetime.now(UTC))
            try:
                out.append({"ok": (await spec.run(spec.validate(arguments), ctx)).wire()})
            except DomainError as exc:
                out.append({"error": exc.to_dict()})
    finally:
        await services.aclose()
    print(json.dumps(out))


asyncio.run(main())
"""


def run_in_another_process(sender: Sender, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``send_whatsapp`` calls in a fresh interpreter with a container of its own."""
    settings = sender.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDICALCOR_")}
    env.update(
        {
            "DATABASE_URL": str(settings.database_url),
            "TEMPORAL_ADDRESS": str(settings.temporal_address),
            "MEDICALCOR_SECRET_KEY": settings.secret_key,
            "MEDICALCOR_TASK_QUEUE": settings.task_queue_prefix,
            "MEDICALCOR_LOG_LEVEL": "WARNING",
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS, sender.clinic_id, json.dumps(calls)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


async def test_a_cooldown_outlives_the_process_and_spares_other_patients(
    sender: Sender,
) -> None:
    reserved_phone, reserved = await sender.patient()
    await sender.send(marketing(reserved_phone, reserved))
    other_phone, other = await sender.patient()
    # Not only a fresh container: a fresh interpreter, nothing shared but PostgreSQL.
    refused, allowed = await asyncio.to_thread(
        run_in_another_process,
        sender,
        [marketing(reserved_phone, reserved), marketing(other_phone, other)],
    )

    assert "error" in refused, refused
    assert refused["error"]["code"] == "RATE_LIMITED"
    assert refused["error"]["details"]["limit"] == "template_cooldown"
    assert refused["error"]["details"]["template"] == MARKETING
    assert refused["error"]["details"]["retryAfter"] > 0
    assert allowed.get("ok", {}).get("status") == "queued", allowed
    assert await sender.queued(reserved) == 1
    assert await sender.queued(other) == 1
    keys = await sender.services.pool.fetch(
        "SELECT recipient_key FROM template_cooldowns WHERE clinic_id = $1 AND template_name = $2",
        sender.clinic_id,
        MARKETING,
    )
    assert all(reserved_phone[1:] not in r["recipient_key"] for r in keys)  # no phones stored
