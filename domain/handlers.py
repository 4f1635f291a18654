"""Command handlers: one small async function per command.

Each loads aggregates through the unit of work, calls their methods (which guard
the rules and record events) and returns a small JSON-ready result with camelCase
keys. Nothing here does I/O beyond the unit of work; the command bus appends what
was recorded in one atomic append and retries the handler on a concurrency conflict.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from pydantic.alias_generators import to_camel

from domain.aggregates import (
    Appointment,
    Clinic,
    Consent,
    Conversation,
    DoctorDay,
    Lead,
    Message,
    Patient,
)
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
from domain.consent_policy import ask_for
from domain.cqrs import Command, CommandHandler, UnitOfWork
from domain.errors import Conflict, ConsentRequired, InvalidArguments, NotFound
from domain.messaging import get_template, required_consent, validate_params
from domain.scheduling import (
    ClinicHours,
    DoctorInfo,
    Occupancy,
    Slot,
    available_slots,
    duration_for,
    eligible_doctors,
    is_candidate_start,
    local_date,
)
from domain.scoring import score_lead as score_conversation

Result = dict[str, Any]

ALTERNATIVE_DAYS = 7
ALTERNATIVES = 5

# --- shared steps ---------------------------------------------------------------------


@lru_cache(maxsize=256)
def _camel(name: str) -> str:
    """A field's wire name (pydantic's ``to_camel`` is a few regular expressions; the
    field names are few)."""
    return to_camel(name)


async def configured_clinic(uow: UnitOfWork) -> Clinic:
    """The caller's clinic; ``NotFound`` until it has been configured."""
    clinic = await uow.get(Clinic, uow.clinic_id)
    if not clinic.exists:
        raise NotFound("the clinic is not configured yet", clinicId=uow.clinic_id)
    return clinic


async def active_patient(uow: UnitOfWork, patient_id: str) -> Patient:
    """The patient; ``NotFound`` when unknown or erased."""
    patient = await uow.get(Patient, patient_id)
    patient.require_active()
    return patient


async def existing_appointment(uow: UnitOfWork, appointment_id: str) -> Appointment:
    """The appointment; ``NotFound`` when unknown."""
    appointment = await uow.get(Appointment, appointment_id)
    if not appointment.exists:
        raise NotFound(f"appointment {appointment_id!r} not found", appointmentId=appointment_id)
    return appointment


async def existing_message(uow: UnitOfWork, message_id: str) -> Message:
    """The outbound message; ``NotFound`` when unknown."""
    message = await uow.get(Message, message_id)
    if not message.exists:
        raise NotFound(f"message {message_id!r} not found", messageId=message_id)
    return message


async def require_consents(uow: UnitOfWork, patient_id: str | None, needed: list[str]) -> None:
    """Raise ``ConsentRequired`` naming what is missing and what to ask."""
    if patient_id is None:
        raise ConsentRequired(
            f"consent needed ({', '.join(needed)}) but the patient is not identified",
            missing=needed,
            ask="Identify the patient (patientId), then " + ask_for(needed),
        )
    consent = await uow.get(Consent, patient_id)
    missing = consent.missing(needed, uow.now)
    if missing:
        raise ConsentRequired(
            f"the patient has not granted: {', '.join(missing)}",
            missing=missing,
            ask=ask_for(missing),
            patientId=patient_id,
            statuses={t: consent.status_of(t, uow.now) for t in missing},
        )


async def doctor_day(
    uow: UnitOfWork, hours: ClinicHours, doctor_id: str, at: datetime
) -> DoctorDay:
    """The doctor's day (clinic calendar) that contains ``at``."""
    return await uow.get(DoctorDay, DoctorDay.key(doctor_id, local_date(hours, at)))


async def occupancy(
    uow: UnitOfWork, doctors: list[DoctorInfo], first: date, last: date
) -> list[Occupancy]:
    """Held and booked slots of the doctors over the days ``first``..``last``."""
    taken: list[Occupancy] = []
    day = first
    while day <= last:
        for doctor in doctors:
            taken.extend(
                (await uow.get(DoctorDay, DoctorDay.key(doctor.doctor_id, day))).occupancy()
            )
        day += timedelta(days=1)
    return taken


def slot_result(appointment: Appointment) -> Result:
    """The appointment and its slot, for results."""
    doctor_id, start, end = appointment.slot
    return {
        "appointmentId": appointment.id,
        "status": appointment.status,
        "doctorId": doctor_id,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "serviceType": appointment.service_type,
    }


