"""The durable-work port: how the gateway starts and inspects Temporal workflows.

The gateway's functions (``schedule_appointment``, ``trigger_workflow``,
``get_workflow_status``, multi-step plans) depend only on this Protocol; the
Temporal adapter implements it. Workflow ids are clinic-scoped: a status request
(or a step decision) for another clinic's workflow answers NOT_FOUND, exactly as an
unknown id does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from domain.cqrs import CommandContext

CatalogueWorkflow = Literal["lead-scoring", "patient-journey", "nurture-sequence", "booking-agent"]
Priority = Literal["low", "normal", "high"]
WorkflowState = Literal[
    "running", "completed", "failed", "cancelled", "terminated", "timed_out", "continued_as_new"
]


class StepStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    step_id: str
    function: str | None = None
    status: Literal["pending", "waiting_approval", "running", "completed", "failed", "skipped"]
    result: Any = None
    error: dict[str, Any] | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class WorkflowStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    workflow_id: str
    workflow_type: str
    status: WorkflowState
    current_step: str | None = None
    steps: list[StepStatus] = Field(default_factory=list)
    result: Any = None
    error: dict[str, Any] | None = None
    started_at: datetime | None = None
    closed_at: datetime | None = None


class StartedWorkflow(BaseModel):
    model_config = ConfigDict(frozen=True)

    workflow_id: str
    workflow_type: str
    run_id: str | None = None


class WorkflowGateway(Protocol):
    async def start_booking(
        self, context: CommandContext, request: dict[str, Any]
    ) -> StartedWorkflow:
        """Start the appointment-booking workflow for a validated request."""
        ...

    async def start_catalogue(
        self,
        context: CommandContext,
        workflow: CatalogueWorkflow,
        payload: dict[str, Any],
        priority: Priority = "normal",
        *,
        internal: dict[str, Any] | None = None,
    ) -> StartedWorkflow:
        """Start a catalogue workflow. ``payload`` is the caller's (validated, closed);
        ``internal`` carries fields only trusted code may set (e.g. ``prescored``)."""
        ...

    async def start_plan(self, context: CommandContext, plan: dict[str, Any]) -> StartedWorkflow:
        """Start the AI-plan workflow over a validated DAG of function steps."""
        ...

    async def status(self, clinic_id: str, workflow_id: str) -> WorkflowStatus:
        """Status of a workflow of this clinic; ``NotFound`` otherwise."""
        ...

    async def start_message_delivery(
        self, context: CommandContext, message_id: str
    ) -> StartedWorkflow:
        """Start delivering a message already queued in the outbox (``QueueWhatsAppMessage``).

        The delivery workflow sends it through the WhatsApp provider and records
        ``WhatsAppMessageSent`` / ``...Failed``; starting it twice for one message
        must not send twice (the workflow id derives from the message id).
        """
        ...

    async def cancel_booking(
        self,
        context: CommandContext,
        appointment_id: str,
        reason: str | None = None,
        *,
        notify_patient: bool = True,
    ) -> bool:
        """Tell the booking workflow of an appointment that it was cancelled.

        Called AFTER the ``CancelAppointment`` command succeeded: the workflow stops
        its reminders (and tells the patient when ``notify_patient``); it must not
        cancel the appointment again. Returns False when no booking workflow of
        this clinic is running for the appointment (nothing to stop).
        """
        ...

    async def decide_step(
        self, clinic_id: str, workflow_id: str, step_id: str, *, approve: bool, reason: str | None
    ) -> StepStatus:
        """Approve or reject an AI-plan step that waits for approval; its state once finished.

        ``NotFound`` for a workflow of another clinic (as for an unknown one);
        ``Conflict`` when the step does not wait for approval (unknown to the plan,
        already decided or finished) or the plan no longer runs. The answer comes once
        the step finished: for an approval, with the step's result or error.
        """
        ...
