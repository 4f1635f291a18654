"""One payload model per activity (fields can be added later, with defaults)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from adapters.temporal.payloads import Caller, Language, SideEffect
from domain.events import LeadChannel, ReminderKind, TimeSlot, Urgency


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    caller: Caller


# --- appointments -----------------------------------------------------------------------


class RequestAppointmentPayload(_Payload):
    appointment_id: str
    patient_id: str
    service_type: str
    preferred_date: date
    doctor_id: str | None = None
    preferred_time_slot: TimeSlot = "any"
    duration_minutes: int | None = None
    notes: str | None = None
    urgency: Urgency = "normal"
    workflow_id: str | None = None


class AppointmentPayload(_Payload):
    """Confirm or complete one appointment."""

    appointment_id: str


class ReleaseHoldPayload(_Payload):
    appointment_id: str
    reason: str


class CancelAppointmentPayload(_Payload):
    appointment_id: str
    reason: str | None = None
    notify_patient: bool = True


class RescheduleAppointmentPayload(_Payload):
    appointment_id: str
    new_start: datetime
    doctor_id: str | None = None


class AppointmentMessagePayload(_Payload):
    """Queue the confirmation or a reminder of an appointment (template from the kind)."""

    appointment_id: str
    kind: Literal["confirmation", "24h", "2h", "cancellation"]
    message_id: str
    language: Language = "ro"


class ReminderSentPayload(_Payload):
    appointment_id: str
    kind: ReminderKind
    message_id: str


class AppointmentSnapshot(BaseModel):
    """The appointment's current status and slot, as the workflow needs them."""

    model_config = ConfigDict(frozen=True)

    appointment_id: str
    status: str
    doctor_id: str | None = None
    start: datetime | None = None
    end: datetime | None = None


# --- messaging --------------------------------------------------------------------------


class QueueMessagePayload(_Payload):
    message_id: str
    to: str | None = None
    """E.164 phone; taken from the patient's record when omitted."""
    patient_id: str | None = None
    template_name: str | None = None
    template_params: list[str] | dict[str, str] = Field(default_factory=list)
    language: Language = "ro"
    text: str | None = None


class QueuedMessage(BaseModel):
    """Whether a message entered the outbox; ``skipped`` says why not (e.g. consent)."""

    model_config = ConfigDict(frozen=True)

    message_id: str
    queued: bool
    skipped: dict[str, Any] | None = None


class DeliverMessagePayload(_Payload):
    message_id: str


class DeliveryFailurePayload(_Payload):
    message_id: str
    error_code: str
    error_message: str = ""
    permanent: bool = False


class Delivery(BaseModel):
    model_config = ConfigDict(frozen=True)

    message_id: str
    status: str
    provider_message_id: str | None = None


# --- leads and CRM ----------------------------------------------------------------------


class ScoreLeadPayload(_Payload):
    phone: str
    channel: LeadChannel
    messages: list[dict[str, Any]] = Field(default_factory=list)
    utm_params: dict[str, str] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class AssignLeadPayload(_Payload):
    lead_id: str
    assignee: str


class LeadPayload(_Payload):
    lead_id: str


class LeadSnapshot(BaseModel):
    model_config = ConfigDict(frozen=True)

    lead_id: str
    exists: bool
    status: str | None = None
    classification: str | None = None
    patient_id: str | None = None


class HubSpotUpsertPayload(_Payload):
    lead_id: str
    phone: str
    patient_id: str | None = None


# --- AI plans ---------------------------------------------------------------------------


class ExecuteStepPayload(_Payload):
    step_id: str
    function: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    side_effect: SideEffect = "write"
    max_result_bytes: int = 8192