# --- clinic ---------------------------------------------------------------------------


async def configure_clinic(cmd: ConfigureClinic, uow: UnitOfWork) -> Result:
    """Set the clinic's configuration (recorded only when something changes)."""
    clinic = await uow.get(Clinic, uow.clinic_id)
    changed = clinic.configure(
        name=cmd.name,
        timezone=cmd.timezone,
        slot_times=cmd.slot_times,
        working_days=cmd.working_days,
        location=cmd.location,
    )
    return {"clinicId": uow.clinic_id, "changed": changed, "slotTimes": clinic.slot_times}


async def add_doctor(cmd: AddDoctor, uow: UnitOfWork) -> Result:
    """Add a doctor to the configured clinic."""
    clinic = await configured_clinic(uow)
    added = clinic.add_doctor(cmd.doctor_id, cmd.name, [str(s) for s in cmd.services])
    return {"doctorId": cmd.doctor_id, "added": added}


# --- leads ----------------------------------------------------------------------------


async def score_lead(cmd: ScoreLead, uow: UnitOfWork) -> Result:
    """Create the lead on first contact (one per phone), then record its score."""
    lead = await uow.get(Lead, uow.pseudonym("lead", cmd.phone))
    created = not lead.exists
    utm = cmd.utm.model_dump(exclude_none=True) if cmd.utm else {}
    if created:
        source = utm.get("source") or _text(cmd.metadata.get("source"))
        lead.create(cmd.phone, cmd.channel, source=source, utm=utm)
    scored = score_conversation(cmd.messages, cmd.channel, cmd.utm)
    lead.record_score(
        score=scored.score,
        classification=scored.classification.value,
        confidence=scored.confidence,
        reasons=scored.reasons,
        suggested_action=scored.suggested_action.value,
        procedure_interest=scored.procedure_interest.value if scored.procedure_interest else None,
        emergency=scored.emergency,
    )
    return {
        "leadId": lead.id,
        "created": created,
        "status": lead.status,
        "score": scored.score,
        "classification": scored.classification.value,
        "confidence": scored.confidence,
        "reasons": scored.reasons,
        "suggestedAction": scored.suggested_action.value,
        "procedureInterest": scored.procedure_interest.value if scored.procedure_interest else None,
        "emergency": scored.emergency,
    }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


async def qualify_lead(cmd: QualifyLead, uow: UnitOfWork) -> Result:
    """Mark the lead qualified (once), with its current or the given classification."""
    lead = await uow.get(Lead, cmd.lead_id)
    changed = lead.qualify(cmd.classification)
    return {
        "leadId": lead.id,
        "status": lead.status,
        "classification": lead.qualified_as,
        "changed": changed,
    }


async def assign_lead(cmd: AssignLead, uow: UnitOfWork) -> Result:
    """Hand the lead to a person (no change when already theirs)."""
    lead = await uow.get(Lead, cmd.lead_id)
    changed = lead.assign(cmd.assignee)
    return {"leadId": lead.id, "status": lead.status, "assignee": lead.assignee, "changed": changed}


async def convert_lead(cmd: ConvertLead, uow: UnitOfWork) -> Result:
    """Close the lead as converted into a registered patient."""
    await active_patient(uow, cmd.patient_id)
    lead = await uow.get(Lead, cmd.lead_id)
    changed = lead.convert(cmd.patient_id)
    return {
        "leadId": lead.id,
        "status": lead.status,
        "patientId": cmd.patient_id,
        "changed": changed,
    }


async def lose_lead(cmd: LoseLead, uow: UnitOfWork) -> Result:
    """Close the lead as lost, keeping its previous status for the projections."""
    lead = await uow.get(Lead, cmd.lead_id)
    changed = lead.lose(cmd.reason)
    return {"leadId": lead.id, "status": lead.status, "changed": changed}


# --- patients -------------------------------------------------------------------------


async def register_patient(cmd: RegisterPatient, uow: UnitOfWork) -> Result:
    """Register a new patient under the id the caller chose."""
    patient = await uow.get(Patient, cmd.patient_id)
    profile = cmd.model_dump(exclude={"patient_id", "lead_id"})
    patient.register(lead_id=cmd.lead_id, **profile)
    return {"patientId": patient.id, "registered": True}


async def update_patient(cmd: UpdatePatient, uow: UnitOfWork) -> Result:
    """Record only the fields that really change; say so when nothing does."""
    patient = await uow.get(Patient, cmd.patient_id)
    changes = patient.update(cmd.updates.given())
    fields = sorted(_camel(name) for name in changes)
    result: Result = {"patientId": patient.id, "updated": bool(changes), "changedFields": fields}
    if not changes:
        result["message"] = "nothing changed: every given field already had that value"
    return result


