"""The crypto-shredding store over the in-memory store, and GDPR erasure/export on it.

The shared EventStore contract runs over the decorator; the other tests put
personal data through it and through the real command handlers.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pytest

from adapters.crypto.fields import ERASED, is_sealed
from adapters.crypto.keys import InMemorySubjectKeyStore, SubjectErased, subject_id
from adapters.gdpr import GdprServices, erase_patient, export_patient, workflow_ids
from adapters.shredding_store import CryptoShreddingEventStore, sealed_class
from domain import commands as c
from domain.aggregates import Appointment, Conversation, Lead, Message, Patient
from domain.cqrs import Command, CommandContext, CommandResult
from domain.errors import IdempotencyKeyReused, InvalidArguments, NotFound
from domain.events import (
    EVENT_TYPES,
    EventMetadata,
    LeadCreated,
    PatientRegistered,
    RecordedEvent,
    WhatsAppMessageReceived,
)
from domain.handlers import COMMAND_HANDLERS
from domain.memory import HmacPseudonymizer, InMemoryEventStore, run_command
from domain.ports import NO_STREAM, EventStore, Snapshot, StreamAppend
from domain.upcasting import Upcasters
from tests.contracts.event_store_contract import EventStoreContract

META = EventMetadata(actor="test")
NOW = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)  # a Monday
PHONE = "+40721234567"
SECRETS = ("Ioana", "Mărginean", "721234567", "ioana.m@example.ro", "penicilin", "dinte rupt")


def shredding(inner: EventStore | None = None) -> CryptoShreddingEventStore:
    return CryptoShreddingEventStore(
        inner or InMemoryEventStore(),
        InMemorySubjectKeyStore(),
        HmacPseudonymizer(b"unit-test-pseudonym-secret"),
    )


class TestShreddingOverMemory(EventStoreContract):
    @pytest.fixture
    def store(self) -> EventStore:
        return shredding()


def registered(patient_id: str = "p1", **changes: Any) -> PatientRegistered:
    fields: dict[str, Any] = {
        "patient_id": patient_id,
        "first_name": "Ioana",
        "last_name": "Mărginean",
        "phone": PHONE,
        "email": "ioana.m@example.ro",
        "notes": "alergie la penicilină",
    }
    return PatientRegistered(**{**fields, **changes})


def to(stream: str, *events: Any, expected: int = NO_STREAM, kind: str = "patient") -> StreamAppend:
    return StreamAppend(
        stream_id=stream, stream_type=kind, expected_version=expected, events=events
    )


def raw(store: CryptoShreddingEventStore) -> str:
    inner = store.inner
    assert isinstance(inner, InMemoryEventStore)
    return json.dumps([e.data for e in inner._log], ensure_ascii=False) + json.dumps(
        [s.state for s in inner._snapshots.values()], ensure_ascii=False
    )


# --- sealing --------------------------------------------------------------------------------


async def test_personal_fields_are_sealed_in_the_inner_store_and_read_back_in_clear() -> None:
    store = shredding()
    await store.append("c1", [to("patient-p1", registered())], metadata=META)
    stored = raw(store)
    for secret in SECRETS[:4]:
        assert secret not in stored
    [event] = await store.read_stream("c1", "patient-p1")
    assert event.to_domain() == registered()
    [same] = await store.read_all(after_position=0, limit=10)
    assert same.to_domain() == registered()


def test_the_sealed_look_alike_is_never_registered() -> None:
    look_alike = sealed_class(PatientRegistered)
    assert EVENT_TYPES["PatientRegistered"] is PatientRegistered
    assert look_alike.event_type() == "PatientRegistered"
    assert look_alike.stream_type == "patient" and look_alike is not PatientRegistered


async def test_the_same_idempotency_key_and_personal_content_replays() -> None:
    store = shredding()
    first = await store.append(
        "c1", [to("patient-p1", registered())], metadata=META, idempotency_key="k"
    )
    again = await store.append(
        "c1", [to("patient-p1", registered())], metadata=META, idempotency_key="k"
    )
    assert again.replayed and again.stream_versions == first.stream_versions
    with pytest.raises(IdempotencyKeyReused):
        await store.append(
            "c1",
            [to("patient-p1", registered(first_name="Maria"))],
            metadata=META,
            idempotency_key="k",
        )
    assert len(await store.read_stream("c1", "patient-p1")) == 1


async def test_without_an_idempotency_key_equal_values_seal_differently() -> None:
    store = shredding()
    await store.append("c1", [to("patient-p1", registered())], metadata=META)
    await store.append("c1", [to("patient-p2", registered("p2"))], metadata=META)
    inner = store.inner
    assert isinstance(inner, InMemoryEventStore)
    one, two = (e.data["phone"] for e in inner._log)
    assert is_sealed(one) and is_sealed(two) and one["ct"] != two["ct"]


async def test_an_unsealed_value_of_the_sealed_shape_is_refused() -> None:
    store = shredding()
    fake = {"$enc": "v1", "kid": "sk_x", "ct": "AAAA"}
    lead = LeadCreated(lead_id="l1", phone=PHONE, channel="web", utm=fake)
    with pytest.raises(InvalidArguments):
        await store.append("c1", [to("lead-l1", lead, kind="lead")], metadata=META)
    assert await store.read_stream("c1", "lead-l1") == []


async def test_snapshots_of_a_subjects_stream_are_sealed_and_forgotten_on_erasure() -> None:
    store = shredding()
    state = {"phone": PHONE, "decisions": {}}
    await store.save_snapshot("c1", Snapshot(stream_id="consent-p1", version=50, state=state))
    assert PHONE not in raw(store)
    loaded = await store.load_snapshot("c1", "consent-p1")
    assert loaded is not None and loaded.state == state
    await store.keys.destroy("c1", ["patient:p1"], actor="admin", reason=None)
    assert await store.load_snapshot("c1", "consent-p1") is None
    # nothing is snapshotted for an erased patient any more
    await store.save_snapshot("c1", Snapshot(stream_id="consent-p1", version=100, state=state))
    assert await store.load_snapshot("c1", "consent-p1") is None


async def test_snapshots_without_personal_data_stay_plain() -> None:
    store = shredding()
    snap = Snapshot(stream_id="doctor_day-d1:2025-03-04", version=100, state={"slots": {}})
    await store.save_snapshot("c1", snap)
    assert await store.inner.load_snapshot("c1", snap.stream_id) == snap


async def test_upcasters_see_opened_data() -> None:
    upcasters = Upcasters()
    seen: list[Any] = []

    @upcasters.register("PatientRegistered", 0)
    def lift(data: dict[str, Any]) -> dict[str, Any]:
        seen.append(data["phone"])
        return data

    store = CryptoShreddingEventStore(
        InMemoryEventStore(),
        InMemorySubjectKeyStore(),
        HmacPseudonymizer(b"unit-test-pseudonym-secret"),
        upcasters=upcasters,
    )
    await store.append("c1", [to("patient-p1", registered())], metadata=META)
    inner = store.inner
    assert isinstance(inner, InMemoryEventStore)
    inner._log[0] = inner._log[0].model_copy(update={"schema_version": 0})  # an old event
    [event] = await store.read_all(after_position=0, limit=10)
    assert seen == [PHONE] and event.schema_version == 1


# --- subjects and erasure of keys -----------------------------------------------------------


async def test_an_erased_patient_gets_no_new_key_but_a_conversation_does() -> None:
    store = shredding()
    await store.append("c1", [to("patient-p1", registered())], metadata=META)
    await store.keys.destroy("c1", ["patient:p1"], actor="admin", reason="request")
    [erased] = await store.read_stream("c1", "patient-p1")
    assert erased.data["first_name"] is None and erased.data["phone"] is None
    with pytest.raises(SubjectErased):
        await store.append("c1", [to("patient-p1", registered(), expected=1)], metadata=META)

    conversation = subject_id("conversation", "x")
    inbound = WhatsAppMessageReceived(provider_message_id="w1", from_phone=PHONE, text="salut")
    await store.keys.destroy("c1", [conversation], actor="admin", reason=None)
    await store.append("c1", [to("conversation-x", inbound, kind="conversation")], metadata=META)
    [back] = await store.read_stream("c1", "conversation-x")
    assert back.data["text"] == "salut"


async def test_a_patient_erased_before_it_had_a_key_never_gets_one() -> None:
    store = shredding()
    await store.keys.destroy("c1", ["patient:p9"], actor="admin", reason=None)
    with pytest.raises(SubjectErased):
        await store.append("c1", [to("patient-p9", registered("p9"))], metadata=META)


# --- GDPR through the real command handlers ---------------------------------------------------


@dataclass
class MemoryCommands:
    """The command bus's contract over ``run_command`` (load → handle → append)."""

    store: EventStore
    pseudonymizer: HmacPseudonymizer
    ran: list[str] = field(default_factory=list)

    async def execute(self, command: Command, context: CommandContext) -> CommandResult:
        run = await run_command(
            self.store, COMMAND_HANDLERS, command, context, NOW, self.pseudonymizer
        )
        self.ran.append(command.command_type)
        appended = run.appended
        return CommandResult(
            result=run.result,
            stream_versions=appended.stream_versions if appended else {},
            position=appended.last_position if appended else 0,
            replayed=bool(appended and appended.replayed),
        )


