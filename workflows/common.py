"""Helpers every workflow shares: step tracking, activity options, error reading.

Deterministic only: time comes from ``workflow.now()``, nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    FailureError,
    TimeoutError,
)

with workflow.unsafe.imports_passed_through():
    from adapters.temporal.payloads import Progress, SideEffect
    from domain.workflow_port import StepStatus

OPTIONS: dict[str, dict[str, Any]] = {
    "read": {
        "start_to_close_timeout": timedelta(seconds=10),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(milliseconds=200),
            maximum_interval=timedelta(seconds=5),
            maximum_attempts=8,
        ),
    },
    "write": {
        "start_to_close_timeout": timedelta(seconds=15),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(milliseconds=200),
            maximum_interval=timedelta(seconds=5),
            maximum_attempts=12,
        ),
    },
    "outbound": {
        "start_to_close_timeout": timedelta(seconds=30),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(seconds=1),
            maximum_interval=timedelta(seconds=60),
            maximum_attempts=6,
            non_retryable_error_types=["WHATSAPP_PERMANENT", "HUBSPOT_PERMANENT"],
        ),
    },
    "destructive": {
        "start_to_close_timeout": timedelta(seconds=15),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(milliseconds=500),
            maximum_interval=timedelta(seconds=10),
            maximum_attempts=6,
        ),
    },
}
"""Timeouts and retries by side-effect class. Domain errors never retry (activities
raise them non-retryable); what retries is infrastructure: a PostgreSQL restart with
crash recovery takes several seconds, so reads ride out ~16 s and writes ~36 s of
outage. Writes are idempotent (workflow id + activity id), outbound sends carry the
provider idempotency key, so retries are safe; destructive steps retry least."""


def options(side_effect: SideEffect, task_queue: str | None = None) -> dict[str, Any]:
    """Keyword arguments for ``execute_activity`` for a side-effect class."""
    chosen = dict(OPTIONS[side_effect])
    if task_queue:
        chosen["task_queue"] = task_queue
    return chosen


def error_of(exc: BaseException) -> dict[str, Any]:
    """The ``{code, message, details}`` of a failed activity or child workflow."""
    cause: BaseException | None = exc
    while isinstance(cause, ActivityError | ChildWorkflowError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        details = cause.details[0] if cause.details else None
        if isinstance(details, dict) and "code" in details and "message" in details:
            return {
                "code": details["code"],
                "message": details["message"],
                "details": details.get("details", {}),
            }
        return {"code": cause.type or "EXECUTION_ERROR", "message": cause.message, "details": {}}
    if isinstance(cause, TimeoutError):
        return {"code": "EXECUTION_ERROR", "message": "the step timed out", "details": {}}
    if isinstance(cause, FailureError):
        return {"code": "EXECUTION_ERROR", "message": cause.message, "details": {}}
    return {"code": "EXECUTION_ERROR", "message": str(exc), "details": {}}


class Steps:
    """Per-step state for the ``status`` query, in the order steps were declared."""

    def __init__(self, names: Sequence[tuple[str, str | None]]) -> None:
        self._steps: dict[str, StepStatus] = {
            name: StepStatus(step_id=name, function=function, status="pending")
            for name, function in names
        }

    def add(self, name: str, function: str | None = None) -> None:
        """Declare a step (or reset an existing one to pending)."""
        self._steps[name] = StepStatus(step_id=name, function=function, status="pending")

    def get(self, name: str) -> StepStatus:
        return self._steps[name]

    def _set(self, name: str, **changes: Any) -> None:
        self._steps[name] = self._steps[name].model_copy(update=changes)

    def running(self, name: str) -> None:
        self._set(name, status="running", started_at=workflow.now())

    def waiting(self, name: str) -> None:
        self._set(name, status="waiting_approval")

    def completed(self, name: str, result: Any = None) -> None:
        started = self._steps[name].started_at or workflow.now()
        self._set(
            name, status="completed", result=result, started_at=started, finished_at=workflow.now()
        )

    def failed(self, name: str, error: dict[str, Any]) -> None:
        self._set(name, status="failed", error=error, finished_at=workflow.now())

    def skipped(self, name: str, code: str, message: str) -> None:
        error = {"code": code, "message": message, "details": {}}
        self._set(name, status="skipped", error=error, finished_at=workflow.now())

    def current(self) -> str | None:
        """The first running or waiting step, else the first pending one."""
        for wanted in (("running", "waiting_approval"), ("pending",)):
            for step in self._steps.values():
                if step.status in wanted:
                    return step.step_id
        return None

    def all(self) -> list[StepStatus]:
        return list(self._steps.values())

    def progress(self, result: Any = None, error: dict[str, Any] | None = None) -> Progress:
        return Progress(current_step=self.current(), steps=self.all(), result=result, error=error)
