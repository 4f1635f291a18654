"""The clinic's queries and the typed answers the query bus returns.

A query is a frozen record of what to read (its fields key the query cache); the
handlers in ``adapters.queries`` answer it from the projections' read models. Fields
are snake_case like commands; phones are normalised to E.164 on the way in. Answers
are frozen models (safe to cache and share); ``None`` means "nothing matches" where
a query documents it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.commands import Phone
from domain.cqrs import Query
from domain.dates import ClinicDate
from domain.events import ConsentType, LeadChannel, LeadClassification, TimeSlot
from domain.services import ServiceType

GroupBy = Literal["day", "week", "month", "channel", "classification"]
ConsentState = Literal["granted", "denied", "withdrawn", "expired", "unknown"]
MAX_ANALYTICS_DAYS = 731
MAX_METRICS_DAYS = 366


def _at_least_one(model: BaseModel, *names: str) -> None:
    if all(getattr(model, n) is None for n in names):
        raise ValueError(f"give at least one of: {', '.join(names)}")


# --- queries ---------------------------------------------------------------------------


class GetPatient(Query):
    """A patient by id, phone or e-mail (at least one). Answer: ``PatientView | None``."""

    patient_id: str | None = Field(default=None, min_length=1)
    phone: Phone | None = None
    email: str | None = Field(default=None, min_length=3, max_length=254)

    @model_validator(mode="after")
    def _one_key(self) -> Self:
        _at_least_one(self, "patient_id", "phone", "email")
        return self


class GetLead(Query):
    """A lead by id or by phone (its id is the clinic's pseudonym of the phone).

    Answer: ``LeadView | None``.
    """

    lead_id: str | None = Field(default=None, min_length=1)
    phone: Phone | None = None

    @model_validator(mode="after")
    def _one_key(self) -> Self:
        _at_least_one(self, "lead_id", "phone")
        return self


class ListAppointments(Query):
    """Appointments, soonest first, filtered by patient, doctor, status and day range.

    Answer: ``tuple[AppointmentView, ...]``.
    """

    patient_id: str | None = Field(default=None, min_length=1)
    doctor_id: str | None = Field(default=None, min_length=1)
    status: str | None = None
    start_date: date | None = None
    end_date: date | None = None
    limit: int = Field(default=50, ge=1, le=500)


class GetAvailableSlots(Query):
    """Free slots between two days (clinic time). Answer: ``tuple[AvailableSlot, ...]``."""

    start_date: ClinicDate
    end_date: ClinicDate
    doctor_id: str | None = Field(default=None, min_length=1)
    service_type: ServiceType | None = None
    duration: int | None = Field(default=None, ge=15, le=180)
    time_slot: TimeSlot = "any"
    limit: int | None = Field(default=None, ge=1, le=1000)


class CheckConsent(Query):
    """Current consent per type of a patient (by id or phone); empty types = all.

    Answer: ``ConsentCheck | None`` (None when no patient matches).
    """

    patient_id: str | None = Field(default=None, min_length=1)
    phone: Phone | None = None
    consent_types: tuple[ConsentType, ...] = ()

    @model_validator(mode="after")
    def _one_key(self) -> Self:
        _at_least_one(self, "patient_id", "phone")
        return self


class GetLeadAnalytics(Query):
    """Lead figures for leads created in a day range, optionally grouped and filtered.

    The range runs forward and covers at most ``MAX_ANALYTICS_DAYS`` days (the handler
    answers ``InvalidArguments`` otherwise). Answer: ``LeadAnalytics``.
    """

    start_date: date
    end_date: date
    group_by: GroupBy | None = None
    channel: LeadChannel | None = None


class GetLeadStats(Query):
    """All-time lead totals by channel, classification and status. Answer: ``LeadStats``."""


class GetDailyMetrics(Query):
    """Per-day figures (Europe/Bucharest days, at most ``MAX_METRICS_DAYS``).

    Answer: ``tuple[DailyMetrics, ...]``.
    """

    start_date: date
    end_date: date


class GetPatientActivity(Query):
    """A patient's counters and recent activity. Answer: ``PatientActivity | None``."""

    patient_id: str = Field(min_length=1)
    limit: int = Field(default=20, ge=1, le=20)


class GetMessageStatus(Query):
    """One message by id, or a patient's messages (newest first).

    Answer: ``tuple[MessageView, ...]`` (empty when nothing matches).
    """

    message_id: str | None = Field(default=None, min_length=1)
    patient_id: str | None = Field(default=None, min_length=1)
    limit: int = Field(default=20, ge=1, le=200)

    @model_validator(mode="after")
    def _one_key(self) -> Self:
        _at_least_one(self, "message_id", "patient_id")
        return self


class GetClinicConfig(Query):
    """The caller's clinic: hours and doctors. Answer: ``ClinicView | None``."""


# --- answers ---------------------------------------------------------------------------


class View(BaseModel):
    """Base of answers: frozen, so a cached answer can be shared safely."""

    model_config = ConfigDict(frozen=True)


class PatientView(View):
    patient_id: str
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    email: str | None = None
    date_of_birth: date | None = None
    notes: str | None = None
    tags: tuple[str, ...] = ()
    lead_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class LeadView(View):
    lead_id: str
    phone: str | None = None
    channel: str | None = None
    source: str | None = None
    status: str
    score: int | None = None
    classification: LeadClassification | None = None
    confidence: float | None = None
    suggested_action: str | None = None
    procedure_interest: str | None = None
    assignee: str | None = None
    patient_id: str | None = None
    lost_reason: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class AppointmentView(View):
    appointment_id: str
    patient_id: str
    doctor_id: str
    service_type: str
    start: datetime
    end: datetime
    status: str
    urgency: str | None = None
    reminders: tuple[str, ...] = ()
    workflow_id: str | None = None
    cancel_reason: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class AvailableSlot(View):
    doctor_id: str
    start: datetime
    end: datetime
    duration_minutes: int


class ConsentTypeStatus(View):
    """One consent type now, with the proof of the decision (GDPR Art. 7)."""

    consent_type: ConsentType
    status: ConsentState
    granted: bool
    policy_version: str | None = None
    policy_current: bool = False
    decided_at: datetime | None = None
    expires_at: datetime | None = None
    source: str | None = None
    ip_address: str | None = None
    event_position: int | None = None


class ConsentCheck(View):
    found: bool = True
    patient_id: str
    consents: tuple[ConsentTypeStatus, ...]
    all_granted: bool


class LeadFigures(View):
    leads: int = 0
    scored: int = 0
    qualified: int = 0
    converted: int = 0
    lost: int = 0
    hot: int = 0
    warm: int = 0
    cold: int = 0
    unqualified: int = 0
    average_score: float | None = None
    conversion_rate: float | None = None


class LeadGroup(LeadFigures):
    key: str


class LeadAnalytics(View):
    start_date: date
    end_date: date
    group_by: GroupBy | None = None
    channel: LeadChannel | None = None
    totals: LeadFigures
    groups: tuple[LeadGroup, ...] = ()
    extra: dict[str, Any] = Field(default_factory=dict)


class LeadStats(View):
    leads: int = 0
    by_channel: dict[str, int] = Field(default_factory=dict)
    by_classification: dict[str, int] = Field(default_factory=dict)
    by_status: dict[str, int] = Field(default_factory=dict)
    scored: int = 0
    qualified: int = 0
    converted: int = 0
    lost: int = 0
    average_score: float | None = None
    conversion_rate: float | None = None


class DailyMetrics(View):
    day: date
    new_leads: int = 0
    qualified_leads: int = 0
    converted_leads: int = 0
    lost_leads: int = 0
    appointments_scheduled: int = 0
    appointments_cancelled: int = 0
    messages_received: int = 0
    messages_sent: int = 0


class ActivityItem(View):
    position: int
    occurred_at: datetime
    event_type: str
    summary: dict[str, Any] = Field(default_factory=dict)


class PatientActivity(View):
    patient_id: str
    last_activity_at: datetime | None = None
    appointments_requested: int = 0
    appointments_scheduled: int = 0
    appointments_cancelled: int = 0
    appointments_completed: int = 0
    appointments_no_show: int = 0
    messages_sent: int = 0
    messages_received: int = 0
    consents_recorded: int = 0
    recent: tuple[ActivityItem, ...] = ()


class MessageView(View):
    message_id: str
    direction: Literal["outbound", "inbound"]
    patient_id: str | None = None
    phone: str | None = None
    template_name: str | None = None
    status: str
    provider_message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    queued_at: datetime | None = None
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    read_at: datetime | None = None
    failed_at: datetime | None = None
    received_at: datetime | None = None
    updated_at: datetime | None = None


class DoctorView(View):
    doctor_id: str
    name: str
    services: tuple[str, ...] = ()


class ClinicView(View):
    clinic_id: str
    name: str
    timezone: str
    slot_times: tuple[str, ...]
    working_days: tuple[int, ...]
    location: str = ""
    doctors: tuple[DoctorView, ...] = ()