@dataclass
class Clinic:
    store: CryptoShreddingEventStore
    services: GdprServices
    commands: MemoryCommands
    clinic_id: str
    lead_id: str
    conversation_id: str

    def ctx(self) -> CommandContext:
        return CommandContext(clinic_id=self.clinic_id, actor="api_key:test")

    async def run(self, command: Command) -> dict[str, Any]:
        return (await self.commands.execute(command, self.ctx())).result

    async def everything(self) -> list[RecordedEvent]:
        return [
            e
            for e in await self.store.read_all(after_position=0, limit=10_000)
            if e.clinic_id == self.clinic_id
        ]


@pytest.fixture
async def clinic() -> Clinic:
    pseudonymizer = HmacPseudonymizer(b"unit-test-pseudonym-secret")
    keys = InMemorySubjectKeyStore()
    store = CryptoShreddingEventStore(InMemoryEventStore(), keys, pseudonymizer)
    commands = MemoryCommands(store, pseudonymizer)
    services = GdprServices(store=store, keys=keys, commands=commands, clock=lambda: NOW)
    clinic_id = f"clinic-{uuid.uuid4().hex[:8]}"
    world = Clinic(
        store,
        services,
        commands,
        clinic_id,
        pseudonymizer.pseudonym(clinic_id, "lead", PHONE),
        pseudonymizer.pseudonym(clinic_id, "conversation", PHONE),
    )
    await seed(world)
    return world


