"""Appointment activities: hold, confirm, release, cancel, reschedule, complete, notify."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.payloads import (
    AppointmentMessagePayload,
    AppointmentPayload,
    AppointmentSnapshot,
    CancelAppointmentPayload,
    QueuedMessage,
    ReleaseHoldPayload,
    ReminderSentPayload,
    RequestAppointmentPayload,
    RescheduleAppointmentPayload,
)
from activities.support import AggregateReader, compact, run
from domain.aggregates import Appointment, Clinic, Patient
from domain.commands import (
    CancelAppointment,
    CompleteAppointment,
    ConfirmAppointment,
    QueueWhatsAppMessage,
    RecordReminderSent,
    ReleaseAppointmentHold,
    RequestAppointment,
    RescheduleAppointment,
)
from domain.cqrs import CommandExecutor
from domain.errors import ConsentRequired
from domain.services import ServiceType

CANCELLATION_TEXT = {
    "ro": "Programarea dumneavoastră din {date}, ora {time}, a fost anulată.",
    "en": "Your appointment on {date} at {time} has been cancelled.",
    "de": "Ihr Termin am {date} um {time} Uhr wurde abgesagt.",
}
TEMPLATE_OF_KIND = {
    "confirmation": "appointment_confirmation",
    "24h": "appointment_reminder_24h",
    "2h": "appointment_reminder_2h",
}


class AppointmentActivities:
    """Runs the appointment commands of the booking workflow through the command bus."""

    def __init__(self, commands: CommandExecutor, reader: AggregateReader) -> None:
        self._commands = commands
        self._reader = reader

    @activity.defn
    async def request_appointment(self, p: RequestAppointmentPayload) -> dict[str, Any]:
        """Consent check, doctor and first free slot, hold it (RequestAppointment)."""
        command = RequestAppointment(
            appointment_id=p.appointment_id,
            patient_id=p.patient_id,
            service_type=ServiceType(p.service_type),
            preferred_date=p.preferred_date,
            doctor_id=p.doctor_id,
            preferred_time_slot=p.preferred_time_slot,
            duration_minutes=p.duration_minutes,
            notes=p.notes,
            urgency=p.urgency,
            workflow_id=p.workflow_id,
        )
        return compact((await run(self._commands, p.caller, command)).result)

    @activity.defn
    async def confirm_appointment(self, p: AppointmentPayload) -> dict[str, Any]:
        """Book the held slot (ConfirmAppointment)."""
        command = ConfirmAppointment(appointment_id=p.appointment_id)
        return compact((await run(self._commands, p.caller, command)).result)

    @activity.defn
    async def release_hold(self, p: ReleaseHoldPayload) -> dict[str, Any]:
        """Free the held slot of a failed booking (ReleaseAppointmentHold)."""
        command = ReleaseAppointmentHold(appointment_id=p.appointment_id, reason=p.reason[:200])
        return compact((await run(self._commands, p.caller, command)).result)

    @activity.defn
    async def cancel_appointment(self, p: CancelAppointmentPayload) -> dict[str, Any]:
        command = CancelAppointment(
            appointment_id=p.appointment_id, reason=p.reason, notify_patient=p.notify_patient
        )
        return compact((await run(self._commands, p.caller, command)).result)

    @activity.defn
    async def reschedule_appointment(self, p: RescheduleAppointmentPayload) -> dict[str, Any]:
        command = RescheduleAppointment(
            appointment_id=p.appointment_id, new_start=p.new_start, doctor_id=p.doctor_id
        )
        return compact((await run(self._commands, p.caller, command)).result)

    @activity.defn
    async def complete_appointment(self, p: AppointmentPayload) -> dict[str, Any]:
        command = CompleteAppointment(appointment_id=p.appointment_id)
        return compact((await run(self._commands, p.caller, command)).result)

    @activity.defn
    async def appointment_snapshot(self, p: AppointmentPayload) -> AppointmentSnapshot:
        """The appointment's status and slot as stored now."""
        appointment = await self._reader.load(Appointment, p.caller.clinic_id, p.appointment_id)
        return AppointmentSnapshot(
            appointment_id=p.appointment_id,
            status=appointment.status if appointment.exists else "unknown",
            doctor_id=appointment.doctor_id,
            start=appointment.start,
            end=appointment.end,
        )

    @activity.defn
    async def queue_appointment_message(self, p: AppointmentMessagePayload) -> QueuedMessage:
        """Put the confirmation or a reminder in the outbox; skipped without consent or phone."""
        clinic_id = p.caller.clinic_id
        appointment = await self._reader.load(Appointment, clinic_id, p.appointment_id)
        assert appointment.patient_id is not None and appointment.start is not None
        patient = await self._reader.load(Patient, clinic_id, appointment.patient_id)
        phone = patient.profile.get("phone")
        if not phone:
            return _skipped(p.message_id, "NO_PHONE", "the patient has no phone number")
        clinic = await self._reader.load(Clinic, clinic_id, clinic_id)
        local = appointment.start.astimezone(ZoneInfo(clinic.timezone))
        params = {
            "name": patient.profile.get("first_name") or "pacient",
            "date": local.strftime("%d.%m.%Y"),
            "time": local.strftime("%H:%M"),
            "location": clinic.location or clinic.name or "clinică",
        }
        command = _message_command(p, phone, appointment.patient_id, params)
        try:
            await run(self._commands, p.caller, command)
        except ApplicationError as exc:
            if isinstance(exc.__cause__, ConsentRequired):
                return _skipped(p.message_id, "CONSENT_REQUIRED", exc.__cause__.message)
            raise
        return QueuedMessage(message_id=p.message_id, queued=True)

    @activity.defn
    async def record_reminder_sent(self, p: ReminderSentPayload) -> dict[str, Any]:
        command = RecordReminderSent(
            appointment_id=p.appointment_id, kind=p.kind, message_id=p.message_id
        )
        return compact((await run(self._commands, p.caller, command)).result)


def _message_command(
    p: AppointmentMessagePayload, phone: str, patient_id: str, params: dict[str, str]
) -> QueueWhatsAppMessage:
    """The confirmation, a reminder (templates) or the cancellation notice (free text)."""
    if p.kind == "cancellation":
        text = CANCELLATION_TEXT[p.language].format(date=params["date"], time=params["time"])
        return QueueWhatsAppMessage(
            message_id=p.message_id, to=phone, patient_id=patient_id, text=text, language=p.language
        )
    if p.kind != "confirmation":
        params.pop("date")
    return QueueWhatsAppMessage(
        message_id=p.message_id,
        to=phone,
        patient_id=patient_id,
        template_name=TEMPLATE_OF_KIND[p.kind],
        template_params=params,
        language=p.language,
    )


def _skipped(message_id: str, code: str, message: str) -> QueuedMessage:
    return QueuedMessage(
        message_id=message_id, queued=False, skipped={"code": code, "message": message}
    )
