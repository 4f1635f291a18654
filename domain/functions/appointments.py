"""Gateway functions of the ``appointments`` category.

schedule_appointment, get_available_slots, cancel_appointment.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal

from pydantic import Field

from domain.commands import CancelAppointment
from domain.consent_policy import ask_for
from domain.dates import ClinicDate, clinic_today
from domain.errors import ConsentRequired, DomainError, InvalidArguments, NotFound
from domain.events import ConsentType, TimeSlot, Urgency
from domain.functions.context import FunctionContext
from domain.functions.registry import Arguments, Example, Result, gateway_function
from domain.queries import CheckConsent, ConsentCheck, GetAvailableSlots
from domain.services import ServiceType

SCHEDULING_CONSENT: ConsentType = "data_processing"
BOOKING_HORIZON_DAYS = 365
"""How far ahead the clinic takes bookings."""


class ScheduleAppointmentArgs(Arguments):
    patient_id: str = Field(min_length=1, description="The patient's id (see get_patient).")
    service_type: ServiceType = Field(description="The service to book.")
    preferred_date: ClinicDate = Field(
        description="The day wanted (clinic time, Europe/Bucharest)."
    )
    doctor_id: str | None = Field(default=None, min_length=1, description="A specific doctor.")
    preferred_time_slot: TimeSlot = Field(
        default="any", description="morning (<12:00), afternoon (12-17), evening (17:00+) or any."
    )
    duration: int | None = Field(
        default=None,
        ge=15,
        le=180,
        description="Minutes; default by service (implant 90, cleaning 30, others 60).",
    )
    notes: str | None = Field(default=None, max_length=2000)
    urgency: Urgency = "normal"


class ScheduleAppointmentResult(Result):
    workflow_id: str = Field(description="Pass it as taskId to get_workflow_status.")
    appointment_id: str
    status: Literal["pending"] = Field(description="The booking runs now, durably.")
    next_steps: list[str] = Field(description="What the booking workflow will do.")


@gateway_function(
    category="appointments",
    scopes={"write", "read"},  # it reads the patient's consent first
    side_effect="write",
    open_world=True,
    examples=[
        Example(
            "Book a cleaning on a given day, in the morning",
            {
                "patientId": "pat-1",
                "serviceType": "cleaning",
                "preferredDate": "2025-03-14",
                "preferredTimeSlot": "morning",
            },
        ),
        Example(
            "Book an implant with a given doctor",
            {
                "patientId": "pat-1",
                "serviceType": "implant",
                "preferredDate": "2025-03-17",
                "doctorId": "dr-ionescu",
                "urgency": "urgent",
            },
        ),
    ],
)
async def schedule_appointment(
    args: ScheduleAppointmentArgs, ctx: FunctionContext
) -> ScheduleAppointmentResult:
    """Book an appointment: starts the booking workflow and returns its id at once.

    Needs the patient's data_processing consent; without it nothing is booked and
    the error CONSENT_REQUIRED says what to ask the patient (record it with
    record_consent, then retry). The workflow holds the first free slot of the day
    and time of day wanted (never double-booking a doctor), confirms the appointment
    and sends the WhatsApp confirmation. Follow it with get_workflow_status.
    """
    _require_bookable_day(args.preferred_date, clinic_today(ctx.now))
    await _require_scheduling_consent(ctx, args.patient_id)
    appointment_id = ctx.new_id("apt")
    request = {
        "appointment_id": appointment_id,
        "patient_id": args.patient_id,
        "service_type": args.service_type.value,
        "preferred_date": args.preferred_date.isoformat(),
        "doctor_id": args.doctor_id,
        "preferred_time_slot": args.preferred_time_slot,
        "duration_minutes": args.duration,
        "notes": args.notes,
        "urgency": args.urgency,
    }
    started = await ctx.workflows.start_booking(ctx.command, request)
    return ScheduleAppointmentResult(
        workflow_id=started.workflow_id,
        appointment_id=appointment_id,
        status="pending",
        next_steps=[
            "check the data_processing consent again",
            f"hold the first free {args.service_type.value} slot on {args.preferred_date}"
            f" ({args.preferred_time_slot})",
            "confirm the appointment",
            "send the WhatsApp confirmation (appointment_confirmation)",
        ],
    )


def _require_bookable_day(day: date, today: date) -> None:
    """Refuse at once a day the booking could never hold (past, or beyond the horizon)."""
    last = today + timedelta(days=BOOKING_HORIZON_DAYS)
    if today <= day <= last:
        return
    message = "is in the past" if day < today else f"is more than {BOOKING_HORIZON_DAYS} days ahead"
    raise InvalidArguments(
        f"preferredDate {day.isoformat()} {message}; nothing booked",
        errors=[
            {
                "path": "preferredDate",
                "message": message,
                "expected": f"a day from {today.isoformat()} to {last.isoformat()} (clinic time)",
            }
        ],
    )


async def _require_scheduling_consent(ctx: FunctionContext, patient_id: str) -> None:
    found: ConsentCheck | None = await ctx.ask(
        CheckConsent(patient_id=patient_id, consent_types=(SCHEDULING_CONSENT,))
    )
    if found is None:
        raise NotFound(f"patient {patient_id!r} not found", patientId=patient_id)
    state = {c.consent_type: c.status for c in found.consents}.get(SCHEDULING_CONSENT, "unknown")
    if state != "granted":
        raise ConsentRequired(
            f"the patient has not granted {SCHEDULING_CONSENT} (status: {state}); nothing booked",
            missing=[SCHEDULING_CONSENT],
            statuses={SCHEDULING_CONSENT: state},
            ask=ask_for([SCHEDULING_CONSENT]),
            then="record_consent(consentType=data_processing, status=granted), then retry",
            patientId=patient_id,
        )


class GetAvailableSlotsArgs(Arguments):
    start_date: ClinicDate = Field(description="First day (inclusive).")
    end_date: ClinicDate = Field(
        description="Last day (inclusive); at most 92 days after startDate."
    )
    doctor_id: str | None = Field(default=None, min_length=1)
    service_type: ServiceType | None = None
    duration: int | None = Field(
        default=None, ge=15, le=180, description="Minutes; default by service, else 60."
    )


class FreeSlot(Result):
    doctor_id: str
    start: datetime
    end: datetime
    duration_minutes: int


class GetAvailableSlotsResult(Result):
    slots: list[FreeSlot]
    count: int


@gateway_function(
    category="appointments",
    scopes={"read"},
    side_effect="read",
    examples=[
        Example("Next week, any doctor", {"startDate": "2025-03-17", "endDate": "2025-03-21"}),
        Example(
            "Implant slots of one doctor",
            {
                "startDate": "2025-03-17",
                "endDate": "2025-03-28",
                "doctorId": "dr-ionescu",
                "serviceType": "implant",
            },
        ),
    ],
)
async def get_available_slots(
    args: GetAvailableSlotsArgs, ctx: FunctionContext
) -> GetAvailableSlotsResult:
    """Free appointment slots between two days: clinic hours minus booked and held slots.

    Filter by doctor, service (doctors who perform it) and duration. Slots start at
    the clinic's slot times (weekdays 09:00, 10:30, 14:00, 15:30, 17:00 by default).
    """
    slots = await ctx.ask(
        GetAvailableSlots(
            start_date=args.start_date,
            end_date=args.end_date,
            doctor_id=args.doctor_id,
            service_type=args.service_type,
            duration=args.duration,
        )
    )
    free = [FreeSlot.model_validate(s) for s in slots]
    return GetAvailableSlotsResult(slots=free, count=len(free))


class CancelAppointmentArgs(Arguments):
    appointment_id: str = Field(min_length=1)
    reason: str | None = Field(default=None, max_length=500)
    notify_patient: bool = Field(default=True, description="Tell the patient on WhatsApp.")


class CancelAppointmentResult(Result):
    appointment_id: str
    status: str
    slot_released: bool
    notify_patient: bool
    reminders_stopped: bool = Field(
        description="True when the booking workflow was told to stop its reminders."
    )


@gateway_function(
    category="appointments",
    scopes={"write"},
    side_effect="destructive",
    idempotent=True,
    examples=[
        Example("Cancel at the patient's request", {"appointmentId": "apt-123", "reason": "sick"}),
        Example("Cancel silently", {"appointmentId": "apt-123", "notifyPatient": False}),
    ],
)
async def cancel_appointment(
    args: CancelAppointmentArgs, ctx: FunctionContext
) -> CancelAppointmentResult:
    """Cancel an appointment: frees its slot and stops its reminders.

    An unknown appointment answers NOT_FOUND; an already cancelled one CONFLICT.
    With notifyPatient (default true) the patient is told on WhatsApp.
    """
    result = await ctx.run(
        CancelAppointment(
            appointment_id=args.appointment_id,
            reason=args.reason,
            notify_patient=args.notify_patient,
        )
    )
    try:
        stopped = await ctx.workflows.cancel_booking(
            ctx.command, args.appointment_id, args.reason, notify_patient=args.notify_patient
        )
    except DomainError:  # no booking workflow to tell: the cancellation itself stands
        stopped = False
    return CancelAppointmentResult.model_validate({**result, "remindersStopped": stopped})
