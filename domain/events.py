"""The clinic's events: past-tense facts, PascalCase, versioned.

Each event is a small frozen pydantic model. Its class declares the event type
(the class name), the stream type it belongs to and its schema version; the
registry below maps stored type names back to classes so the event store and the
projections can rebuild them. Upcasters (``domain.upcasting``) lift old schema
versions to the current one before a class is instantiated.

Fields holding personal data are listed in ``personal_fields`` so the
crypto-shredding layer knows what to encrypt per patient.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

ConsentType = Literal[
    "data_processing",
    "marketing_whatsapp",
    "marketing_email",
    "marketing_sms",
    "appointment_reminders",
    "treatment_updates",
    "third_party_sharing",
]
CONSENT_TYPES: tuple[str, ...] = ConsentType.__args__  # type: ignore[attr-defined]
ConsentStatus = Literal["granted", "denied", "withdrawn"]
LeadChannel = Literal["whatsapp", "voice", "web", "referral"]
LeadClassification = Literal["HOT", "WARM", "COLD", "UNQUALIFIED"]
LeadStatus = Literal["new", "scored", "qualified", "assigned", "converted", "lost"]
TimeSlot = Literal["morning", "afternoon", "evening", "any"]
Urgency = Literal["normal", "urgent", "emergency"]
ReminderKind = Literal["24h", "2h"]

EVENT_TYPES: dict[str, type[DomainEvent]] = {}


class DomainEvent(BaseModel):
    """Base of every event. Subclasses set ``stream_type`` and may bump ``schema_version``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stream_type: ClassVar[str] = ""
    schema_version: ClassVar[int] = 1
    personal_fields: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.stream_type:
            EVENT_TYPES[cls.__name__] = cls

    @classmethod
    def event_type(cls) -> str:
        return cls.__name__

    def data(self) -> dict[str, Any]:
        """JSON-ready payload as stored in the event store."""
        return self.model_dump(mode="json")


def event_class(event_type: str) -> type[DomainEvent]:
    """The class registered for a stored event type name."""
    try:
        return EVENT_TYPES[event_type]
    except KeyError as exc:  # an unknown type is a deployment error, not user input
        raise LookupError(f"unknown event type {event_type!r}") from exc


class EventMetadata(BaseModel):
    """Who and what caused an event; stored beside its data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    correlation_id: str | None = None
    causation_id: str | None = None
    actor: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None


class RecordedEvent(BaseModel):
    """An event as the store holds it: envelope plus raw data."""

    model_config = ConfigDict(frozen=True)

    global_position: int
    clinic_id: str
    stream_id: str
    stream_type: str
    version: int
    event_type: str
    schema_version: int
    data: dict[str, Any]
    metadata: EventMetadata = Field(default_factory=EventMetadata)
    idempotency_key: str | None = None
    recorded_at: datetime

    def to_domain(self) -> DomainEvent:
        """Rebuild the typed event (data must already be upcast to the current version)."""
        return event_class(self.event_type).model_validate(self.data)


# --- Clinic configuration -------------------------------------------------------------


class ClinicConfigured(DomainEvent):
    stream_type = "clinic"
    name: str
    timezone: str = "Europe/Bucharest"
    slot_times: list[str] = Field(
        default_factory=lambda: ["09:00", "10:30", "14:00", "15:30", "17:00"]
    )
    working_days: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4])
    location: str = ""


class DoctorAdded(DomainEvent):
    stream_type = "clinic"
    doctor_id: str
    name: str
    services: list[str] = Field(default_factory=list)


# --- Leads ---------------------------------------------------------------------------


class LeadCreated(DomainEvent):
    stream_type = "lead"
    personal_fields = ("phone",)
    lead_id: str
    phone: str
    channel: LeadChannel
    source: str | None = None
    utm: dict[str, str] = Field(default_factory=dict)


class LeadScored(DomainEvent):
    stream_type = "lead"
    lead_id: str
    score: int
    classification: LeadClassification
    confidence: float
    reasons: list[str] = Field(default_factory=list)
    suggested_action: str
    procedure_interest: str | None = None
    emergency: bool = False
    previous_classification: LeadClassification | None = None
    """The classification before this score (None on the first): projections move counts."""


class LeadQualified(DomainEvent):
    stream_type = "lead"
    lead_id: str
    classification: LeadClassification
    previous_status: LeadStatus | None = None


class LeadAssigned(DomainEvent):
    stream_type = "lead"
    lead_id: str
    assignee: str
    previous_status: LeadStatus | None = None


class LeadConverted(DomainEvent):
    stream_type = "lead"
    lead_id: str
    patient_id: str
    previous_status: LeadStatus | None = None


class LeadLost(DomainEvent):
    stream_type = "lead"
    lead_id: str
    reason: str
    previous_status: LeadStatus


# --- Patients ------------------------------------------------------------------------


class PatientRegistered(DomainEvent):
    stream_type = "patient"
    personal_fields = ("first_name", "last_name", "phone", "email", "date_of_birth", "notes")
    patient_id: str
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    email: str | None = None
    date_of_birth: date | None = None
    notes: str | None = None
    tags: list[str] = Field(default_factory=list)
    lead_id: str | None = None


class PatientUpdated(DomainEvent):
    """Only the fields that changed, in ``changes`` (camelCase-free snake keys)."""

    stream_type = "patient"
    personal_fields = ("changes",)
    patient_id: str
    changes: dict[str, Any]


class PatientErased(DomainEvent):
    """GDPR Art. 17: the patient's key was destroyed; nothing personal is kept here."""

    stream_type = "patient"
    patient_id: str
    requested_by: str
    reason: str | None = None


