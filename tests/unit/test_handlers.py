"""Every command handler, run as the bus runs it, against the in-memory event store."""

from __future__ import annotations

import asyncio
import inspect
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from domain import commands
from domain.aggregates import Appointment, Consent, DoctorDay, Lead, Message, Patient
from domain.commands import (
    AddDoctor,
    AssignLead,
    CancelAppointment,
    CompleteAppointment,
    ConfigureClinic,
    ConfirmAppointment,
    ConvertLead,
    ErasePatient,
    LoseLead,
    MarkMessageDelivered,
    MarkMessageFailed,
    MarkMessageSent,
    MarkNoShow,
    PatientChanges,
    QualifyLead,
    QueueWhatsAppMessage,
    RecordConsent,
    RecordInboundMessage,
    RecordReminderSent,
    RegisterPatient,
    ReleaseAppointmentHold,
    RequestAppointment,
    RescheduleAppointment,
    ScoreLead,
    UpdatePatient,
)
from domain.consent_policy import consent_expiry
from domain.cqrs import Command, CommandContext
from domain.errors import Conflict, ConsentRequired, InvalidArguments, NotFound
from domain.events import (
    AppointmentBookingFailed,
    AppointmentCancelled,
    AppointmentRequested,
    AppointmentRescheduled,
    AppointmentScheduled,
    LeadCreated,
    LeadScored,
    SlotBooked,
    SlotHeld,
    SlotReleased,
)
from domain.handlers import COMMAND_HANDLERS
from domain.memory import CommandRun, HmacPseudonymizer, InMemoryEventStore, run_command

CLINIC = "clinic-1"
NOW = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)  # Monday 10:00 in Bucharest
TUESDAY = date(2025, 3, 4)
PHONE = "+40721234567"
BUCHAREST = ZoneInfo("Europe/Bucharest")


class Harness:
    """A clinic's command side in memory: run commands, read streams."""

    def __init__(self) -> None:
        self.store = InMemoryEventStore()
        self.ctx = CommandContext(clinic_id=CLINIC, actor="test")
        self.pseudo = HmacPseudonymizer(b"test")
        self.now = NOW

    async def run(self, cmd: Command, now: datetime | None = None) -> CommandRun:
        return await run_command(
            self.store, COMMAND_HANDLERS, cmd, self.ctx, now or self.now, self.pseudo
        )

    async def result(self, cmd: Command, now: datetime | None = None) -> dict[str, Any]:
        return (await self.run(cmd, now)).result

    async def refused(
        self, cmd: Command, error: type[Exception], now: datetime | None = None
    ) -> Any:
        """Run a command that must fail with ``error`` and append nothing."""
        before = await self.log_length()
        with pytest.raises(error) as caught:
            await self.run(cmd, now)
        assert await self.log_length() == before
        return caught.value

    async def log_length(self) -> int:
        return len(await self.store.read_all(after_position=0, limit=1_000_000))

    async def types(self, stream_id: str) -> list[str]:
        return [e.event_type for e in await self.store.read_stream(CLINIC, stream_id)]

    async def events(self, stream_id: str) -> list[Any]:
        return [e.to_domain() for e in await self.store.read_stream(CLINIC, stream_id)]

    async def setup(self, *doctors: AddDoctor) -> None:
        await self.run(ConfigureClinic(name="Dent"))
        for doctor in doctors or (AddDoctor(doctor_id="d-1", name="Dr Ana"),):
            await self.run(doctor)

    async def patient(self, patient_id: str = "p-1", *grants: str) -> None:
        await self.run(RegisterPatient(patient_id=patient_id, first_name="Ana", phone=PHONE))
        for consent_type in grants:
            await self.grant(patient_id, consent_type)

    async def grant(self, patient_id: str, consent_type: str, status: str = "granted") -> None:
        await self.run(
            RecordConsent(
                patient_id=patient_id,
                phone=PHONE,
                consent_type=consent_type,
                status=status,
                source="web",
            )
        )

    async def booked(self, appointment_id: str = "a-1", **kwargs: Any) -> dict[str, Any]:
        """A scheduled appointment (requested then confirmed)."""
        await self.request(appointment_id, **kwargs)
        return await self.result(ConfirmAppointment(appointment_id=appointment_id))

    async def request(self, appointment_id: str = "a-1", **kwargs: Any) -> dict[str, Any]:
        fields = {"patient_id": "p-1", "service_type": "consultation", "preferred_date": TUESDAY}
        return await self.result(
            RequestAppointment(appointment_id=appointment_id, **{**fields, **kwargs})
        )