async def seed(world: Clinic) -> None:
    """A lead who wrote on WhatsApp, became patient p1, consented, booked, was messaged."""
    await world.run(c.ConfigureClinic(name="Zâmbet"))
    await world.run(c.AddDoctor(doctor_id="d1", name="Dr. Pop"))
    await world.run(
        c.ScoreLead(
            phone="0721 234 567",
            channel="whatsapp",
            messages=[{"role": "user", "content": "Vreau un implant, cât costă?"}],
        )
    )
    await world.run(
        c.RecordInboundMessage(
            provider_message_id="wamid.1", from_phone=PHONE, text="Am un dinte rupt"
        )
    )
    await world.run(
        c.RegisterPatient(
            patient_id="p1",
            first_name="Ioana",
            last_name="Mărginean",
            phone=PHONE,
            email="ioana.m@example.ro",
            notes="alergie la penicilină",
            lead_id=world.lead_id,
        )
    )
    await world.run(c.ConvertLead(lead_id=world.lead_id, patient_id="p1"))
    await world.run(
        c.RecordConsent(
            patient_id="p1",
            phone=PHONE,
            consent_type="data_processing",
            status="granted",
            source="web_form",
            ip_address="198.51.100.7",
        )
    )
    await world.run(
        c.RequestAppointment(
            appointment_id="a1",
            patient_id="p1",
            service_type="implant",
            preferred_date=date(2025, 3, 5),
            notes="Ioana preferă dimineața",
        )
    )
    await world.run(
        c.QueueWhatsAppMessage(
            message_id="m1", to=PHONE, patient_id="p1", text="Bună Ioana, vă așteptăm!"
        )
    )
    # Someone else, never linked to p1: must survive p1's erasure.
    await world.run(c.RegisterPatient(patient_id="p2", first_name="Radu", phone="+40722000111"))


