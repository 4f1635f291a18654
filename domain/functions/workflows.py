"""Gateway functions of the ``workflows`` category: trigger_workflow, get_workflow_status."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from domain.functions.context import FunctionContext
from domain.functions.registry import Arguments, Example, JsonObject, Result, gateway_function
from domain.workflow_port import CatalogueWorkflow, Priority, StepStatus, WorkflowState


class TriggerWorkflowArgs(Arguments):
    workflow: CatalogueWorkflow = Field(description="Which durable workflow to start.")
    payload: JsonObject = Field(
        description=(
            "The workflow's input, camelCase. lead-scoring: phone, channel, messages; "
            "nurture-sequence: phone, classification (WARM or COLD), leadId; "
            "patient-journey: patientId, procedure; booking-agent: patientId, serviceType, "
            "preferredDate."
        )
    )
    priority: Priority = Field(default="normal", description="Scheduling priority.")


class TriggerWorkflowResult(Result):
    workflow_id: str = Field(description="Pass it as taskId to get_workflow_status.")
    workflow_type: str
    workflow: CatalogueWorkflow
    status: str = Field(description="'started': the workflow was accepted and runs durably.")
    run_id: str | None = None


@gateway_function(
    category="workflows",
    scopes={"write"},
    side_effect="write",
    open_world=True,
    examples=[
        Example(
            "Start the nurture sequence of a warm lead",
            {
                "workflow": "nurture-sequence",
                "payload": {"phone": "+40721234567", "classification": "WARM"},
            },
        ),
        Example(
            "Start the patient journey after a treatment",
            {
                "workflow": "patient-journey",
                "payload": {"patientId": "pat-1", "procedure": "implant"},
                "priority": "high",
            },
        ),
    ],
)
async def trigger_workflow(
    args: TriggerWorkflowArgs, ctx: FunctionContext
) -> TriggerWorkflowResult:
    """Start one of the clinic's durable workflows and return its id at once.

    Workflows: lead-scoring (score a lead, then nurture or hand over), patient-journey
    (follow-ups and recall after a treatment), nurture-sequence (timed WhatsApp
    follow-ups of a warm or cold lead), booking-agent (find and book a slot with
    retries). Follow progress with get_workflow_status(taskId=workflowId).
    """
    started = await ctx.workflows.start_catalogue(
        ctx.command, args.workflow, args.payload, args.priority
    )
    return TriggerWorkflowResult(
        workflow_id=started.workflow_id,
        workflow_type=started.workflow_type,
        workflow=args.workflow,
        status="started",
        run_id=started.run_id,
    )


class GetWorkflowStatusArgs(Arguments):
    task_id: str = Field(min_length=1, description="The workflow id a start returned.")


class StepState(Result):
    step_id: str
    function: str | None = None
    status: str
    result: Any = None
    error: dict[str, Any] | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class GetWorkflowStatusResult(Result):
    workflow_id: str
    workflow_type: str
    status: WorkflowState
    current_step: str | None = None
    steps: list[StepState] = Field(default_factory=list)
    result: Any = None
    error: dict[str, Any] | None = None
    started_at: datetime | None = None
    closed_at: datetime | None = None


@gateway_function(
    category="workflows",
    scopes={"read"},
    side_effect="read",
    examples=[Example("Status of a booking", {"taskId": "booking-apt-4f2c"})],
)
async def get_workflow_status(
    args: GetWorkflowStatusArgs, ctx: FunctionContext
) -> GetWorkflowStatusResult:
    """Status of a workflow started earlier: state, current step, per-step results, errors.

    Works while it runs and after it finished. Status is one of running, completed,
    failed, cancelled, terminated, timed_out. An unknown id (or another clinic's)
    answers NOT_FOUND.
    """
    status = await ctx.workflows.status(ctx.clinic_id, args.task_id)
    return GetWorkflowStatusResult(
        workflow_id=status.workflow_id,
        workflow_type=status.workflow_type,
        status=status.status,
        current_step=status.current_step,
        steps=[_step(s) for s in status.steps],
        result=status.result,
        error=status.error,
        started_at=status.started_at,
        closed_at=status.closed_at,
    )


def _step(step: StepStatus) -> StepState:
    return StepState.model_validate(step.model_dump())
