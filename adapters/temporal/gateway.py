"""TemporalWorkflowGateway: the durable-work port (``domain.workflow_port``) on Temporal.

Workflow ids are bound to their clinic: ``{clinic_id}:{kind}:{id}``, and every
workflow carries the ClinicId search attribute. A status request for an id of
another clinic answers ``NotFound`` exactly like an unknown id. Bookings use the
appointment id (``{clinic}:booking:{appointmentId}``) so a cancellation finds its
workflow; a start retried with the same idempotency key reuses the running one.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_snake
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import Priority, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, FailureError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from adapters.settings import Settings
from adapters.temporal.payloads import (
    APPROVE_STEP_UPDATE,
    BOOKING_AGENT_WORKFLOW,
    BOOKING_WORKFLOW,
    CANCELLED_SIGNAL,
    KIND_OF_TYPE,
    LEAD_SCORING_WORKFLOW,
    MESSAGE_DELIVERY_WORKFLOW,
    NURTURE_WORKFLOW,
    PATIENT_JOURNEY_WORKFLOW,
    PLAN_WORKFLOW,
    REJECT_STEP_UPDATE,
    STATUS_QUERY,
    BookingAgentInput,
    BookingInput,
    Caller,
    CancelRequest,
    LeadScoringInput,
    MessageDeliveryInput,
    NurtureInput,
    PatientJourneyInput,
    PlanInput,
    PlanPolicy,
    PlanStep,
    Progress,
    StepDecision,
)
from adapters.temporal.plan import StepLike, validate_plan
from adapters.temporal.search_attributes import CLINIC_ID, workflow_attributes
from domain.cqrs import CommandContext
from domain.errors import Conflict, InvalidArguments, NotFound
from domain.functions.approval import ALWAYS_HELD, needs_approval
from domain.functions.registry import Registry
from domain.workflow_port import (
    CatalogueWorkflow,
    StartedWorkflow,
    StepStatus,
    WorkflowState,
    WorkflowStatus,
)
from domain.workflow_port import (
    Priority as PriorityName,
)

M = TypeVar("M", bound=BaseModel)
_IDS = uuid.UUID("0b6d3c52-3f0e-4a7e-9a59-0f4c7b2e8d41")
CATALOGUE: dict[str, tuple[str, type[BaseModel], str]] = {
    "lead-scoring": (LEAD_SCORING_WORKFLOW, LeadScoringInput, "default"),
    "patient-journey": (PATIENT_JOURNEY_WORKFLOW, PatientJourneyInput, "default"),
    "nurture-sequence": (NURTURE_WORKFLOW, NurtureInput, "default"),
    "booking-agent": (BOOKING_AGENT_WORKFLOW, BookingAgentInput, "bookings"),
}
"""trigger_workflow name → (workflow type, payload model, task queue kind)."""
PRIORITY_KEYS = {"high": 1, "normal": 3, "low": 5}
INTERNAL_FIELDS = frozenset(
    {
        "caller",
        "messaging_task_queue",
        "booking_task_queue",
        "carried",
        "steps",
        "policy",
        "prescored",
    }
)
STATES: dict[int, WorkflowState] = {
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING: "running",
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED: "completed",
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_FAILED: "failed",
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED: "cancelled",
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED: "terminated",
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TIMED_OUT: "timed_out",
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW: "continued_as_new",
}
QUERY_TIMEOUT = timedelta(seconds=5)


class TemporalWorkflowGateway:
    """Starts and inspects MedicalCor workflows for one Temporal client."""

    def __init__(
        self,
        client: Client,
        settings: Settings,
        *,
        registry: Registry | None = None,
        search_attributes: bool = True,
    ) -> None:
        """``search_attributes=False`` only for servers without custom attributes
        (the time-skipping test server); isolation then rests on the id prefix alone."""
        self._client = client
        self._settings = settings
        self._registry = registry
        self._search_attributes = search_attributes

    # --- starting ---------------------------------------------------------------------

    async def start_booking(
        self, context: CommandContext, request: dict[str, Any]
    ) -> StartedWorkflow:
        """Start the BookingWorkflow; ``request`` holds schedule_appointment's arguments.

        ``appointmentId`` is used when given; otherwise it derives from the context's
        idempotency key (a retried call reuses the running workflow) or is new.
        """
        fields = _snake(request)
        appointment_id = fields.pop("appointment_id", None) or self._new_id(context, "appointment")
        fields["duration_minutes"] = fields.pop("duration", fields.get("duration_minutes"))
        payload = _validate(
            BookingInput,
            {
                **fields,
                "caller": _caller(context, delegated=True),
                "appointment_id": appointment_id,
                "messaging_task_queue": self._settings.task_queue("messaging"),
            },
        )
        return await self._start(
            context,
            BOOKING_WORKFLOW,
            payload,
            workflow_id=f"{context.clinic_id}:booking:{appointment_id}",
            queue="bookings",
            patient_id=payload.patient_id,
        )

    async def start_catalogue(
        self,
        context: CommandContext,
        workflow: CatalogueWorkflow,
        payload: dict[str, Any],
        priority: PriorityName = "normal",
        *,
        internal: dict[str, Any] | None = None,
    ) -> StartedWorkflow:
        """Start one of the trigger_workflow catalogue's workflows with its payload.

        Callers' payloads may not set internal fields; trusted code passes them in
        ``internal`` (the WhatsApp webhook's ``prescored`` result, so a lead it just
        scored is not scored twice)."""
        if workflow not in CATALOGUE:
            raise InvalidArguments(
                f"unknown workflow {workflow!r}",
                errors=[_error("workflow", "unknown workflow", f"one of {sorted(CATALOGUE)}")],
            )
        workflow_type, model, queue = CATALOGUE[workflow]
        fields = _snake(payload)
        unknown = sorted(k for k in fields if k in INTERNAL_FIELDS or k not in model.model_fields)
        if unknown:
            raise InvalidArguments(
                f"unknown payload field(s) for {workflow}: {unknown}",
                errors=[
                    _error(f"payload.{k}", "unknown field", "a documented field") for k in unknown
                ],
            )
        fields.update({k: v for k, v in (internal or {}).items() if k in model.model_fields})
        fields["caller"] = _caller(context)
        fields["messaging_task_queue"] = self._settings.task_queue("messaging")
        if "booking_task_queue" in model.model_fields:
            fields["booking_task_queue"] = self._settings.task_queue("bookings")
        validated = _validate(model, fields, prefix="payload")
        return await self._start(
            context,
            workflow_type,
            validated,
            workflow_id=f"{context.clinic_id}:{workflow}:{self._new_id(context, workflow)}",
            queue=queue,
            priority=priority,
            patient_id=getattr(validated, "patient_id", None),
            lead_id=getattr(validated, "lead_id", None),
        )

    async def start_plan(self, context: CommandContext, plan: dict[str, Any]) -> StartedWorkflow:
        """Validate the DAG (ids, dependsOn, cycles, references) and start AIPlanWorkflow.

        Each step's side-effect class comes from the function registry (or the step's
        ``sideEffect`` when no registry is configured) and travels in the plan.
        """
        raw_steps = plan.get("steps") or []
        steps = [self._plan_step(i, s) for i, s in enumerate(raw_steps)]
        validate_plan([StepLike(s.step_id, s.depends_on, s.arguments) for s in steps])
        policy = _validate(PlanPolicy, _snake(plan.get("policy") or {}), prefix="policy")
        payload = PlanInput(
            caller=_caller(context),
            steps=steps,
            policy=policy,
            messaging_task_queue=self._settings.task_queue("messaging"),
        )
        return await self._start(
            context,
            PLAN_WORKFLOW,
            payload,
            workflow_id=f"{context.clinic_id}:ai-plan:{self._new_id(context, 'plan')}",
            queue="ai",
        )

    def _plan_step(self, index: int, raw: Any) -> PlanStep:
        if not isinstance(raw, dict):
            raise InvalidArguments(
                "a plan step must be an object",
                errors=[_error(f"steps[{index}]", "not an object", "{stepId, function, ...}")],
            )
        fields = _snake(raw)
        function = fields.get("function")
        if self._registry is not None and isinstance(function, str):
            side_effect = self._registry.get(function).side_effect
            fields["side_effect"] = side_effect
            arguments = fields.get("arguments")
            if isinstance(arguments, dict):  # else the validation below names the field
                fields["held"] = side_effect not in ALWAYS_HELD and needs_approval(
                    function, side_effect, arguments
                )
        return _validate(PlanStep, fields, prefix=f"steps[{index}]")

    async def start_message_delivery(
        self, context: CommandContext, message_id: str
    ) -> StartedWorkflow:
        """Deliver a queued outbox message; one workflow per message, never twice."""
        workflow_id = f"{context.clinic_id}:message-delivery:{message_id}"
        try:
            return await self._start(
                context,
                MESSAGE_DELIVERY_WORKFLOW,
                MessageDeliveryInput(
                    caller=_caller(context, delegated=True), message_id=message_id
                ),
                workflow_id=workflow_id,
                queue="messaging",
                reuse=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            return StartedWorkflow(workflow_id=workflow_id, workflow_type=MESSAGE_DELIVERY_WORKFLOW)

    async def _start(
        self,
        context: CommandContext,
        workflow_type: str,
        payload: BaseModel,
        *,
        workflow_id: str,
        queue: str,
        priority: PriorityName = "normal",
        patient_id: str | None = None,
        lead_id: str | None = None,
        reuse: WorkflowIDReusePolicy = WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
    ) -> StartedWorkflow:
        handle: WorkflowHandle[Any, Any] = await self._client.start_workflow(
            workflow_type,
            payload,
            id=workflow_id,
            task_queue=self._settings.task_queue(queue),
            search_attributes=workflow_attributes(
                context.clinic_id,
                KIND_OF_TYPE[workflow_type],
                lead_id=lead_id,
                patient_id=patient_id,
            )
            if self._search_attributes
            else None,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=reuse,
            priority=Priority(priority_key=PRIORITY_KEYS[priority]),
        )
        return StartedWorkflow(
            workflow_id=workflow_id, workflow_type=workflow_type, run_id=handle.result_run_id
        )

    def _new_id(self, context: CommandContext, kind: str) -> str:
        """Derived from the idempotency key when there is one (a retry reuses it), else new."""
        if context.idempotency_key:
            name = f"{context.clinic_id}\x1f{context.idempotency_key}\x1f{kind}"
            return str(uuid.uuid5(_IDS, name))
        return str(uuid.uuid4())

    # --- signalling -------------------------------------------------------------------

    async def cancel_booking(
        self,
        context: CommandContext,
        appointment_id: str,
        reason: str | None = None,
        *,
        notify_patient: bool = True,
    ) -> bool:
        """Tell the appointment's running booking workflow that it was cancelled."""
        handle = self._client.get_workflow_handle(f"{context.clinic_id}:booking:{appointment_id}")
        try:
            await handle.signal(
                CANCELLED_SIGNAL, CancelRequest(reason=reason, notify_patient=notify_patient)
            )
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True

    async def decide_step(
        self, clinic_id: str, workflow_id: str, step_id: str, *, approve: bool, reason: str | None
    ) -> StepStatus:
        """Approve or reject a plan step that waits for approval; its state once finished."""
        handle = await self._own_handle(clinic_id, workflow_id)
        name = APPROVE_STEP_UPDATE if approve else REJECT_STEP_UPDATE
        try:
            return await handle.execute_update(
                name, StepDecision(step_id=step_id, reason=reason), result_type=StepStatus
            )
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(exc)
            raise _conflict(message, workflowId=workflow_id, stepId=step_id) from exc
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            raise _conflict(
                "the plan is no longer running", workflowId=workflow_id, stepId=step_id
            ) from exc

    # --- status -----------------------------------------------------------------------

    async def status(self, clinic_id: str, workflow_id: str) -> WorkflowStatus:
        """Describe + the ``status`` query; works after completion. Other clinics: NotFound."""
        handle = await self._own_handle(clinic_id, workflow_id)
        description = await handle.describe()
        state = STATES.get(description.raw_description.workflow_execution_info.status, "running")
        progress = await self._progress(handle)
        error = progress.error if progress else None
        result = progress.result if progress else None
        if state in ("failed", "timed_out", "terminated", "cancelled") and error is None:
            error = await _closing_error(handle, state)
        elif state == "completed" and progress is None:
            result = await handle.result()
        return WorkflowStatus(
            workflow_id=workflow_id,
            workflow_type=description.workflow_type,
            status=state,
            current_step=progress.current_step if progress and state == "running" else None,
            steps=progress.steps if progress else [],
            result=result,
            error=error,
            started_at=description.start_time,
            closed_at=description.close_time,
        )

    async def _own_handle(self, clinic_id: str, workflow_id: str) -> WorkflowHandle[Any, Any]:
        if not workflow_id.startswith(f"{clinic_id}:"):
            raise _not_found(workflow_id)
        handle = self._client.get_workflow_handle(workflow_id)
        try:
            description = await handle.describe()
        except RPCError as exc:
            if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                raise _not_found(workflow_id) from exc
            raise
        if self._search_attributes and _clinic_of(description) != clinic_id:
            raise _not_found(workflow_id)
        return handle

    async def _progress(self, handle: WorkflowHandle[Any, Any]) -> Progress | None:
        """The workflow's own account of its steps (None if no worker could answer)."""
        try:
            return await handle.query(STATUS_QUERY, result_type=Progress, rpc_timeout=QUERY_TIMEOUT)
        except RPCError:
            return None