def dumped(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


async def test_the_export_holds_everything_about_the_patient(clinic: Clinic) -> None:
    export = await export_patient(clinic.services, clinic.clinic_id, "p1")
    assert export["erased"] is False and export["erasure"] is None
    assert export["profile"]["firstName"] == "Ioana"
    assert export["profile"]["email"] == "ioana.m@example.ro"
    [decision] = export["consents"]["decisions"]
    assert decision["source"] == "web_form" and decision["ipAddress"] == "198.51.100.7"
    assert decision["policyVersion"] and datetime.fromisoformat(decision["decidedAt"]) == NOW
    assert decision["recordedBy"] == "api_key:test"
    assert export["consents"]["current"]["data_processing"]["status"] == "granted"
    [appointment] = export["appointments"]
    assert (
        appointment["appointmentId"] == "a1" and appointment["notes"] == "Ioana preferă dimineața"
    )
    directions = {(m["direction"], m.get("text")) for m in export["messages"]}
    assert directions == {
        ("outbound", "Bună Ioana, vă așteptăm!"),
        ("inbound", "Am un dinte rupt"),
    }
    [lead] = export["leads"]
    assert lead["phone"] == PHONE and lead["status"] == "converted"
    types = {e["type"] for e in export["events"]}
    assert {"PatientRegistered", "LeadCreated", "ConsentRecorded", "AppointmentRequested"} <= types
    assert {"WhatsAppMessageQueued", "WhatsAppMessageReceived", "LeadConverted"} <= types
    assert "Radu" not in dumped(export)
    assert {k["subjectId"] for k in export["keys"]} == {
        "patient:p1",
        f"lead:{clinic.lead_id}",
        f"conversation:{clinic.conversation_id}",
    }


async def test_erasure_forgets_the_person_and_keeps_every_fact(clinic: Clinic) -> None:
    before = await clinic.everything()
    assert any(s in dumped([e.data for e in before]) for s in SECRETS)

    report = await erase_patient(
        clinic.services, clinic.clinic_id, "p1", actor="api_key:admin", reason="Art. 17 request"
    )
    assert report["erased"] is True and report["alreadyErased"] is False
    assert set(report["subjects"]) == {
        "patient:p1",
        f"lead:{clinic.lead_id}",
        f"conversation:{clinic.conversation_id}",
    }
    assert len(report["keysDestroyed"]) == 3
    assert "ErasePatient" in clinic.commands.ran

    after = await clinic.everything()
    text = dumped([e.data for e in after])
    for secret in SECRETS:
        assert secret not in text, secret
    assert "Radu" in text  # the other patient is untouched
    # every fact is still there: same events, same types, same versions, one more event
    assert [(e.stream_id, e.version, e.event_type) for e in after[: len(before)]] == [
        (e.stream_id, e.version, e.event_type) for e in before
    ]
    assert after[-1].event_type == "PatientErased"
    assert after[-1].data == {
        "patient_id": "p1",
        "requested_by": "api_key:admin",
        "reason": "Art. 17 request",
    }


async def test_aggregates_still_rehydrate_after_erasure(clinic: Clinic) -> None:
    async def load(cls: Any, ident: str) -> Any:
        events = await clinic.store.read_stream(clinic.clinic_id, cls.stream_id_for(ident))
        return cls.rehydrate(ident, [e.to_domain() for e in events], events[-1].version)

    score = (await load(Lead, clinic.lead_id)).score
    assert score is not None
    await erase_patient(clinic.services, clinic.clinic_id, "p1", actor="admin")

    patient = await load(Patient, "p1")
    assert patient.erased and patient.profile["first_name"] is None and patient.version == 2
    lead = await load(Lead, clinic.lead_id)
    assert (lead.status, lead.score, lead.phone) == ("converted", score, ERASED)
    appointment = await load(Appointment, "a1")
    assert appointment.status == "requested" and appointment.patient_id == "p1"
    message = await load(Message, "m1")
    assert message.status == "queued" and message.content["to"] == ERASED
    conversation = await load(Conversation, clinic.conversation_id)
    assert conversation.received == 1


async def test_the_export_after_erasure_shows_only_markers(clinic: Clinic) -> None:
    await erase_patient(clinic.services, clinic.clinic_id, "p1", actor="admin", reason="asked")
    export = await export_patient(clinic.services, clinic.clinic_id, "p1")
    text = dumped(export)
    for secret in SECRETS:
        assert secret not in text, secret
    assert export["erased"] is True
    assert export["erasure"]["requestedBy"] == "admin" and export["erasure"]["keysDestroyed"] == 3
    assert export["profile"]["firstName"] is None and export["profile"]["phone"] is None
    [decision] = export["consents"]["decisions"]
    assert decision["phone"] == ERASED and decision["ipAddress"] is None
    assert decision["source"] == "web_form"  # how consent was given stays provable
    assert all(k["destroyedAt"] is not None for k in export["keys"])


async def test_erasure_is_repeatable_and_unknown_patients_are_not_found(clinic: Clinic) -> None:
    await erase_patient(clinic.services, clinic.clinic_id, "p1", actor="admin")
    again = await erase_patient(clinic.services, clinic.clinic_id, "p1", actor="admin")
    assert again["alreadyErased"] is True and again["keysDestroyed"] == []
    with pytest.raises(NotFound):
        await erase_patient(clinic.services, clinic.clinic_id, "nobody", actor="admin")
    with pytest.raises(NotFound):
        await export_patient(clinic.services, clinic.clinic_id, "nobody")


async def test_after_erasure_the_patient_cannot_be_messaged_but_the_phone_may_write_again(
    clinic: Clinic,
) -> None:
    await erase_patient(clinic.services, clinic.clinic_id, "p1", actor="admin")
    with pytest.raises(NotFound):
        await clinic.run(
            c.QueueWhatsAppMessage(message_id="m2", to=PHONE, patient_id="p1", text="hello")
        )
    await clinic.run(
        c.RecordInboundMessage(provider_message_id="wamid.2", from_phone=PHONE, text="Revin")
    )
    stream = Conversation.stream_id_for(clinic.conversation_id)
    texts = [e.data["text"] for e in await clinic.store.read_stream(clinic.clinic_id, stream)]
    assert texts == [ERASED, "Revin"]


def test_workflow_ids_of_a_patients_streams() -> None:
    streams = {"appointment-a1", "message-m1", "patient-p1", "lead-x"}
    assert workflow_ids("c1", streams) == ["c1:booking:a1", "c1:message-delivery:m1"]