@pytest.fixture
async def clinic() -> Harness:
    return Harness()


@pytest.fixture
async def ready(clinic: Harness) -> Harness:
    """Configured clinic with one doctor and a patient who granted data processing."""
    await clinic.setup()
    await clinic.patient("p-1", "data_processing")
    return clinic


def doctor_day(doctor_id: str, day: date) -> str:
    return DoctorDay.stream_id_for(DoctorDay.key(doctor_id, day))


def test_every_command_has_a_handler() -> None:
    declared = {
        obj
        for _, obj in inspect.getmembers(commands, inspect.isclass)
        if issubclass(obj, Command) and obj is not Command
    }
    assert declared == set(COMMAND_HANDLERS)


# --- clinic ---------------------------------------------------------------------------


async def test_configure_clinic_records_only_changes(clinic: Harness) -> None:
    first = await clinic.run(ConfigureClinic(name="Dent", slot_times=["09:00", "12:00"]))
    assert first.result == {"clinicId": CLINIC, "changed": True, "slotTimes": ["09:00", "12:00"]}
    again = await clinic.run(ConfigureClinic(name="Dent", slot_times=["09:00", "12:00"]))
    assert again.result["changed"] is False and again.appended is None


async def test_doctors_need_a_configured_clinic(clinic: Harness) -> None:
    await clinic.refused(AddDoctor(doctor_id="d-1", name="Dr Ana"), NotFound)
    await clinic.run(ConfigureClinic(name="Dent"))
    assert await clinic.result(AddDoctor(doctor_id="d-1", name="Dr Ana", services=["implant"])) == {
        "doctorId": "d-1",
        "added": True,
    }


# --- leads ----------------------------------------------------------------------------


def score(phone: str = PHONE, text: str = "Vreau un implant, cat costa?", **kw: Any) -> ScoreLead:
    return ScoreLead(
        phone=phone, channel="whatsapp", messages=[{"role": "user", "content": text}], **kw
    )


async def test_score_lead_creates_the_lead_then_scores_it(clinic: Harness) -> None:
    result = await clinic.result(score(utm={"source": "facebook", "campaign": "implant-2025"}))
    assert set(result) == {
        "leadId",
        "created",
        "status",
        "score",
        "classification",
        "confidence",
        "reasons",
        "suggestedAction",
        "procedureInterest",
        "emergency",
    }
    assert result["created"] is True and result["status"] == "scored"
    assert (result["score"], result["classification"]) == (4, "HOT")
    assert result["procedureInterest"] == "implant"
    assert result["leadId"] == clinic.pseudo.pseudonym(CLINIC, "lead", PHONE)
    created, scored = await clinic.events(Lead.stream_id_for(result["leadId"]))
    assert isinstance(created, LeadCreated) and created.source == "facebook"
    assert created.utm == {"source": "facebook", "campaign": "implant-2025"}
    assert isinstance(scored, LeadScored) and scored.previous_classification is None


async def test_rescoring_carries_the_previous_classification(clinic: Harness) -> None:
    first = await clinic.result(score())
    second = await clinic.result(score(phone="0721 234 567", text="buna ziua"))
    assert second["leadId"] == first["leadId"] and second["created"] is False
    events = await clinic.events(Lead.stream_id_for(first["leadId"]))
    assert [type(e).__name__ for e in events] == ["LeadCreated", "LeadScored", "LeadScored"]
    assert events[-1].previous_classification == "HOT"


async def test_local_phone_forms_are_the_same_lead(clinic: Harness) -> None:
    ids = {
        (await clinic.result(score(phone=p)))["leadId"]
        for p in ("0721 234 567", "0040721234567", "+40 721-234-567")
    }
    assert len(ids) == 1


async def test_an_invalid_phone_is_refused_before_anything_runs() -> None:
    with pytest.raises(ValueError):
        score(phone="12")