async def erase_patient(cmd: ErasePatient, uow: UnitOfWork) -> Result:
    """Record the erasure (GDPR Art. 17); the crypto layer destroys the key."""
    patient = await uow.get(Patient, cmd.patient_id)
    changed = patient.erase(requested_by=uow.actor, reason=cmd.reason)
    return {"patientId": patient.id, "erased": True, "changed": changed}


# --- consent --------------------------------------------------------------------------


async def record_consent(cmd: RecordConsent, uow: UnitOfWork) -> Result:
    """Record a consent decision of a registered patient."""
    await active_patient(uow, cmd.patient_id)
    consent = await uow.get(Consent, cmd.patient_id)
    consent.record(
        consent_type=cmd.consent_type,
        status=cmd.status,
        source=cmd.source,
        phone=cmd.phone,
        now=uow.now,
        ip_address=cmd.ip_address,
        policy_version=cmd.policy_version,
    )
    view = consent.view([cmd.consent_type], uow.now)[cmd.consent_type]
    return {"patientId": cmd.patient_id, "consentType": cmd.consent_type, **view}


# --- appointments ---------------------------------------------------------------------


async def request_appointment(cmd: RequestAppointment, uow: UnitOfWork) -> Result:
    """Check consent, pick a doctor and the first free slot, hold it (atomically)."""
    appointment = await uow.get(Appointment, cmd.appointment_id)
    if appointment.exists:
        return _repeated_request(appointment, cmd)
    await active_patient(uow, cmd.patient_id)
    await require_consents(uow, cmd.patient_id, ["data_processing"])
    clinic = await configured_clinic(uow)
    doctors = _doctors_for(clinic, cmd.doctor_id, cmd.service_type)
    minutes = duration_for(cmd.service_type, cmd.duration_minutes)
    slot = await _first_free(uow, clinic.hours(), doctors, cmd, minutes)
    day = await doctor_day(uow, clinic.hours(), slot.doctor_id, slot.start)
    day.hold(appointment.id, slot.start, slot.end)
    appointment.request(
        patient_id=cmd.patient_id,
        service_type=cmd.service_type.value,
        preferred_date=cmd.preferred_date,
        preferred_time_slot=cmd.preferred_time_slot,
        doctor_id=slot.doctor_id,
        requested_doctor_id=cmd.doctor_id,
        start=slot.start,
        end=slot.end,
        urgency=cmd.urgency,
        notes=cmd.notes,
        workflow_id=cmd.workflow_id,
    )
    return {**slot_result(appointment), "durationMinutes": minutes, "created": True}


def _repeated_request(appointment: Appointment, cmd: RequestAppointment) -> Result:
    if appointment.patient_id != cmd.patient_id:
        raise Conflict("another appointment has this id", appointmentId=appointment.id)
    return {**slot_result(appointment), "created": False}


def _doctors_for(clinic: Clinic, doctor_id: str | None, service: str) -> list[DoctorInfo]:
    if doctor_id is not None:
        clinic.require_doctor(doctor_id)
    doctors = eligible_doctors(clinic.doctor_infos(), doctor_id, service)
    if not doctors:
        raise Conflict(
            f"no doctor of the clinic performs {service}",
            serviceType=service,
            doctorId=doctor_id,
        )
    return doctors


async def _first_free(
    uow: UnitOfWork,
    hours: ClinicHours,
    doctors: list[DoctorInfo],
    cmd: RequestAppointment,
    minutes: int,
) -> Slot:
    day = cmd.preferred_date
    taken = await occupancy(uow, doctors, day, day)
    free = available_slots(
        hours,
        doctors,
        day,
        day,
        now=uow.now,
        occupancy=taken,
        duration=minutes,
        time_slot=cmd.preferred_time_slot,
        limit=1,
    )
    if free:
        return free[0]
    alternatives = await _alternatives(uow, hours, doctors, day, minutes)
    raise Conflict(
        "no free slot at the preferred date and time",
        preferredDate=day.isoformat(),
        preferredTimeSlot=cmd.preferred_time_slot,
        alternatives=[s.to_dict() for s in alternatives],
    )