def _clinic_of(description: WorkflowExecutionDescription) -> str | None:
    return description.typed_search_attributes.get(CLINIC_ID)


async def _closing_error(handle: WorkflowHandle[Any, Any], state: str) -> dict[str, Any]:
    try:
        await handle.result(follow_runs=False)
    except WorkflowFailureError as exc:
        cause: BaseException | None = exc.cause
        while isinstance(cause, FailureError) and not isinstance(cause, ApplicationError):
            cause = cause.cause
        if isinstance(cause, ApplicationError):
            details = cause.details[0] if cause.details else None
            if isinstance(details, dict) and "code" in details:
                return {k: details.get(k) for k in ("code", "message", "details")}
            return {"code": cause.type or "EXECUTION_ERROR", "message": cause.message}
        return {"code": "EXECUTION_ERROR", "message": str(cause or exc)}
    return {"code": "EXECUTION_ERROR", "message": f"the workflow ended: {state}"}


def _caller(context: CommandContext, *, delegated: bool = False) -> Caller:
    """Who a workflow acts for. ``delegated``: the workflow's commands are the function's
    own documented effects (a booking's hold, confirmation message and reminders; the
    delivery of a message already queued), authorised when the function was called, so
    they run without re-checking the caller's scopes (a ``write`` key that books also
    sends the confirmation). Plans and catalogue workflows keep the caller's scopes:
    each of their steps is checked again."""
    return Caller(
        clinic_id=context.clinic_id,
        actor=context.actor,
        scopes=[] if delegated else sorted(context.scopes),
        correlation_id=context.correlation_id,
    )


def _snake(values: dict[str, Any]) -> dict[str, Any]:
    """Top-level camelCase keys of a gateway payload as the models' snake_case names."""
    return {to_snake(k): v for k, v in values.items() if v is not None}


def _validate(model: type[M], fields: dict[str, Any], *, prefix: str = "") -> M:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        errors = [
            _error(
                ".".join([prefix, *(str(p) for p in e["loc"])]).strip("."),
                str(e["msg"]),
                str(e.get("type", "")),
            )
            for e in exc.errors()
        ]
        raise InvalidArguments("invalid workflow payload", errors=errors) from exc


def _error(path: str, message: str, expected: str) -> dict[str, str]:
    return {"path": path, "message": message, "expected": expected}


def _not_found(workflow_id: str) -> NotFound:
    return NotFound(f"no workflow {workflow_id!r}", taskId=workflow_id)


def _conflict(message: str, **details: Any) -> Conflict:
    return Conflict(message, **details)