async def test_concurrent_first_contacts_create_one_lead(clinic: Harness) -> None:
    runs = await asyncio.gather(*(clinic.run(score()) for _ in range(5)))
    assert sorted(r.result["created"] for r in runs) == [False, False, False, False, True]
    types = await clinic.types(Lead.stream_id_for(runs[0].result["leadId"]))
    assert types.count("LeadCreated") == 1 and types.count("LeadScored") == 5


async def test_an_emergency_is_handed_to_a_human(clinic: Harness) -> None:
    result = await clinic.result(score(text="Am cazut si mi-am spart dintele, urgent"))
    assert result["emergency"] is True
    assert result["suggestedAction"] == "transfer_to_human"


async def test_lead_lifecycle_and_closed_leads_refuse(clinic: Harness) -> None:
    lead_id = (await clinic.result(score()))["leadId"]
    assert await clinic.result(QualifyLead(lead_id=lead_id)) == {
        "leadId": lead_id,
        "status": "qualified",
        "classification": "HOT",
        "changed": True,
    }
    assigned = await clinic.result(AssignLead(lead_id=lead_id, assignee="ana"))
    assert assigned["status"] == "assigned" and assigned["assignee"] == "ana"
    await clinic.refused(ConvertLead(lead_id=lead_id, patient_id="p-1"), NotFound)  # no patient
    await clinic.patient("p-1")
    converted = await clinic.result(ConvertLead(lead_id=lead_id, patient_id="p-1"))
    assert converted == {
        "leadId": lead_id,
        "status": "converted",
        "patientId": "p-1",
        "changed": True,
    }
    for cmd in (score(), QualifyLead(lead_id=lead_id), AssignLead(lead_id=lead_id, assignee="bob")):
        error = await clinic.refused(cmd, Conflict)
        assert error.details["status"] == "converted"
    await clinic.refused(LoseLead(lead_id=lead_id, reason="x"), Conflict)


async def test_a_lost_lead_refuses_scoring(clinic: Harness) -> None:
    lead_id = (await clinic.result(score()))["leadId"]
    assert (await clinic.result(LoseLead(lead_id=lead_id, reason="no budget")))["status"] == "lost"
    assert (await clinic.result(LoseLead(lead_id=lead_id, reason="again")))["changed"] is False
    await clinic.refused(score(), Conflict)


async def test_unknown_leads_are_not_found(clinic: Harness) -> None:
    for cmd in (
        QualifyLead(lead_id="x"),
        AssignLead(lead_id="x", assignee="a"),
        LoseLead(lead_id="x", reason="r"),
    ):
        await clinic.refused(cmd, NotFound)


# --- patients -------------------------------------------------------------------------


async def test_register_patient_once(clinic: Harness) -> None:
    cmd = RegisterPatient(
        patient_id="p-1", first_name="Ana", phone="0721 234 567", email=" Ana@X.ro "
    )
    assert await clinic.result(cmd) == {"patientId": "p-1", "registered": True}
    [registered] = await clinic.events(Patient.stream_id_for("p-1"))
    assert (registered.phone, registered.email) == (PHONE, "ana@x.ro")
    await clinic.refused(cmd, Conflict)


async def test_update_patient_records_only_real_changes(clinic: Harness) -> None:
    await clinic.patient("p-1")
    changes = PatientChanges(
        first_name="Ana", phone="0721 234 567", last_name="Pop", date_of_birth=date(1990, 5, 17)
    )
    result = await clinic.result(UpdatePatient(patient_id="p-1", updates=changes))
    assert result == {
        "patientId": "p-1",
        "updated": True,
        "changedFields": ["dateOfBirth", "lastName"],
    }
    updated = (await clinic.events(Patient.stream_id_for("p-1")))[-1]
    assert updated.changes == {"last_name": "Pop", "date_of_birth": "1990-05-17"}


async def test_an_update_that_changes_nothing_says_so(clinic: Harness) -> None:
    await clinic.patient("p-1")
    run = await clinic.run(
        UpdatePatient(patient_id="p-1", updates=PatientChanges(first_name="Ana"))
    )
    assert run.appended is None
    assert run.result["updated"] is False and run.result["changedFields"] == []
    assert "nothing changed" in run.result["message"]