async def _alternatives(
    uow: UnitOfWork, hours: ClinicHours, doctors: list[DoctorInfo], day: date, minutes: int
) -> list[Slot]:
    """The first free slots, any time of day, from the preferred day (or today) on."""
    first = max(day, local_date(hours, uow.now))
    last = first + timedelta(days=ALTERNATIVE_DAYS)
    taken = await occupancy(uow, doctors, first, last)
    return available_slots(
        hours,
        doctors,
        first,
        last,
        now=uow.now,
        occupancy=taken,
        duration=minutes,
        limit=ALTERNATIVES,
    )


async def confirm_appointment(cmd: ConfirmAppointment, uow: UnitOfWork) -> Result:
    """Book the held slot; a repeat on a scheduled appointment changes nothing."""
    appointment = await existing_appointment(uow, cmd.appointment_id)
    changed = appointment.confirm()
    if changed:
        doctor_id, start, end = appointment.slot
        hours = (await configured_clinic(uow)).hours()
        (await doctor_day(uow, hours, doctor_id, start)).book(appointment.id, start, end)
    return {**slot_result(appointment), "changed": changed}


async def release_appointment_hold(cmd: ReleaseAppointmentHold, uow: UnitOfWork) -> Result:
    """Failure path of a booking: free the held slot, mark the appointment failed."""
    appointment = await existing_appointment(uow, cmd.appointment_id)
    changed = appointment.fail(cmd.reason)
    released = False
    if changed:
        released = await _release_slot(uow, appointment, cmd.reason)
    return {"appointmentId": appointment.id, "status": appointment.status, "slotReleased": released}


async def _release_slot(uow: UnitOfWork, appointment: Appointment, reason: str) -> bool:
    doctor_id, start, _ = appointment.slot
    hours = (await configured_clinic(uow)).hours()
    return (await doctor_day(uow, hours, doctor_id, start)).release(appointment.id, reason)


async def cancel_appointment(cmd: CancelAppointment, uow: UnitOfWork) -> Result:
    """Cancel and free the slot; unknown → NotFound, already cancelled → Conflict."""
    appointment = await existing_appointment(uow, cmd.appointment_id)
    appointment.cancel(cmd.reason, cmd.notify_patient)
    released = await _release_slot(uow, appointment, "cancelled")
    return {
        "appointmentId": appointment.id,
        "status": appointment.status,
        "slotReleased": released,
        "notifyPatient": cmd.notify_patient,
    }


async def reschedule_appointment(cmd: RescheduleAppointment, uow: UnitOfWork) -> Result:
    """Release the old slot and book the new one in one atomic change."""
    appointment = await existing_appointment(uow, cmd.appointment_id)
    clinic = await configured_clinic(uow)
    hours = clinic.hours()
    appointment.require_status("reschedule", "scheduled")
    old_doctor, old_start, old_end = appointment.slot
    doctor_id = cmd.doctor_id or old_doctor
    _doctors_for(clinic, doctor_id, appointment.service_type or "")
    start = _bookable_start(hours, cmd.new_start, uow.now)
    end = start + (old_end - old_start)
    appointment.reschedule(doctor_id, start, end)
    (await doctor_day(uow, hours, old_doctor, old_start)).release(appointment.id, "rescheduled")
    (await doctor_day(uow, hours, doctor_id, start)).book(appointment.id, start, end)
    return {
        **slot_result(appointment),
        "previousStart": old_start.isoformat(),
        "previousDoctorId": old_doctor,
    }


def _bookable_start(hours: ClinicHours, wanted: datetime, now: datetime) -> datetime:
    start = wanted.astimezone(hours.tz)
    if start <= now:
        raise Conflict("cannot move an appointment into the past", start=start.isoformat())
    if not is_candidate_start(hours, start):
        raise InvalidArguments(
            "the new start is not one of the clinic's slot times",
            errors=[
                {
                    "path": "newStart",
                    "message": "not a clinic slot",
                    "expected": f"a working day at one of {', '.join(hours.slot_times)}",
                }
            ],
        )
    return start


async def complete_appointment(cmd: CompleteAppointment, uow: UnitOfWork) -> Result:
    """The patient came (only once the appointment has started)."""
    appointment = await existing_appointment(uow, cmd.appointment_id)
    appointment.complete(uow.now)
    return {"appointmentId": appointment.id, "status": appointment.status}


async def mark_no_show(cmd: MarkNoShow, uow: UnitOfWork) -> Result:
    """The patient did not come (only once the appointment has started)."""
    appointment = await existing_appointment(uow, cmd.appointment_id)
    appointment.mark_no_show(uow.now)
    return {"appointmentId": appointment.id, "status": appointment.status}


