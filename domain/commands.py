"""The clinic's commands: imperative, validated records, one per state change.

Fields are snake_case; the gateway maps its camelCase arguments onto them. Phones
are normalised to E.164 on the way in. Ids of new things (patients, appointments,
messages) are chosen by the caller so that a retried command is recognised.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from domain.consent_policy import CURRENT_POLICY_VERSION
from domain.cqrs import Command
from domain.dates import ClinicDate
from domain.errors import InvalidArguments
from domain.events import (
    ConsentStatus,
    ConsentType,
    LeadChannel,
    LeadClassification,
    ReminderKind,
    TimeSlot,
    Urgency,
)
from domain.phones import normalize_phone
from domain.scheduling import DEFAULT_SLOT_TIMES, DEFAULT_TIMEZONE, DEFAULT_WORKING_DAYS
from domain.scoring import LeadMessage, UtmParams
from domain.services import ServiceType

Id = str  # ids are opaque, non-empty strings
Language = Literal["ro", "en", "de"]


def _e164(value: str) -> str:
    try:
        return normalize_phone(value)
    except InvalidArguments as exc:  # surface as a pydantic validation error
        raise ValueError(exc.message) from exc


Phone = Annotated[str, AfterValidator(_e164)]
"""A phone number, accepted in Romanian local forms, held as E.164."""


# --- Clinic ---------------------------------------------------------------------------


class ConfigureClinic(Command):
    """Set the clinic's name, time zone, slot start times (HH:MM) and working days (0=Mon)."""

    name: str = Field(min_length=1, max_length=200)
    timezone: str = DEFAULT_TIMEZONE
    slot_times: list[str] = Field(default_factory=lambda: list(DEFAULT_SLOT_TIMES), min_length=1)
    working_days: list[int] = Field(
        default_factory=lambda: list(DEFAULT_WORKING_DAYS), min_length=1
    )
    location: str = ""


class AddDoctor(Command):
    """Add a doctor; ``services`` lists the service types they perform (empty: all)."""

    doctor_id: Id = Field(min_length=1)
    name: str = Field(min_length=1, max_length=200)
    services: list[ServiceType] = Field(default_factory=list)


# --- Leads ----------------------------------------------------------------------------


class ScoreLead(Command):
    """Score a lead's conversation; creates the lead on first contact."""

    phone: Phone
    channel: LeadChannel
    messages: list[LeadMessage] = Field(default_factory=list, max_length=50)
    utm: UtmParams | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class QualifyLead(Command):
    """Mark a lead qualified, with its current classification unless one is given."""

    lead_id: Id = Field(min_length=1)
    classification: LeadClassification | None = None


class AssignLead(Command):
    """Hand a lead to a person (user id or name)."""

    lead_id: Id = Field(min_length=1)
    assignee: str = Field(min_length=1)


class ConvertLead(Command):
    """Close a lead as converted into a patient."""

    lead_id: Id = Field(min_length=1)
    patient_id: Id = Field(min_length=1)


class LoseLead(Command):
    """Close a lead as lost, with the reason."""

    lead_id: Id = Field(min_length=1)
    reason: str = Field(min_length=1, max_length=500)


# --- Patients -------------------------------------------------------------------------


