"""AIPlanWorkflow: a validated DAG of gateway function calls, run durably.

Each step runs once all of its ``dependsOn`` steps completed; independent steps
run concurrently. Arguments may reference earlier results with
``{"$ref": "steps.<stepId>.result.<path>"}`` (syntax: ``adapters.temporal.plan``).
A failed or skipped step skips its dependents, with the reason. Timeouts and
retry policies follow the step's side-effect class (read, write, outbound,
destructive), which the gateway took from the function registry when it built
the plan, so this workflow never imports the registry.

When the plan's policy sets ``require_approval``, outbound and destructive steps,
and the steps the gateway marked ``held`` (update_patient, a consent withdrawal),
wait (``waiting_approval``) for the ``approve_step`` or ``reject_step`` update; a
rejected or expired approval skips the step and its dependents. Results larger
than ``policy.max_result_bytes`` are kept as a summary, and the workflow continues
as new after ``policy.max_steps_per_run`` finished steps (or when Temporal suggests
it), carrying only the finished steps' compact states.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.common import error_of, options

with workflow.unsafe.imports_passed_through():
    from activities.functions import FunctionActivities
    from activities.payloads import ExecuteStepPayload
    from adapters.temporal.payloads import (
        APPROVE_STEP_UPDATE,
        PLAN_WORKFLOW,
        REJECT_STEP_UPDATE,
        STATUS_QUERY,
        PlanInput,
        PlanStep,
        Progress,
        StepDecision,
    )
    from adapters.temporal.plan import resolve_refs
    from domain.errors import InvalidArguments
    from domain.workflow_port import StepStatus

NEEDS_APPROVAL = frozenset({"outbound", "destructive"})
FINISHED = frozenset({"completed", "failed", "skipped"})


@workflow.defn(name=PLAN_WORKFLOW)
class AIPlanWorkflow:
    def __init__(self) -> None:
        self._input: PlanInput | None = None
        self._steps: dict[str, PlanStep] = {}
        self._states: dict[str, StepStatus] = {}
        self._decisions: dict[str, tuple[bool, str | None]] = {}
        self._finished_this_run = 0

    @workflow.run
    async def run(self, input: PlanInput) -> dict[str, Any]:
        self._load(input)
        running: dict[str, asyncio.Task[None]] = {}
        while not self._all_finished():
            for step_id in self._ready(running):
                running[step_id] = asyncio.ensure_future(self._run_step(self._steps[step_id]))
            if not running:
                break  # unreachable for a validated DAG; never spin
            await workflow.wait_condition(lambda: any(t.done() for t in running.values()))
            for step_id in [s for s, t in running.items() if t.done()]:
                running.pop(step_id).result()
            if not running and self._should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._carry_over(input))
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._summary()

    def _load(self, input: PlanInput) -> None:
        self._input = input
        self._steps = {s.step_id: s for s in input.steps}
        self._states = {
            s.step_id: StepStatus(step_id=s.step_id, function=s.function, status="pending")
            for s in input.steps
        }
        for carried in input.carried:
            self._states[carried.step_id] = carried

    def _all_finished(self) -> bool:
        return all(s.status in FINISHED for s in self._states.values())

    def _ready(self, running: dict[str, Any]) -> list[str]:
        """Pending steps whose dependencies are finished; dependents of failures are skipped."""
        ready = []
        for step_id, step in self._steps.items():
            if self._states[step_id].status != "pending" or step_id in running:
                continue
            deps = [self._states[d] for d in step.depends_on]
            if not all(d.status in FINISHED for d in deps):
                continue
            broken = [d for d in deps if d.status != "completed"]
            if broken:
                reason = ", ".join(f"{d.step_id} {d.status}" for d in broken)
                self._finish(step_id, status="skipped", error=_skip("DEPENDENCY_FAILED", reason))
                continue
            ready.append(step_id)
        return ready

    async def _run_step(self, step: PlanStep) -> None:
        assert self._input is not None
        policy = self._input.policy
        needs_approval = policy.require_approval and (
            step.side_effect in NEEDS_APPROVAL or step.held
        )
        if needs_approval and not await self._approved(step.step_id, policy.approval_timeout_s):
            return
        try:
            arguments = resolve_refs(step.arguments, self._results())
        except InvalidArguments as exc:
            self._finish(step.step_id, status="failed", error=exc.to_dict())
            return
        self._update(step.step_id, status="running", started_at=workflow.now())
        try:
            outcome = await workflow.execute_activity_method(
                FunctionActivities.execute_step,
                ExecuteStepPayload(
                    caller=self._input.caller,
                    step_id=step.step_id,
                    function=step.function,
                    arguments=arguments,
                    side_effect=step.side_effect,
                    max_result_bytes=policy.max_result_bytes,
                ),
                # The step id as activity id keeps idempotency keys unique across
                # continue-as-new (sequence numbers restart in each run).
                activity_id=f"step:{step.step_id}",
                **options(step.side_effect, self._queue_for(step)),
            )
        except ActivityError as exc:
            self._finish(step.step_id, status="failed", error=error_of(exc))
            return
        self._finish(step.step_id, status="completed", result=outcome)

    def _queue_for(self, step: PlanStep) -> str | None:
        assert self._input is not None
        return self._input.messaging_task_queue if step.function == "send_whatsapp" else None

    async def _approved(self, step_id: str, timeout_s: int) -> bool:
        self._update(step_id, status="waiting_approval")
        try:
            await workflow.wait_condition(
                lambda: step_id in self._decisions, timeout=timedelta(seconds=timeout_s)
            )
        except TimeoutError:
            self._finish(step_id, status="skipped", error=_skip("APPROVAL_TIMEOUT", "not approved"))
            return False
        approved, reason = self._decisions[step_id]
        if not approved:
            message = f"rejected: {reason}" if reason else "rejected"
            self._finish(step_id, status="skipped", error=_skip("REJECTED", message))
        return approved

    def _results(self) -> dict[str, Any]:
        return {sid: s.result for sid, s in self._states.items() if s.status == "completed"}

    def _update(self, step_id: str, **changes: Any) -> None:
        self._states[step_id] = self._states[step_id].model_copy(update=changes)

    def _finish(self, step_id: str, **changes: Any) -> None:
        self._update(step_id, finished_at=workflow.now(), **changes)
        self._finished_this_run += 1

    def _should_continue_as_new(self) -> bool:
        assert self._input is not None
        if self._all_finished():
            return False
        limit = self._input.policy.max_steps_per_run
        return self._finished_this_run >= limit or workflow.info().is_continue_as_new_suggested()

    def _carry_over(self, input: PlanInput) -> PlanInput:
        finished = [s for s in self._states.values() if s.status in FINISHED]
        return input.model_copy(update={"carried": finished})

    # --- approvals and status ---------------------------------------------------------

    @workflow.update(name=APPROVE_STEP_UPDATE)
    async def approve_step(self, decision: StepDecision) -> StepStatus:
        """Let a step that waits for approval run; answers its state once it finished."""
        self._decisions[decision.step_id] = (True, decision.reason)
        await workflow.wait_condition(lambda: self._states[decision.step_id].status in FINISHED)
        return self._states[decision.step_id]

    @approve_step.validator
    def _validate_approve(self, decision: StepDecision) -> None:
        self._require_awaiting(decision.step_id)

    @workflow.update(name=REJECT_STEP_UPDATE)
    async def reject_step(self, decision: StepDecision) -> StepStatus:
        """Skip a step that waits for approval (and, through it, its dependents)."""
        self._decisions[decision.step_id] = (False, decision.reason)
        await workflow.wait_condition(lambda: self._states[decision.step_id].status in FINISHED)
        return self._states[decision.step_id]

    @reject_step.validator
    def _validate_reject(self, decision: StepDecision) -> None:
        self._require_awaiting(decision.step_id)

    def _require_awaiting(self, step_id: str) -> None:
        assert self._input is not None
        step = self._steps.get(step_id)
        needs = (
            step is not None
            and self._input.policy.require_approval
            and (step.side_effect in NEEDS_APPROVAL or step.held)
        )
        if not needs or step_id in self._decisions:
            raise ApplicationError(
                f"step {step_id!r} is not waiting for approval",
                {"code": "CONFLICT", "message": f"step {step_id!r} is not waiting for approval"},
                type="CONFLICT",
            )
        if self._states[step_id].status in FINISHED:
            raise ApplicationError(f"step {step_id!r} already finished", type="CONFLICT")

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> Progress:
        states = list(self._states.values())
        current = next(
            (s.step_id for s in states if s.status in ("running", "waiting_approval")), None
        )
        failed = [s.step_id for s in states if s.status == "failed"]
        error = {"code": "STEP_FAILED", "message": f"failed steps: {failed}"} if failed else None
        return Progress(current_step=current, steps=states, result=self._summary(), error=error)

    def _summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for state in self._states.values():
            counts[state.status] = counts.get(state.status, 0) + 1
        return {"steps": len(self._states), "byStatus": counts}


def _skip(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "details": {}}