async def record_reminder_sent(cmd: RecordReminderSent, uow: UnitOfWork) -> Result:
    """A reminder of this kind went out (recorded once per kind)."""
    appointment = await existing_appointment(uow, cmd.appointment_id)
    recorded = appointment.record_reminder(cmd.kind, cmd.message_id)
    return {"appointmentId": appointment.id, "kind": cmd.kind, "recorded": recorded}


# --- messaging ------------------------------------------------------------------------


async def queue_whatsapp_message(cmd: QueueWhatsAppMessage, uow: UnitOfWork) -> Result:
    """Put a message in the outbox once the consent its template needs is granted.

    A refused message records nothing; a repeat of a queued message changes nothing.
    """
    message = await uow.get(Message, cmd.message_id)
    params = _template_params(cmd)
    if not message.exists:
        await require_consents(uow, cmd.patient_id, [required_consent(cmd.template_name)])
    queued = message.queue(
        to=cmd.to,
        patient_id=cmd.patient_id,
        template_name=cmd.template_name,
        template_params=params,
        language=cmd.language,
        text=cmd.text,
        category=get_template(cmd.template_name).category if cmd.template_name else "utility",
    )
    return {"messageId": message.id, "status": message.status, "queued": queued}


def _template_params(cmd: QueueWhatsAppMessage) -> list[str]:
    if cmd.template_name is None:
        return []
    return validate_params(cmd.template_name, cmd.template_params, cmd.language)


async def mark_message_sent(cmd: MarkMessageSent, uow: UnitOfWork) -> Result:
    """The provider accepted the message (it is sent at most once)."""
    message = await existing_message(uow, cmd.message_id)
    changed = message.mark_sent(cmd.provider_message_id)
    return {"messageId": message.id, "status": message.status, "changed": changed}


async def mark_message_delivered(cmd: MarkMessageDelivered, uow: UnitOfWork) -> Result:
    """A delivery or read receipt (stale receipts change nothing)."""
    message = await existing_message(uow, cmd.message_id)
    changed = message.mark_delivered(cmd.provider_message_id, cmd.status)
    return {"messageId": message.id, "status": message.status, "changed": changed}


async def mark_message_failed(cmd: MarkMessageFailed, uow: UnitOfWork) -> Result:
    """A send failed: transient before sending → retry, else final."""
    message = await existing_message(uow, cmd.message_id)
    changed = message.mark_failed(cmd.error_code, cmd.error_message, cmd.permanent)
    return {"messageId": message.id, "status": message.status, "changed": changed}


async def record_inbound_message(cmd: RecordInboundMessage, uow: UnitOfWork) -> Result:
    """Record an inbound message on the sender's conversation, linked to their lead."""
    conversation = await uow.get(Conversation, uow.pseudonym("conversation", cmd.from_phone))
    lead = await uow.get(Lead, uow.pseudonym("lead", cmd.from_phone))
    lead_id = lead.id if lead.exists else None
    recorded = conversation.receive(
        provider_message_id=cmd.provider_message_id,
        from_phone=cmd.from_phone,
        text=cmd.text,
        patient_id=cmd.patient_id,
        lead_id=lead_id,
    )
    return {"conversationId": conversation.id, "leadId": lead_id, "recorded": recorded}


COMMAND_HANDLERS: dict[type[Command], CommandHandler] = {
    ConfigureClinic: configure_clinic,
    AddDoctor: add_doctor,
    ScoreLead: score_lead,
    QualifyLead: qualify_lead,
    AssignLead: assign_lead,
    ConvertLead: convert_lead,
    LoseLead: lose_lead,
    RegisterPatient: register_patient,
    UpdatePatient: update_patient,
    ErasePatient: erase_patient,
    RecordConsent: record_consent,
    RequestAppointment: request_appointment,
    ConfirmAppointment: confirm_appointment,
    ReleaseAppointmentHold: release_appointment_hold,
    CancelAppointment: cancel_appointment,
    RescheduleAppointment: reschedule_appointment,
    CompleteAppointment: complete_appointment,
    MarkNoShow: mark_no_show,
    RecordReminderSent: record_reminder_sent,
    QueueWhatsAppMessage: queue_whatsapp_message,
    MarkMessageSent: mark_message_sent,
    MarkMessageDelivered: mark_message_delivered,
    MarkMessageFailed: mark_message_failed,
    RecordInboundMessage: record_inbound_message,
}
"""Every command type and its handler (the command bus dispatches through this)."""