async def test_fields_left_out_are_unchanged_and_none_clears(clinic: Harness) -> None:
    await clinic.patient("p-1")
    result = await clinic.result(
        UpdatePatient(patient_id="p-1", updates=PatientChanges(first_name=None))
    )
    assert result["changedFields"] == ["firstName"]
    updated = (await clinic.events(Patient.stream_id_for("p-1")))[-1]
    assert updated.changes == {"first_name": None}


async def test_updating_an_unknown_or_erased_patient_is_not_found(clinic: Harness) -> None:
    await clinic.refused(
        UpdatePatient(patient_id="nope", updates=PatientChanges(notes="x")), NotFound
    )
    await clinic.patient("p-1")
    assert (await clinic.result(ErasePatient(patient_id="p-1", reason="Art. 17")))["erased"] is True
    await clinic.refused(
        UpdatePatient(patient_id="p-1", updates=PatientChanges(notes="x")), NotFound
    )


# --- consent --------------------------------------------------------------------------


async def test_record_consent_needs_a_registered_patient(clinic: Harness) -> None:
    cmd = RecordConsent(
        patient_id="p-1",
        phone="0721234567",
        consent_type="marketing_whatsapp",
        status="granted",
        source="whatsapp",
    )
    await clinic.refused(cmd, NotFound)
    await clinic.patient("p-1")
    result = await clinic.result(cmd)
    assert result["status"] == "granted" and result["granted"] is True
    assert result["expiresAt"] == consent_expiry(NOW).isoformat()
    assert result["consentType"] == "marketing_whatsapp" and result["policyVersion"]
    [recorded] = await clinic.events(Consent.stream_id_for("p-1"))
    assert recorded.phone == PHONE and recorded.decided_at == NOW


# --- booking --------------------------------------------------------------------------


async def test_request_without_data_processing_consent_says_what_to_ask(clinic: Harness) -> None:
    await clinic.setup()
    await clinic.patient("p-1", "marketing_whatsapp")
    cmd = RequestAppointment(
        appointment_id="a-1", patient_id="p-1", service_type="cleaning", preferred_date=TUESDAY
    )
    error = await clinic.refused(cmd, ConsentRequired)
    assert error.code == "CONSENT_REQUIRED"
    assert error.details["missing"] == ["data_processing"]
    assert "personal data" in error.details["ask"]


async def test_a_withdrawn_or_expired_consent_blocks_booking(clinic: Harness) -> None:
    await clinic.setup()
    await clinic.patient("p-1", "data_processing")
    later = consent_expiry(NOW) + timedelta(days=1)
    cmd = RequestAppointment(
        appointment_id="a-1",
        patient_id="p-1",
        service_type="cleaning",
        preferred_date=later.date() + timedelta(days=1),
    )
    error = await clinic.refused(cmd, ConsentRequired, now=later)
    assert error.details["statuses"] == {"data_processing": "expired"}
    await clinic.grant("p-1", "data_processing", "withdrawn")
    await clinic.refused(
        RequestAppointment(
            appointment_id="a-1", patient_id="p-1", service_type="cleaning", preferred_date=TUESDAY
        ),
        ConsentRequired,
    )


async def test_request_holds_the_first_free_slot_atomically(ready: Harness) -> None:
    run = await ready.run(
        RequestAppointment(
            appointment_id="a-1", patient_id="p-1", service_type="implant", preferred_date=TUESDAY
        )
    )
    assert run.result == {
        "appointmentId": "a-1",
        "status": "requested",
        "doctorId": "d-1",
        "start": "2025-03-04T09:00:00+02:00",
        "end": "2025-03-04T10:30:00+02:00",
        "serviceType": "implant",
        "durationMinutes": 90,
        "created": True,
    }
    assert run.appended is not None
    assert run.appended.stream_versions == {
        Appointment.stream_id_for("a-1"): 1,
        doctor_day("d-1", TUESDAY): 1,
    }
    assert [type(e) for e in run.events] == [AppointmentRequested, SlotHeld]


