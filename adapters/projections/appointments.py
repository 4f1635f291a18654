"""Projection "appointments": appointments, and doctors' held and booked slots."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.projections.base import Conn, ProjectedEvent, Projection, Row, Rows, Table, ts

APPOINTMENTS = Table(
    "rm_appointments",
    ["clinic_id", "appointment_id"],
    [
        ("clinic_id", "text"),
        ("appointment_id", "text"),
        ("patient_id", "text"),
        ("doctor_id", "text"),
        ("service_type", "text"),
        ("start_at", "timestamptz"),
        ("end_at", "timestamptz"),
        ("status", "text"),
        ("urgency", "text"),
        ("preferred_time_slot", "text"),
        ("workflow_id", "text"),
        ("reminders", "jsonb"),
        ("cancel_reason", "text"),
        ("created_at", "timestamptz"),
        ("updated_at", "timestamptz"),
    ],
)
OCCUPANCY = Table(
    "rm_slot_occupancy",
    ["clinic_id", "stream_id", "appointment_id"],
    [
        ("clinic_id", "text"),
        ("stream_id", "text"),
        ("appointment_id", "text"),
        ("doctor_id", "text"),
        ("start_at", "timestamptz"),
        ("end_at", "timestamptz"),
        ("state", "text"),
    ],
)
STATUS_OF = {
    "AppointmentScheduled": "scheduled",
    "AppointmentBookingFailed": "failed",
    "AppointmentCancelled": "cancelled",
    "AppointmentCompleted": "completed",
    "AppointmentNoShow": "no_show",
}
APPOINTMENT_EVENTS = frozenset(
    {*STATUS_OF, "AppointmentRequested", "AppointmentRescheduled", "AppointmentReminderSent"}
)
SLOT_EVENTS = frozenset({"SlotHeld", "SlotBooked", "SlotReleased"})


class AppointmentsProjection(Projection):
    name = "appointments"
    tables = (APPOINTMENTS.name, OCCUPANCY.name)
    handles = APPOINTMENT_EVENTS | SLOT_EVENTS

    async def apply(self, conn: Conn, events: Sequence[ProjectedEvent]) -> None:
        appointments, slots = Rows(APPOINTMENTS), Rows(OCCUPANCY)
        await appointments.load(
            conn,
            {
                (e.clinic_id, e.data["appointment_id"])
                for e in events
                if e.type in APPOINTMENT_EVENTS and e.type != "AppointmentRequested"
            },
        )
        for e in events:
            if e.type in SLOT_EVENTS:
                _fold_slot(slots, e)
                continue
            key = (e.clinic_id, e.data["appointment_id"])
            row = _requested(e) if e.type == "AppointmentRequested" else appointments.get(key)
            if row is None:
                continue  # an appointment's stream always starts with AppointmentRequested
            _fold_appointment(row, e)
            row["updated_at"] = e.recorded_at
            appointments.put(row)
        await appointments.flush(conn)
        await slots.flush(conn)


def _requested(e: ProjectedEvent) -> Row:
    d = e.data
    return {
        "clinic_id": e.clinic_id,
        "appointment_id": d["appointment_id"],
        "patient_id": d["patient_id"],
        "doctor_id": d["doctor_id"],
        "service_type": d["service_type"],
        "start_at": ts(d["start"]),
        "end_at": ts(d["end"]),
        "status": "requested",
        "urgency": d.get("urgency"),
        "preferred_time_slot": d.get("preferred_time_slot"),
        "workflow_id": d.get("workflow_id"),
        "reminders": [],
        "cancel_reason": None,
        "created_at": e.recorded_at,
    }


def _fold_appointment(row: Row, e: ProjectedEvent) -> None:
    d = e.data
    if e.type in STATUS_OF:
        row["status"] = STATUS_OF[e.type]
    if e.type in ("AppointmentScheduled", "AppointmentRescheduled"):
        row.update(doctor_id=d["doctor_id"], start_at=ts(d["start"]), end_at=ts(d["end"]))
    if e.type == "AppointmentRescheduled":
        row["reminders"] = []
    elif e.type == "AppointmentCancelled":
        row["cancel_reason"] = d.get("reason")
    elif e.type == "AppointmentReminderSent":
        row["reminders"] = [*row["reminders"], d["kind"]]


def _fold_slot(slots: Rows, e: ProjectedEvent) -> None:
    d = e.data
    key = (e.clinic_id, e.stream_id, d["appointment_id"])
    if e.type == "SlotReleased":
        slots.delete(key)
        return
    slots.put(
        {
            "clinic_id": e.clinic_id,
            "stream_id": e.stream_id,
            "appointment_id": d["appointment_id"],
            "doctor_id": d["doctor_id"],
            "start_at": ts(d["start"]),
            "end_at": ts(d["end"]),
            "state": "held" if e.type == "SlotHeld" else "booked",
        }
    )
