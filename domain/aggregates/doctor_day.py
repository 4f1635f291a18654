"""One doctor's day: the held and booked slots. The boundary that forbids double-booking.

Every booking of a doctor on a day goes through this one stream, so two concurrent
bookings of overlapping times meet on the same expected version and one of them
retries, sees the other's slot and is refused.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal, Self

from domain.aggregate import Aggregate
from domain.aggregates._common import from_iso, iso
from domain.errors import Conflict, InvalidArguments
from domain.events import SlotBooked, SlotHeld, SlotReleased
from domain.scheduling import Occupancy, overlaps

SlotState = Literal["held", "booked"]


class DoctorDay(Aggregate):
    """Slots of one doctor on one clinic-local day (id = ``<doctor_id>:<YYYY-MM-DD>``)."""

    stream_type = "doctor_day"
    snapshot_every = 100  # holds and releases of a busy day add up

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        doctor_id, _, day = aggregate_id.rpartition(":")
        self.doctor_id = doctor_id
        self.day = date.fromisoformat(day)
        self.slots: dict[str, dict[str, Any]] = {}
        """appointment id → {start, end (ISO), state: held | booked}."""

    @staticmethod
    def key(doctor_id: str, day: date) -> str:
        """The aggregate id of ``doctor_id``'s ``day``."""
        return f"{doctor_id}:{day.isoformat()}"

    # --- queries ------------------------------------------------------------------

    def occupancy(self) -> list[Occupancy]:
        """Held and booked slots as ``(doctor_id, start, end)``."""
        return [(self.doctor_id, *self._times(appointment_id)) for appointment_id in self.slots]

    def slot_of(self, appointment_id: str) -> tuple[datetime, datetime, SlotState] | None:
        """``(start, end, held|booked)`` of the appointment's slot here, or None."""
        slot = self.slots.get(appointment_id)
        if slot is None:
            return None
        start, end = self._times(appointment_id)
        return start, end, slot["state"]

    def is_free(self, start: datetime, end: datetime, ignore: str | None = None) -> bool:
        """True when no other appointment's slot overlaps ``start``–``end``."""
        return not any(
            overlaps(start, end, *self._times(other)) for other in self.slots if other != ignore
        )

    # --- behaviour ----------------------------------------------------------------

    def hold(self, appointment_id: str, start: datetime, end: datetime) -> bool:
        """Hold a slot for a booking in progress; False when this one already holds it."""
        if self._has_same(appointment_id, start, end):
            return False
        self._require_bookable(appointment_id, start, end)
        self._record(SlotHeld(**self._slot_fields(appointment_id, start, end)))
        return True

    def book(self, appointment_id: str, start: datetime, end: datetime) -> bool:
        """Book a slot (its own hold, or a free one); False when already booked."""
        current = self.slot_of(appointment_id)
        if current == (start, end, "booked"):
            return False
        if current is None or current[:2] != (start, end):
            self._require_bookable(appointment_id, start, end)
        self._record(SlotBooked(**self._slot_fields(appointment_id, start, end)))
        return True

    def release(self, appointment_id: str, reason: str) -> bool:
        """Free the appointment's slot; False when it holds none here."""
        current = self.slot_of(appointment_id)
        if current is None:
            return False
        self._record(
            SlotReleased(
                doctor_id=self.doctor_id,
                appointment_id=appointment_id,
                start=current[0],
                reason=reason,
            )
        )
        return True

    def _has_same(self, appointment_id: str, start: datetime, end: datetime) -> bool:
        current = self.slot_of(appointment_id)
        return current is not None and current[:2] == (start, end)

    def _require_bookable(self, appointment_id: str, start: datetime, end: datetime) -> None:
        if start.tzinfo is None or end <= start:
            raise InvalidArguments("a slot needs an aware start before its end", start=iso(start))
        if appointment_id in self.slots:
            raise Conflict(
                "the appointment already has another slot this day: release it first",
                appointmentId=appointment_id,
            )
        if not self.is_free(start, end):
            raise Conflict(
                "the doctor is not free at that time",
                doctorId=self.doctor_id,
                start=start.isoformat(),
                end=end.isoformat(),
            )

    def _slot_fields(self, appointment_id: str, start: datetime, end: datetime) -> dict[str, Any]:
        return {
            "doctor_id": self.doctor_id,
            "appointment_id": appointment_id,
            "start": start,
            "end": end,
        }

    def _times(self, appointment_id: str) -> tuple[datetime, datetime]:
        slot = self.slots[appointment_id]
        start, end = from_iso(slot["start"]), from_iso(slot["end"])
        assert start is not None and end is not None
        return start, end

    # --- state --------------------------------------------------------------------

    def when_SlotHeld(self, e: SlotHeld) -> None:
        self.slots[e.appointment_id] = {"start": iso(e.start), "end": iso(e.end), "state": "held"}

    def when_SlotBooked(self, e: SlotBooked) -> None:
        self.slots[e.appointment_id] = {"start": iso(e.start), "end": iso(e.end), "state": "booked"}

    def when_SlotReleased(self, e: SlotReleased) -> None:
        self.slots.pop(e.appointment_id, None)

    def snapshot_state(self) -> dict[str, Any]:
        return {"slots": {k: dict(v) for k, v in self.slots.items()}}

    @classmethod
    def from_snapshot(cls, aggregate_id: str, state: dict[str, Any], version: int) -> Self:
        day = cls(aggregate_id)
        day.slots = {k: dict(v) for k, v in state["slots"].items()}
        day.version = version
        return day