async def test_request_respects_time_slot_duration_and_occupancy(ready: Harness) -> None:
    first = await ready.request("a-1", preferred_time_slot="afternoon", duration_minutes=120)
    assert (first["start"], first["end"]) == (
        "2025-03-04T14:00:00+02:00",
        "2025-03-04T16:00:00+02:00",
    )
    cmd = RequestAppointment(
        appointment_id="a-2",
        patient_id="p-1",
        service_type="consultation",
        preferred_date=TUESDAY,
        preferred_time_slot="afternoon",
    )
    error = await ready.refused(cmd, Conflict)  # 15:30 overlaps the two-hour booking
    starts = [a["start"] for a in error.details["alternatives"]]
    assert "2025-03-04T15:30:00+02:00" not in starts and "2025-03-04T17:00:00+02:00" in starts
    assert (await ready.request("a-3", preferred_time_slot="morning"))[
        "start"
    ] == "2025-03-04T09:00:00+02:00"


async def test_a_requested_doctor_is_honoured(clinic: Harness) -> None:
    await clinic.setup(AddDoctor(doctor_id="d-1", name="A"), AddDoctor(doctor_id="d-2", name="B"))
    await clinic.patient("p-1", "data_processing")
    assert (await clinic.request("a-1"))["doctorId"] == "d-1"
    assert (await clinic.request("a-2"))["doctorId"] == "d-2"  # same time, the other doctor
    assert (await clinic.request("a-3", doctor_id="d-2"))["start"] == "2025-03-04T10:30:00+02:00"
    await clinic.refused(
        RequestAppointment(
            appointment_id="a-4",
            patient_id="p-1",
            service_type="cleaning",
            preferred_date=TUESDAY,
            doctor_id="d-9",
        ),
        NotFound,
    )


async def test_a_service_no_doctor_performs_is_a_conflict(clinic: Harness) -> None:
    await clinic.setup(AddDoctor(doctor_id="d-1", name="A", services=["cleaning"]))
    await clinic.patient("p-1", "data_processing")
    error = await clinic.refused(
        RequestAppointment(
            appointment_id="a-1", patient_id="p-1", service_type="implant", preferred_date=TUESDAY
        ),
        Conflict,
    )
    assert error.details["serviceType"] == "implant"


async def test_no_free_slot_offers_alternatives(ready: Harness) -> None:
    await ready.request("a-1", preferred_time_slot="evening")
    error = await ready.refused(
        RequestAppointment(
            appointment_id="a-2",
            patient_id="p-1",
            service_type="consultation",
            preferred_date=TUESDAY,
            preferred_time_slot="evening",
        ),
        Conflict,
    )
    alternatives = error.details["alternatives"]
    assert len(alternatives) == 5
    assert alternatives[0] == {
        "doctorId": "d-1",
        "start": "2025-03-04T09:00:00+02:00",
        "end": "2025-03-04T10:00:00+02:00",
        "durationMinutes": 60,
    }
    assert "2025-03-04T17:00:00+02:00" not in [a["start"] for a in alternatives]


async def test_a_past_date_offers_alternatives_from_now_on(ready: Harness) -> None:
    error = await ready.refused(
        RequestAppointment(
            appointment_id="a-1",
            patient_id="p-1",
            service_type="consultation",
            preferred_date=date(2025, 3, 1),
        ),
        Conflict,
    )
    assert (
        error.details["alternatives"][0]["start"] == "2025-03-03T10:30:00+02:00"
    )  # today, after 10:00


async def test_concurrent_requests_never_share_a_slot(ready: Harness) -> None:
    cmds = [
        RequestAppointment(
            appointment_id=f"a-{n}",
            patient_id="p-1",
            service_type="consultation",
            preferred_date=TUESDAY,
            preferred_time_slot="morning",
        )
        for n in range(4)
    ]
    outcomes = await asyncio.gather(*(ready.run(c) for c in cmds), return_exceptions=True)
    won = [o.result["start"] for o in outcomes if isinstance(o, CommandRun)]
    assert sorted(won) == ["2025-03-04T09:00:00+02:00", "2025-03-04T10:30:00+02:00"]
    assert sum(isinstance(o, Conflict) for o in outcomes) == 2


