"""Names and payload models shared by the gateway (which starts workflows) and the workflows.

The gateway lives in ``adapters`` and may not import ``workflows``, so workflow,
query and update names are constants here and the workflow classes declare them.
Each workflow takes ONE payload model: fields can be added later (with defaults)
without breaking running histories.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.events import LeadChannel, TimeSlot, Urgency
from domain.workflow_port import StepStatus

EntityId = Annotated[str, Field(min_length=1, max_length=128)]
"""A patient/lead/appointment id: bounded, it becomes a search attribute value."""

BOOKING_WORKFLOW = "BookingWorkflow"
PLAN_WORKFLOW = "AIPlanWorkflow"
LEAD_SCORING_WORKFLOW = "LeadScoringWorkflow"
NURTURE_WORKFLOW = "NurtureSequenceWorkflow"
PATIENT_JOURNEY_WORKFLOW = "PatientJourneyWorkflow"
BOOKING_AGENT_WORKFLOW = "BookingAgentWorkflow"
MESSAGE_DELIVERY_WORKFLOW = "MessageDeliveryWorkflow"

STATUS_QUERY = "status"
CANCEL_UPDATE = "cancel"
RESCHEDULE_UPDATE = "reschedule"
CANCELLED_SIGNAL = "appointment_cancelled"
BOOKING_OUTCOME_SIGNAL = "booking_outcome"
APPROVE_STEP_UPDATE = "approve_step"
REJECT_STEP_UPDATE = "reject_step"
STOP_SIGNAL = "stop"

KIND_OF_TYPE: dict[str, str] = {
    BOOKING_WORKFLOW: "booking",
    PLAN_WORKFLOW: "ai-plan",
    LEAD_SCORING_WORKFLOW: "lead-scoring",
    NURTURE_WORKFLOW: "nurture-sequence",
    PATIENT_JOURNEY_WORKFLOW: "patient-journey",
    BOOKING_AGENT_WORKFLOW: "booking-agent",
    MESSAGE_DELIVERY_WORKFLOW: "message-delivery",
}
"""Workflow type → the kind used in workflow ids and the WorkflowKind attribute."""

SideEffect = Literal["read", "write", "outbound", "destructive"]
Language = Literal["ro", "en", "de"]


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Caller(_Payload):
    """Who started the workflow; every command it runs is attributed to them."""

    clinic_id: str
    actor: str
    scopes: list[str] = Field(default_factory=list)
    correlation_id: str | None = None


class Progress(_Payload):
    """What the ``status`` query answers: the current step and each step's state."""

    current_step: str | None = None
    steps: list[StepStatus] = Field(default_factory=list)
    result: Any = None
    error: dict[str, Any] | None = None


# --- booking ----------------------------------------------------------------------------


class BookingInput(_Payload):
    caller: Caller
    appointment_id: EntityId
    patient_id: EntityId
    service_type: str
    preferred_date: date
    doctor_id: str | None = None
    preferred_time_slot: TimeSlot = "any"
    duration_minutes: int | None = None
    notes: str | None = None
    urgency: Urgency = "normal"
    language: Language = "ro"
    notify_patient: bool = True
    messaging_task_queue: str | None = None


class CancelRequest(_Payload):
    reason: str | None = None
    notify_patient: bool = True


class RescheduleRequest(_Payload):
    new_start: datetime
    doctor_id: str | None = None


# --- AI plans ---------------------------------------------------------------------------


class PlanStep(_Payload):
    """One function call of a plan. ``arguments`` may hold ``{"$ref": "steps.<id>.result..."}``."""

    step_id: str
    function: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    side_effect: SideEffect = "write"
    held: bool = False
    """Waits for approval under a ``require_approval`` policy even though its side effect
    alone would not (update_patient, a consent withdrawal: ``domain.functions.approval``).
    Absent from plans started before it existed: they keep their behaviour on replay."""


class PlanPolicy(_Payload):
    require_approval: bool = False
    """Outbound, destructive and ``held`` steps wait for ``approve_step`` / ``reject_step``."""
    approval_timeout_s: int = 24 * 3600
    max_steps_per_run: int = 50
    """Continue-as-new after this many finished steps, keeping history small."""
    max_result_bytes: int = 8192
    """Larger step results are kept as a compact summary (and cannot be referenced)."""


class PlanInput(_Payload):
    caller: Caller
    steps: list[PlanStep]
    policy: PlanPolicy = PlanPolicy()
    carried: list[StepStatus] = Field(default_factory=list)
    """Finished steps handed over by continue-as-new (internal)."""
    messaging_task_queue: str | None = None


class StepDecision(_Payload):
    step_id: str
    reason: str | None = None


# --- catalogue --------------------------------------------------------------------------


class LeadScoringInput(_Payload):
    caller: Caller
    phone: str
    channel: LeadChannel = "whatsapp"
    messages: list[dict[str, Any]] = Field(default_factory=list)
    utm_params: dict[str, str] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    patient_id: EntityId | None = None
    language: Language = "ro"
    start_nurture: bool = True
    messaging_task_queue: str | None = None
    prescored: dict[str, Any] | None = None
    """The ScoreLead result when the caller already scored this message (the WhatsApp
    webhook does, to answer with the lead id): the workflow then does not score twice."""


class NurtureInput(_Payload):
    caller: Caller
    phone: str
    classification: Literal["WARM", "COLD"]
    lead_id: EntityId | None = None
    patient_id: EntityId | None = None
    name: str | None = None
    language: Language = "ro"
    messaging_task_queue: str | None = None


class PatientJourneyInput(_Payload):
    caller: Caller
    patient_id: EntityId
    procedure: str = "tratament"
    follow_up_after_h: int = 24
    recall_after_days: int = 180
    language: Language = "ro"
    messaging_task_queue: str | None = None


class BookingAgentInput(_Payload):
    caller: Caller
    patient_id: EntityId
    service_type: str
    preferred_date: date
    doctor_id: str | None = None
    preferred_time_slot: TimeSlot = "any"
    notes: str | None = None
    language: Language = "ro"
    max_attempts: int = 3
    booking_task_queue: str | None = None
    messaging_task_queue: str | None = None


class MessageDeliveryInput(_Payload):
    caller: Caller
    message_id: str
