"""Appointment lifecycle and the doctor's day that forbids double-booking."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, multiple, rule

from domain.aggregate import Aggregate
from domain.aggregates import Appointment, DoctorDay
from domain.commands import (
    AddDoctor,
    CancelAppointment,
    ConfigureClinic,
    ConfirmAppointment,
    RecordConsent,
    RegisterPatient,
    ReleaseAppointmentHold,
    RequestAppointment,
    RescheduleAppointment,
)
from domain.cqrs import Command, CommandContext
from domain.errors import Conflict, DomainError, InvalidArguments, NotFound
from domain.events import AppointmentRescheduled, DomainEvent, SlotReleased
from domain.handlers import COMMAND_HANDLERS
from domain.memory import HmacPseudonymizer, InMemoryEventStore, run_command
from domain.scheduling import overlaps
from tests.contracts.aggregate_contract import (
    AggregateMachine,
    assert_aggregate_laws,
    attempt,
    roundtrip,
)

A = TypeVar("A", bound=Aggregate)
TZ = ZoneInfo("Europe/Bucharest")
DAY = date(2025, 3, 4)


def at(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=TZ)


def requested(appointment_id: str = "a-1", start: datetime | None = None) -> Appointment:
    start = start or at(9)
    appointment = Appointment(appointment_id)
    appointment.request(
        patient_id="p-1",
        service_type="implant",
        preferred_date=DAY,
        doctor_id="d-1",
        start=start,
        end=start + timedelta(minutes=90),
    )
    return appointment


# --- Appointment ----------------------------------------------------------------------


def test_a_request_holds_its_slot_and_confirm_schedules_it() -> None:
    appointment = requested()
    assert appointment.status == "requested"
    assert appointment.slot == ("d-1", at(9), at(10, 30))
    assert appointment.confirm() is True
    assert appointment.status == "scheduled"
    assert appointment.confirm() is False
    with pytest.raises(Conflict):
        appointment.request(
            patient_id="p-1",
            service_type="implant",
            preferred_date=DAY,
            doctor_id="d-1",
            start=at(9),
            end=at(10, 30),
        )


def test_a_failed_booking_cannot_be_confirmed_or_cancelled() -> None:
    appointment = requested()
    assert appointment.fail("no confirmation") is True
    assert appointment.fail("again") is False
    assert isinstance(attempt(appointment, appointment.confirm), Conflict)
    assert isinstance(attempt(appointment, appointment.cancel), Conflict)


def test_cancelling_twice_is_a_conflict() -> None:
    appointment = requested()
    appointment.confirm()
    appointment.cancel("patient asked", notify_patient=False)
    assert appointment.status == "cancelled"
    error = attempt(appointment, lambda: appointment.cancel("again"))
    assert isinstance(error, Conflict) and error.details["status"] == "cancelled"


def test_unknown_appointments_are_not_found() -> None:
    appointment = Appointment("nope")
    for action in (appointment.confirm, appointment.cancel, lambda: appointment.fail("x")):
        with pytest.raises(NotFound):
            action()


def test_reschedule_keeps_it_scheduled_and_resets_reminders() -> None:
    appointment = requested()
    appointment.confirm()
    appointment.record_reminder("24h", "m-1")
    with pytest.raises(Conflict):
        appointment.reschedule("d-1", at(9), at(10, 30))  # same slot
    appointment.reschedule("d-2", at(14), at(15, 30))
    event = appointment.pending_events[-1]
    assert isinstance(event, AppointmentRescheduled)
    assert (event.previous_doctor_id, event.previous_start) == ("d-1", at(9))
    assert appointment.slot == ("d-2", at(14), at(15, 30))
    assert appointment.reminders == []


def test_only_a_scheduled_appointment_can_be_rescheduled() -> None:
    appointment = requested()
    assert isinstance(
        attempt(appointment, lambda: appointment.reschedule("d-1", at(14), at(15))), Conflict
    )


def test_complete_and_no_show_only_once_started() -> None:
    appointment = requested()
    appointment.confirm()
    with pytest.raises(Conflict):
        appointment.complete(at(8, 59))
    appointment.complete(at(10))
    assert appointment.status == "completed"
    with pytest.raises(Conflict):
        appointment.mark_no_show(at(11))
    other = requested("a-2")
    other.confirm()
    other.mark_no_show(at(9, 15))
    assert other.status == "no_show"


def test_each_reminder_kind_is_recorded_once_and_only_while_scheduled() -> None:
    appointment = requested()
    with pytest.raises(Conflict):
        appointment.record_reminder("24h", "m-1")
    appointment.confirm()
    assert appointment.record_reminder("24h", "m-1") is True
    assert appointment.record_reminder("24h", "m-2") is False
    assert appointment.record_reminder("2h", "m-3") is True
    appointment.cancel()
    with pytest.raises(Conflict):
        appointment.record_reminder("2h", "m-4")


# --- DoctorDay ------------------------------------------------------------------------


def test_holding_an_overlapping_slot_is_a_conflict() -> None:
    day = DoctorDay(DoctorDay.key("d-1", DAY))
    assert (day.doctor_id, day.day) == ("d-1", DAY)
    day.hold("a-1", at(9), at(10, 30))
    error = attempt(day, lambda: day.hold("a-2", at(10), at(11)))
    assert isinstance(error, Conflict) and error.details["doctorId"] == "d-1"
    assert day.hold("a-2", at(10, 30), at(11)) is True  # back to back is fine


def test_holding_the_same_slot_again_changes_nothing() -> None:
    day = DoctorDay(DoctorDay.key("d-1", DAY))
    day.hold("a-1", at(9), at(10))
    assert day.hold("a-1", at(9), at(10)) is False
    with pytest.raises(Conflict):
        day.hold("a-1", at(14), at(15))  # a second slot for the same appointment


def test_book_converts_a_hold_or_takes_a_free_slot() -> None:
    day = DoctorDay(DoctorDay.key("d-1", DAY))
    day.hold("a-1", at(9), at(10))
    assert day.book("a-1", at(9), at(10)) is True
    assert day.slot_of("a-1") == (at(9), at(10), "booked")
    assert day.book("a-1", at(9), at(10)) is False
    assert day.book("a-2", at(14), at(15)) is True
    with pytest.raises(Conflict):
        day.book("a-3", at(14, 30), at(15, 30))


def test_release_frees_the_slot() -> None:
    day = DoctorDay(DoctorDay.key("d-1", DAY))
    day.hold("a-1", at(9), at(10))
    assert day.release("a-1", "cancelled") is True
    assert day.release("a-1", "cancelled") is False
    released = day.pending_events[-1]
    assert isinstance(released, SlotReleased) and released.start == at(9)
    assert day.hold("a-2", at(9), at(10)) is True


def test_a_slot_needs_an_aware_start_before_its_end() -> None:
    day = DoctorDay(DoctorDay.key("d-1", DAY))
    with pytest.raises(InvalidArguments):
        day.hold("a-1", at(10), at(9))
    with pytest.raises(InvalidArguments):
        day.hold("a-1", datetime(2025, 3, 4, 9), datetime(2025, 3, 4, 10))


def test_doctor_ids_may_contain_colons() -> None:
    day = DoctorDay(DoctorDay.key("dr:ana", DAY))
    assert (day.doctor_id, day.day) == ("dr:ana", DAY)


STARTS = [at(h, m) for h, m in itertools.product(range(9, 18), (0, 30))]


class DoctorDayMachine(AggregateMachine):
    aggregate = DoctorDay
    aggregate_id = DoctorDay.key("d-1", DAY)

    @rule(
        appointment=st.sampled_from(["a-1", "a-2", "a-3", "a-4"]),
        start=st.sampled_from(STARTS),
        minutes=st.sampled_from([30, 60, 90]),
        book=st.booleans(),
    )
    def take(self, appointment: str, start: datetime, minutes: int, book: bool) -> None:
        end = start + timedelta(minutes=minutes)
        action = self.agg.book if book else self.agg.hold
        error = attempt(self.agg, lambda: action(appointment, start, end))
        others = [o for o in self.agg.occupancy() if o[1:] != (start, end)]
        if error is None:
            assert not any(overlaps(start, end, s, e) for _, s, e in others)

    @rule(appointment=st.sampled_from(["a-1", "a-2", "a-3", "a-4"]))
    def release(self, appointment: str) -> None:
        had = appointment in self.agg.slots
        assert self.agg.release(appointment, "test") is had
        assert appointment not in self.agg.slots

    @invariant()
    def no_two_slots_overlap(self) -> None:
        taken = self.agg.occupancy()
        for (_, s1, e1), (_, s2, e2) in itertools.combinations(taken, 2):
            assert not overlaps(s1, e1, s2, e2)


DoctorDayMachine.TestCase.settings = settings(
    max_examples=80, stateful_step_count=30, deadline=None
)
TestDoctorDayMachine = DoctorDayMachine.TestCase


# --- the booking workflow end to end, through the handlers ------------------------------

NOW = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
CTX = CommandContext(clinic_id="clinic-1", actor="test")
PSEUDO = HmacPseudonymizer(b"k")
APPOINTMENTS = [f"a-{n}" for n in range(12)]
DOCTORS = ["d-1", "d-2"]
DAYS = [date(2025, 3, 4), date(2025, 3, 5)]


class BookingMachine(RuleBasedStateMachine):
    """Random bookings, confirmations, cancellations and moves never double-book a doctor."""

    def __init__(self) -> None:
        super().__init__()
        self.store = InMemoryEventStore()
        self.requested = 0
        setup: list[Command] = [
            ConfigureClinic(name="Dent"),
            *(AddDoctor(doctor_id=d, name=d) for d in DOCTORS),
            RegisterPatient(patient_id="p-1"),
            RecordConsent(
                patient_id="p-1",
                phone="0721234567",
                consent_type="data_processing",
                status="granted",
                source="web",
            ),
        ]
        for cmd in setup:
            self.run(cmd)

    def run(self, cmd: Command) -> DomainError | None:
        try:
            asyncio.run(run_command(self.store, COMMAND_HANDLERS, cmd, CTX, NOW, PSEUDO))
        except DomainError as error:
            event(f"{type(cmd).__name__}: {error.code}")
            return error
        event(f"{type(cmd).__name__}: ok")
        return None

    def load(self, cls: type[A], aggregate_id: str) -> tuple[A, list[DomainEvent]]:
        recorded = asyncio.run(self.store.read_stream("clinic-1", cls.stream_id_for(aggregate_id)))
        events = [roundtrip(r.to_domain()) for r in recorded]
        agg = cls.rehydrate(aggregate_id, events, len(events))
        return agg, events

    booked = Bundle("appointments")

    @rule(
        target=booked,
        day=st.sampled_from(DAYS),
        doctor=st.sampled_from([None, *DOCTORS]),
        slot=st.sampled_from(["any", "morning", "afternoon", "evening"]),
        service=st.sampled_from(["implant", "cleaning", "consultation"]),
    )
    def request(self, day: date, doctor: str | None, slot: str, service: str) -> object:
        appointment = APPOINTMENTS[self.requested % len(APPOINTMENTS)]
        self.requested += 1
        error = self.run(
            RequestAppointment(
                appointment_id=appointment,
                patient_id="p-1",
                service_type=service,
                preferred_date=day,
                doctor_id=doctor,
                preferred_time_slot=slot,
            )
        )
        assert error is None or isinstance(error, Conflict)
        return multiple() if error else appointment

    @rule(appointment=booked)
    def confirm(self, appointment: str) -> None:
        self.run(ConfirmAppointment(appointment_id=appointment))

    @rule(appointment=booked)
    def release(self, appointment: str) -> None:
        self.run(ReleaseAppointmentHold(appointment_id=appointment))

    @rule(appointment=booked)
    def cancel(self, appointment: str) -> None:
        self.run(CancelAppointment(appointment_id=appointment))

    @rule(
        appointment=booked,
        day=st.sampled_from(DAYS),
        hour=st.sampled_from([(9, 0), (10, 30), (14, 0), (15, 30), (17, 0)]),
        doctor=st.sampled_from([None, *DOCTORS]),
    )
    def reschedule(
        self, appointment: str, day: date, hour: tuple[int, int], doctor: str | None
    ) -> None:
        self.run(
            RescheduleAppointment(
                appointment_id=appointment, new_start=at(*hour, day=day), doctor_id=doctor
            )
        )

    @invariant()
    def doctors_are_never_double_booked(self) -> None:
        for doctor, day in itertools.product(DOCTORS, DAYS):
            agg, events = self.load(DoctorDay, DoctorDay.key(doctor, day))
            assert isinstance(agg, DoctorDay)
            assert_aggregate_laws(agg, events)
            for (_, s1, e1), (_, s2, e2) in itertools.combinations(agg.occupancy(), 2):
                assert not overlaps(s1, e1, s2, e2)

    @invariant()
    def appointments_and_slots_agree(self) -> None:
        slots = {}
        for doctor, day in itertools.product(DOCTORS, DAYS):
            agg, _ = self.load(DoctorDay, DoctorDay.key(doctor, day))
            assert isinstance(agg, DoctorDay)
            for appointment_id in agg.slots:
                assert appointment_id not in slots  # one slot per appointment, ever
                slot = agg.slot_of(appointment_id)
                assert slot is not None
                slots[appointment_id] = (doctor, *slot)
        for appointment_id in APPOINTMENTS:
            appointment, events = self.load(Appointment, appointment_id)
            assert isinstance(appointment, Appointment)
            assert_aggregate_laws(appointment, events)
            expected = {"requested": "held", "scheduled": "booked"}.get(appointment.status)
            if not appointment.exists or expected is None:
                assert appointment_id not in slots
            else:
                assert slots[appointment_id] == (*appointment.slot, expected)


BookingMachine.TestCase.settings = settings(max_examples=50, stateful_step_count=30, deadline=None)
TestBookingMachine = BookingMachine.TestCase