async def test_repeating_a_request_changes_nothing(ready: Harness) -> None:
    first = await ready.request("a-1")
    run = await ready.run(
        RequestAppointment(
            appointment_id="a-1",
            patient_id="p-1",
            service_type="consultation",
            preferred_date=TUESDAY,
        )
    )
    assert run.appended is None and run.result["created"] is False
    assert run.result["start"] == first["start"]
    await ready.patient("p-2", "data_processing")
    await ready.refused(
        RequestAppointment(
            appointment_id="a-1",
            patient_id="p-2",
            service_type="consultation",
            preferred_date=TUESDAY,
        ),
        Conflict,
    )


async def test_booking_needs_a_configured_clinic_and_a_patient(clinic: Harness) -> None:
    await clinic.refused(
        RequestAppointment(
            appointment_id="a-1", patient_id="p-1", service_type="cleaning", preferred_date=TUESDAY
        ),
        NotFound,
    )
    await clinic.patient("p-1", "data_processing")
    error = await clinic.refused(
        RequestAppointment(
            appointment_id="a-1", patient_id="p-1", service_type="cleaning", preferred_date=TUESDAY
        ),
        NotFound,
    )
    assert error.details["clinicId"] == CLINIC


async def test_confirm_books_the_held_slot(ready: Harness) -> None:
    await ready.request("a-1")
    run = await ready.run(ConfirmAppointment(appointment_id="a-1"))
    assert run.result["status"] == "scheduled" and run.result["changed"] is True
    assert [type(e) for e in run.events] == [AppointmentScheduled, SlotBooked]
    again = await ready.run(ConfirmAppointment(appointment_id="a-1"))
    assert again.appended is None and again.result["changed"] is False
    await ready.refused(ConfirmAppointment(appointment_id="nope"), NotFound)


async def test_releasing_a_hold_frees_the_slot(ready: Harness) -> None:
    first = await ready.request("a-1")
    run = await ready.run(
        ReleaseAppointmentHold(appointment_id="a-1", reason="patient did not confirm")
    )
    assert run.result == {"appointmentId": "a-1", "status": "failed", "slotReleased": True}
    assert [type(e) for e in run.events] == [AppointmentBookingFailed, SlotReleased]
    assert (await ready.request("a-2"))["start"] == first["start"]
    again = await ready.run(ReleaseAppointmentHold(appointment_id="a-1"))
    assert again.appended is None and again.result["slotReleased"] is False
    await ready.refused(ConfirmAppointment(appointment_id="a-1"), Conflict)


async def test_a_scheduled_appointment_hold_cannot_be_released(ready: Harness) -> None:
    await ready.booked("a-1")
    await ready.refused(ReleaseAppointmentHold(appointment_id="a-1"), Conflict)


async def test_cancel_frees_the_slot_and_twice_is_a_conflict(ready: Harness) -> None:
    await ready.refused(CancelAppointment(appointment_id="nope"), NotFound)
    booked = await ready.booked("a-1")
    run = await ready.run(
        CancelAppointment(appointment_id="a-1", reason="sick", notify_patient=False)
    )
    assert run.result == {
        "appointmentId": "a-1",
        "status": "cancelled",
        "slotReleased": True,
        "notifyPatient": False,
    }
    assert [type(e) for e in run.events] == [AppointmentCancelled, SlotReleased]
    error = await ready.refused(CancelAppointment(appointment_id="a-1"), Conflict)
    assert error.details["status"] == "cancelled"
    assert (await ready.request("a-2"))["start"] == booked["start"]


async def test_reschedule_moves_the_slot_atomically(ready: Harness) -> None:
    await ready.booked("a-1")
    new_start = datetime(2025, 3, 5, 12, 0, tzinfo=UTC)  # Wednesday 14:00 local
    run = await ready.run(RescheduleAppointment(appointment_id="a-1", new_start=new_start))
    assert run.result["start"] == "2025-03-05T14:00:00+02:00"
    assert run.result["end"] == "2025-03-05T15:00:00+02:00"
    assert run.result["previousStart"] == "2025-03-04T09:00:00+02:00"
    assert [type(e) for e in run.events] == [AppointmentRescheduled, SlotReleased, SlotBooked]
    assert run.appended is not None and len(run.appended.stream_versions) == 3
    assert (await ready.request("a-2"))["start"] == "2025-03-04T09:00:00+02:00"  # old slot free


