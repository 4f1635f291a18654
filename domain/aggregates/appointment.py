"""An appointment's lifecycle.

requested (slot held) → scheduled (slot booked) → completed | no_show,
requested → failed (booking did not complete, hold released),
requested | scheduled → cancelled. Rescheduling keeps it scheduled.
The slot itself lives on the doctor's day (``DoctorDay``); handlers change both.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal, Self

from domain.aggregate import Aggregate
from domain.aggregates._common import from_iso, iso, require_exists
from domain.errors import Conflict
from domain.events import (
    AppointmentBookingFailed,
    AppointmentCancelled,
    AppointmentCompleted,
    AppointmentNoShow,
    AppointmentReminderSent,
    AppointmentRequested,
    AppointmentRescheduled,
    AppointmentScheduled,
    ReminderKind,
    TimeSlot,
    Urgency,
)

AppointmentStatus = Literal["requested", "scheduled", "cancelled", "completed", "no_show", "failed"]
ACTIVE: frozenset[str] = frozenset({"requested", "scheduled"})


class Appointment(Aggregate):
    """One appointment (id chosen by the caller, e.g. the booking workflow)."""

    stream_type = "appointment"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.patient_id: str | None = None
        self.service_type: str | None = None
        self.doctor_id: str | None = None
        self.start: datetime | None = None
        self.end: datetime | None = None
        self.status: AppointmentStatus = "requested"
        self.reminders: list[str] = []
        self.workflow_id: str | None = None

    @property
    def slot(self) -> tuple[str, datetime, datetime]:
        """``(doctor_id, start, end)`` of the held or booked slot."""
        require_exists(self, "appointment")
        assert self.doctor_id is not None and self.start is not None and self.end is not None
        return self.doctor_id, self.start, self.end

    # --- behaviour ----------------------------------------------------------------

    def request(
        self,
        *,
        patient_id: str,
        service_type: str,
        preferred_date: date,
        doctor_id: str,
        start: datetime,
        end: datetime,
        preferred_time_slot: TimeSlot = "any",
        requested_doctor_id: str | None = None,
        urgency: Urgency = "normal",
        notes: str | None = None,
        workflow_id: str | None = None,
    ) -> None:
        """Record a booking in progress with its held slot; an id is requested once."""
        if self.exists:
            raise Conflict("appointment already exists", appointmentId=self.id, status=self.status)
        self._record(
            AppointmentRequested(
                appointment_id=self.id,
                patient_id=patient_id,
                service_type=service_type,
                preferred_date=preferred_date,
                preferred_time_slot=preferred_time_slot,
                doctor_id=doctor_id,
                requested_doctor_id=requested_doctor_id,
                start=start,
                end=end,
                duration_minutes=int((end - start).total_seconds() // 60),
                urgency=urgency,
                notes=notes,
                workflow_id=workflow_id,
            )
        )

    def confirm(self) -> bool:
        """Held → scheduled; False when already scheduled."""
        if self._already("scheduled"):
            return False
        self.require_status("confirm", "requested")
        doctor_id, start, end = self.slot
        assert self.patient_id is not None and self.service_type is not None
        self._record(
            AppointmentScheduled(
                appointment_id=self.id,
                patient_id=self.patient_id,
                doctor_id=doctor_id,
                service_type=self.service_type,
                start=start,
                end=end,
            )
        )
        return True

    def fail(self, reason: str) -> bool:
        """A booking in progress failed; False when it already had."""
        if self._already("failed"):
            return False
        self.require_status("fail", "requested")
        self._record(AppointmentBookingFailed(appointment_id=self.id, reason=reason))
        return True

    def cancel(self, reason: str | None = None, notify_patient: bool = True) -> None:
        """Cancel a held or scheduled appointment; cancelling twice is a conflict."""
        self.require_status("cancel", "requested", "scheduled")
        self._record(
            AppointmentCancelled(
                appointment_id=self.id, reason=reason, notify_patient=notify_patient
            )
        )

    def reschedule(self, doctor_id: str, start: datetime, end: datetime) -> None:
        """Move a scheduled appointment to another slot (the caller moves the slot too)."""
        self.require_status("reschedule", "scheduled")
        previous_doctor, previous_start, _ = self.slot
        if (doctor_id, start, end) == self.slot:
            raise Conflict("the appointment is already at that time", appointmentId=self.id)
        self._record(
            AppointmentRescheduled(
                appointment_id=self.id,
                doctor_id=doctor_id,
                previous_doctor_id=previous_doctor,
                previous_start=previous_start,
                start=start,
                end=end,
            )
        )

    def complete(self, now: datetime) -> None:
        """The patient came; only once the appointment has started."""
        self._require_started("complete", now)
        self._record(AppointmentCompleted(appointment_id=self.id))

    def mark_no_show(self, now: datetime) -> None:
        """The patient did not come; only once the appointment has started."""
        self._require_started("mark as no-show", now)
        self._record(AppointmentNoShow(appointment_id=self.id))

    def record_reminder(self, kind: ReminderKind, message_id: str) -> bool:
        """A reminder went out; each kind once (False on a repeat)."""
        self.require_status("send a reminder for", "scheduled")
        if kind in self.reminders:
            return False
        self._record(
            AppointmentReminderSent(appointment_id=self.id, kind=kind, message_id=message_id)
        )
        return True

    def _already(self, status: str) -> bool:
        require_exists(self, "appointment")
        return self.status == status

    def require_status(self, action: str, *allowed: str) -> None:
        """Raise ``Conflict`` unless the appointment's status is one of ``allowed``."""
        require_exists(self, "appointment")
        if self.status not in allowed:
            raise Conflict(
                f"cannot {action} an appointment that is {self.status}",
                appointmentId=self.id,
                status=self.status,
            )

    def _require_started(self, action: str, now: datetime) -> None:
        self.require_status(action, "scheduled")
        _, start, _ = self.slot
        if now < start:
            raise Conflict(
                f"cannot {action} an appointment before it starts",
                appointmentId=self.id,
                start=start.isoformat(),
            )

    # --- state --------------------------------------------------------------------

    def when_AppointmentRequested(self, e: AppointmentRequested) -> None:
        self.patient_id, self.service_type = e.patient_id, e.service_type
        self.doctor_id, self.start, self.end = e.doctor_id, e.start, e.end
        self.workflow_id = e.workflow_id
        self.status = "requested"

    def when_AppointmentScheduled(self, e: AppointmentScheduled) -> None:
        self.doctor_id, self.start, self.end = e.doctor_id, e.start, e.end
        self.status = "scheduled"

    def when_AppointmentRescheduled(self, e: AppointmentRescheduled) -> None:
        self.doctor_id, self.start, self.end = e.doctor_id, e.start, e.end
        self.reminders = []  # reminders are due again for the new time

    def when_AppointmentBookingFailed(self, e: AppointmentBookingFailed) -> None:
        self.status = "failed"

    def when_AppointmentCancelled(self, e: AppointmentCancelled) -> None:
        self.status = "cancelled"

    def when_AppointmentCompleted(self, e: AppointmentCompleted) -> None:
        self.status = "completed"

    def when_AppointmentNoShow(self, e: AppointmentNoShow) -> None:
        self.status = "no_show"

    def when_AppointmentReminderSent(self, e: AppointmentReminderSent) -> None:
        self.reminders.append(e.kind)

    def snapshot_state(self) -> dict[str, Any]:
        return {
            "patient_id": self.patient_id,
            "service_type": self.service_type,
            "doctor_id": self.doctor_id,
            "start": iso(self.start),
            "end": iso(self.end),
            "status": self.status,
            "reminders": list(self.reminders),
            "workflow_id": self.workflow_id,
        }

    @classmethod
    def from_snapshot(cls, aggregate_id: str, state: dict[str, Any], version: int) -> Self:
        appointment = cls(aggregate_id)
        appointment.patient_id = state["patient_id"]
        appointment.service_type = state["service_type"]
        appointment.doctor_id = state["doctor_id"]
        appointment.start, appointment.end = from_iso(state["start"]), from_iso(state["end"])
        appointment.status = state["status"]
        appointment.reminders = list(state["reminders"])
        appointment.workflow_id = state["workflow_id"]
        appointment.version = version
        return appointment