# --- Appointments and doctors' slots -------------------------------------------------


class AppointmentRequested(DomainEvent):
    """A booking in progress: the chosen doctor's slot ``start``–``end`` is held."""

    stream_type = "appointment"
    personal_fields = ("notes",)
    appointment_id: str
    patient_id: str
    service_type: str
    preferred_date: date
    preferred_time_slot: TimeSlot = "any"
    doctor_id: str
    requested_doctor_id: str | None = None
    start: datetime
    end: datetime
    duration_minutes: int
    urgency: Urgency = "normal"
    notes: str | None = None
    workflow_id: str | None = None


class AppointmentScheduled(DomainEvent):
    stream_type = "appointment"
    appointment_id: str
    patient_id: str
    doctor_id: str
    service_type: str
    start: datetime
    end: datetime


class AppointmentRescheduled(DomainEvent):
    stream_type = "appointment"
    appointment_id: str
    doctor_id: str
    previous_start: datetime
    start: datetime
    end: datetime
    previous_doctor_id: str | None = None


class AppointmentBookingFailed(DomainEvent):
    """A booking in progress did not complete; its held slot was released."""

    stream_type = "appointment"
    appointment_id: str
    reason: str


class AppointmentCancelled(DomainEvent):
    stream_type = "appointment"
    appointment_id: str
    reason: str | None = None
    notify_patient: bool = True


class AppointmentCompleted(DomainEvent):
    stream_type = "appointment"
    appointment_id: str


class AppointmentNoShow(DomainEvent):
    stream_type = "appointment"
    appointment_id: str


class AppointmentReminderSent(DomainEvent):
    stream_type = "appointment"
    appointment_id: str
    kind: ReminderKind
    message_id: str


class SlotHeld(DomainEvent):
    """A doctor's slot is held for a booking in progress (stream: one doctor, one day)."""

    stream_type = "doctor_day"
    doctor_id: str
    appointment_id: str
    start: datetime
    end: datetime


class SlotBooked(DomainEvent):
    stream_type = "doctor_day"
    doctor_id: str
    appointment_id: str
    start: datetime
    end: datetime


class SlotReleased(DomainEvent):
    stream_type = "doctor_day"
    doctor_id: str
    appointment_id: str
    start: datetime
    reason: str


# --- Consent -------------------------------------------------------------------------


class ConsentRecorded(DomainEvent):
    """One consent decision. Stream: one per patient, all consent types."""

    stream_type = "consent"
    personal_fields = ("phone", "ip_address")
    patient_id: str
    phone: str
    consent_type: ConsentType
    status: ConsentStatus
    source: str
    ip_address: str | None = None
    policy_version: str
    decided_at: datetime | None = None
    """When the person decided (Art. 7 proof); ``expires_at`` is set for grants only."""
    expires_at: datetime | None = None


# --- Messaging -----------------------------------------------------------------------


class WhatsAppMessageQueued(DomainEvent):
    """Outbox entry: a message to send. Stream: one per message."""

    stream_type = "message"
    personal_fields = ("to", "text", "template_params")
    message_id: str
    to: str
    patient_id: str | None = None
    template_name: str | None = None
    template_params: list[str] = Field(default_factory=list)
    language: str = "ro"
    text: str | None = None
    category: str = "utility"


class WhatsAppMessageSent(DomainEvent):
    stream_type = "message"
    message_id: str
    provider_message_id: str


class WhatsAppMessageDelivered(DomainEvent):
    stream_type = "message"
    message_id: str
    provider_message_id: str
    status: Literal["delivered", "read"] = "delivered"


class WhatsAppMessageFailed(DomainEvent):
    stream_type = "message"
    message_id: str
    error_code: str
    error_message: str
    permanent: bool = True


class WhatsAppMessageReceived(DomainEvent):
    """An inbound message. Stream: one per sender conversation."""

    stream_type = "conversation"
    personal_fields = ("from_phone", "text")
    provider_message_id: str
    from_phone: str
    text: str
    patient_id: str | None = None
    lead_id: str | None = None