class PatientChanges(BaseModel):
    """Profile fields to change; a field left out is unchanged, ``None`` clears it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    email: str | None = Field(default=None, max_length=254)
    phone: Phone | None = None
    date_of_birth: date | None = None
    notes: str | None = Field(default=None, max_length=5000)
    tags: list[str] | None = None

    @field_validator("email")
    @classmethod
    def normalise_email(cls, value: str | None) -> str | None:
        return None if value is None else value.strip().lower()

    def given(self) -> dict[str, Any]:
        """Only the fields the caller set, JSON-ready."""
        return self.model_dump(mode="json", exclude_unset=True)


class RegisterPatient(Command):
    """Register a patient under an id chosen by the caller."""

    patient_id: Id = Field(min_length=1)
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    phone: Phone | None = None
    email: str | None = Field(default=None, max_length=254)
    date_of_birth: date | None = None
    notes: str | None = Field(default=None, max_length=5000)
    tags: list[str] = Field(default_factory=list)
    lead_id: Id | None = None

    @field_validator("email")
    @classmethod
    def normalise_email(cls, value: str | None) -> str | None:
        return None if value is None else value.strip().lower()


class UpdatePatient(Command):
    """Change profile fields; only those that really change are recorded."""

    patient_id: Id = Field(min_length=1)
    updates: PatientChanges


class ErasePatient(Command):
    """GDPR Art. 17: forget the person (the audit trail of what happened stays)."""

    patient_id: Id = Field(min_length=1)
    reason: str | None = None


# --- Consent --------------------------------------------------------------------------


class RecordConsent(Command):
    """Record a consent decision of a registered patient."""

    patient_id: Id = Field(min_length=1)
    phone: Phone
    consent_type: ConsentType
    status: ConsentStatus
    source: str = Field(min_length=1, max_length=100)
    ip_address: str | None = None
    policy_version: str = CURRENT_POLICY_VERSION


# --- Appointments ---------------------------------------------------------------------


class RequestAppointment(Command):
    """Start a booking: pick a doctor and the first free slot, and hold it."""

    appointment_id: Id = Field(min_length=1)
    patient_id: Id = Field(min_length=1)
    service_type: ServiceType
    preferred_date: ClinicDate
    doctor_id: Id | None = None
    preferred_time_slot: TimeSlot = "any"
    duration_minutes: int | None = Field(default=None, ge=15, le=180)
    notes: str | None = Field(default=None, max_length=2000)
    urgency: Urgency = "normal"
    workflow_id: str | None = None


class ConfirmAppointment(Command):
    """Book the held slot: the appointment is scheduled."""

    appointment_id: Id = Field(min_length=1)


class ReleaseAppointmentHold(Command):
    """The booking failed: free the held slot and mark the appointment failed."""

    appointment_id: Id = Field(min_length=1)
    reason: str = "booking_failed"


class CancelAppointment(Command):
    """Cancel a held or scheduled appointment and free its slot."""

    appointment_id: Id = Field(min_length=1)
    reason: str | None = Field(default=None, max_length=500)
    notify_patient: bool = True


class RescheduleAppointment(Command):
    """Move a scheduled appointment to ``new_start`` (a clinic slot), same or another doctor."""

    appointment_id: Id = Field(min_length=1)
    new_start: datetime
    doctor_id: Id | None = None

    @field_validator("new_start")
    @classmethod
    def require_offset(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("new_start needs a time zone offset")
        return value


class CompleteAppointment(Command):
    """Record that the patient came."""

    appointment_id: Id = Field(min_length=1)


class MarkNoShow(Command):
    """Record that the patient did not come."""

    appointment_id: Id = Field(min_length=1)


class RecordReminderSent(Command):
    """Record that a 24h or 2h reminder went out as ``message_id``."""

    appointment_id: Id = Field(min_length=1)
    kind: ReminderKind
    message_id: Id = Field(min_length=1)


# --- Messaging ------------------------------------------------------------------------


class QueueWhatsAppMessage(Command):
    """Put a WhatsApp message in the outbox (template or free text), consent-gated."""

    message_id: Id = Field(min_length=1)
    to: Phone
    patient_id: Id | None = None
    template_name: str | None = None
    template_params: list[str] | dict[str, str] = Field(default_factory=list)
    """In template order, or by parameter name (see ``domain.messaging``)."""
    language: Language = "ro"
    text: str | None = Field(default=None, min_length=1, max_length=4096)

    @model_validator(mode="after")
    def template_or_text(self) -> QueueWhatsAppMessage:
        if (self.template_name is None) == (self.text is None):
            raise ValueError("give exactly one of template_name and text")
        return self


class MarkMessageSent(Command):
    """The provider accepted the message under ``provider_message_id``."""

    message_id: Id = Field(min_length=1)
    provider_message_id: str = Field(min_length=1)


class MarkMessageDelivered(Command):
    """A delivery or read receipt from the provider."""

    message_id: Id = Field(min_length=1)
    provider_message_id: str = Field(min_length=1)
    status: Literal["delivered", "read"] = "delivered"


class MarkMessageFailed(Command):
    """A send failed; ``permanent=False`` before sending allows a retry."""

    message_id: Id = Field(min_length=1)
    error_code: str = Field(min_length=1)
    error_message: str = ""
    permanent: bool = True


class RecordInboundMessage(Command):
    """An inbound WhatsApp message (webhook); redeliveries are recognised."""

    provider_message_id: str = Field(min_length=1)
    from_phone: Phone
    text: str = Field(max_length=4096)
    patient_id: Id | None = None