async def test_reschedule_within_the_same_day_and_onto_a_taken_slot(ready: Harness) -> None:
    await ready.booked("a-1")
    await ready.booked("a-2")  # 10:30
    taken = datetime(2025, 3, 4, 10, 30, tzinfo=BUCHAREST)
    await ready.refused(RescheduleAppointment(appointment_id="a-1", new_start=taken), Conflict)
    free = datetime(2025, 3, 4, 14, 0, tzinfo=BUCHAREST)
    result = await ready.result(RescheduleAppointment(appointment_id="a-1", new_start=free))
    assert result["start"] == "2025-03-04T14:00:00+02:00"


async def test_reschedule_refuses_odd_times_the_past_and_unscheduled(ready: Harness) -> None:
    await ready.request("a-1")
    ok_time = datetime(2025, 3, 5, 14, 0, tzinfo=BUCHAREST)
    await ready.refused(
        RescheduleAppointment(appointment_id="a-1", new_start=ok_time), Conflict
    )  # only held
    await ready.run(ConfirmAppointment(appointment_id="a-1"))
    odd = datetime(2025, 3, 5, 13, 0, tzinfo=BUCHAREST)
    await ready.refused(
        RescheduleAppointment(appointment_id="a-1", new_start=odd), InvalidArguments
    )
    past = datetime(2025, 3, 3, 9, 0, tzinfo=BUCHAREST)
    await ready.refused(RescheduleAppointment(appointment_id="a-1", new_start=past), Conflict)
    await ready.refused(
        RescheduleAppointment(appointment_id="a-1", new_start=ok_time, doctor_id="d-9"), NotFound
    )


async def test_complete_and_no_show_after_the_start(ready: Harness) -> None:
    await ready.booked("a-1")
    await ready.booked("a-2")
    await ready.refused(CompleteAppointment(appointment_id="a-1"), Conflict)  # not started yet
    after = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
    assert (await ready.result(CompleteAppointment(appointment_id="a-1"), now=after))[
        "status"
    ] == "completed"
    assert (await ready.result(MarkNoShow(appointment_id="a-2"), now=after))["status"] == "no_show"
    await ready.refused(CancelAppointment(appointment_id="a-1"), Conflict, now=after)


async def test_reminders_are_recorded_once_per_kind(ready: Harness) -> None:
    await ready.booked("a-1")
    cmd = RecordReminderSent(appointment_id="a-1", kind="24h", message_id="m-1")
    assert (await ready.result(cmd))["recorded"] is True
    assert (await ready.result(cmd))["recorded"] is False
    await ready.run(CancelAppointment(appointment_id="a-1"))
    await ready.refused(
        RecordReminderSent(appointment_id="a-1", kind="2h", message_id="m-2"), Conflict
    )


# --- messaging ------------------------------------------------------------------------


def whatsapp(message_id: str = "m-1", **kw: Any) -> QueueWhatsAppMessage:
    fields: dict[str, Any] = {
        "to": "0721 234 567",
        "patient_id": "p-1",
        "template_name": "hot_lead_acknowledgment",
        "template_params": {"name": "Ana", "procedure": "implant"},
    }
    return QueueWhatsAppMessage(message_id=message_id, **{**fields, **kw})


async def test_a_marketing_template_needs_marketing_consent(clinic: Harness) -> None:
    await clinic.patient("p-1", "data_processing")
    error = await clinic.refused(whatsapp(), ConsentRequired)
    assert error.details["missing"] == ["marketing_whatsapp"]
    assert "WhatsApp" in error.details["ask"]
    await clinic.grant("p-1", "marketing_whatsapp")
    run = await clinic.run(whatsapp())
    assert run.result == {"messageId": "m-1", "status": "queued", "queued": True}
    [queued] = await clinic.events(Message.stream_id_for("m-1"))
    assert queued.category == "marketing" and queued.to == PHONE
    assert queued.template_params == ["Ana", "implant"]


async def test_reminders_and_free_text_need_their_consents(clinic: Harness) -> None:
    await clinic.patient("p-1")
    reminder = whatsapp(
        template_name="appointment_reminder_24h",
        template_params=["Ana", "09:00", "Str. Victoriei 1"],
    )
    error = await clinic.refused(reminder, ConsentRequired)
    assert error.details["missing"] == ["appointment_reminders"]
    text = whatsapp("m-2", template_name=None, template_params=[], text="Bună ziua!")
    error = await clinic.refused(text, ConsentRequired)
    assert error.details["missing"] == ["data_processing"]
    await clinic.grant("p-1", "appointment_reminders")
    assert (await clinic.result(reminder))["queued"] is True


async def test_without_a_patient_a_gated_message_is_refused(clinic: Harness) -> None:
    error = await clinic.refused(whatsapp(patient_id=None), ConsentRequired)
    assert error.details["missing"] == ["marketing_whatsapp"]
    assert "patientId" in error.details["ask"]


async def test_template_parameters_and_names_are_checked(clinic: Harness) -> None:
    await clinic.patient("p-1", "marketing_whatsapp")
    await clinic.refused(whatsapp(template_params={"name": "Ana"}), InvalidArguments)
    await clinic.refused(whatsapp(template_name="no_such_template"), InvalidArguments)
    with pytest.raises(ValueError):
        QueueWhatsAppMessage(message_id="m", to=PHONE, text="a", template_name="b")


async def test_message_lifecycle_through_the_handlers(clinic: Harness) -> None:
    await clinic.patient("p-1", "marketing_whatsapp")
    await clinic.run(whatsapp())
    repeat = await clinic.run(whatsapp())
    assert repeat.appended is None and repeat.result["queued"] is False
    sent = await clinic.result(MarkMessageSent(message_id="m-1", provider_message_id="wamid.1"))
    assert sent == {"messageId": "m-1", "status": "sent", "changed": True}
    assert (await clinic.result(MarkMessageSent(message_id="m-1", provider_message_id="wamid.1")))[
        "changed"
    ] is False
    await clinic.refused(MarkMessageSent(message_id="m-1", provider_message_id="wamid.2"), Conflict)
    read = await clinic.result(
        MarkMessageDelivered(message_id="m-1", provider_message_id="wamid.1", status="read")
    )
    assert read["status"] == "read"
    stale = await clinic.result(
        MarkMessageDelivered(message_id="m-1", provider_message_id="wamid.1")
    )
    assert stale == {"messageId": "m-1", "status": "read", "changed": False}
    await clinic.refused(MarkMessageFailed(message_id="m-1", error_code="x"), Conflict)
    await clinic.refused(MarkMessageSent(message_id="nope", provider_message_id="w"), NotFound)


async def test_a_failed_message_is_never_sent(clinic: Harness) -> None:
    await clinic.patient("p-1", "marketing_whatsapp")
    await clinic.run(whatsapp())
    transient = await clinic.result(
        MarkMessageFailed(message_id="m-1", error_code="500", permanent=False)
    )
    assert transient["status"] == "queued"
    final = await clinic.result(
        MarkMessageFailed(message_id="m-1", error_code="131047", error_message="window")
    )
    assert final["status"] == "failed"
    await clinic.refused(MarkMessageSent(message_id="m-1", provider_message_id="wamid.1"), Conflict)


async def test_inbound_messages_are_recorded_once_and_linked_to_the_lead(clinic: Harness) -> None:
    inbound = RecordInboundMessage(provider_message_id="w-1", from_phone="0721234567", text="DA")
    first = await clinic.result(inbound)
    assert first["recorded"] is True and first["leadId"] is None
    assert first["conversationId"] == clinic.pseudo.pseudonym(CLINIC, "conversation", PHONE)
    assert (await clinic.result(inbound))["recorded"] is False
    lead_id = (await clinic.result(score()))["leadId"]
    later = await clinic.result(
        RecordInboundMessage(provider_message_id="w-2", from_phone=PHONE, text="Buna")
    )
    assert later["leadId"] == lead_id
    events = await clinic.events(f"conversation-{first['conversationId']}")
    assert [e.provider_message_id for e in events] == ["w-1", "w-2"]
    assert events[1].lead_id == lead_id
