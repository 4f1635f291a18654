"""Port fakes for the gateway's unit tests (no I/O).

Commands run through the domain's real in-memory command loop (``domain.memory``);
queries, workflows and the audit sink are recording fakes of their ports, answering
what each test sets up. The real adapters are exercised by the integration and
end-to-end tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from adapters.audit import AuditEntry
from domain.cqrs import Command, CommandContext, CommandResult, Query
from domain.errors import Conflict, NotFound
from domain.events import DomainEvent
from domain.functions import FunctionContext
from domain.handlers import COMMAND_HANDLERS
from domain.memory import HmacPseudonymizer, InMemoryEventStore, run_command
from domain.workflow_port import StartedWorkflow, StepStatus, WorkflowStatus

NOW = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
ALL_SCOPES = frozenset({"read", "write", "messaging", "consent", "admin"})


class MemoryCommands:
    """The CommandExecutor port over the domain's in-memory store and command loop."""

    def __init__(self, now: datetime = NOW) -> None:
        self.store = InMemoryEventStore(clock=lambda: now)
        self.now = now
        self.executed: list[Command] = []
        self._pseudonymizer = HmacPseudonymizer(b"unit-test-pseudonym-key-32bytes!")

    async def execute(self, command: Command, context: CommandContext) -> CommandResult:
        self.executed.append(command)
        run = await run_command(
            self.store, COMMAND_HANDLERS, command, context, self.now, self._pseudonymizer
        )
        appended = run.appended
        return CommandResult(
            result=run.result,
            position=appended.last_position if appended else 0,
            replayed=bool(appended and appended.replayed),
        )

    async def events(self, clinic_id: str) -> list[DomainEvent]:
        recorded = await self.store.read_all(after_position=0, limit=10_000)
        return [r.to_domain() for r in recorded if r.clinic_id == clinic_id]


@dataclass
class CannedQueries:
    """The QueryExecutor port answering from per-type callables; records what was asked."""

    answers: dict[type[Query], Callable[[Any], Any]] = field(default_factory=dict)
    asked: list[tuple[Query, int | None]] = field(default_factory=list)

    def answer(self, query_type: type[Query], fn: Callable[[Any], Any]) -> None:
        self.answers[query_type] = fn

    async def ask(
        self, query: Query, context: CommandContext, *, min_position: int | None = None
    ) -> Any:
        self.asked.append((query, min_position))
        return self.answers[type(query)](query)


@dataclass
class RecordingWorkflows:
    """The WorkflowGateway port: records every start and signal, answers set statuses."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    statuses: dict[tuple[str, str], WorkflowStatus] = field(default_factory=dict)
    running_bookings: set[str] = field(default_factory=set)
    gate: asyncio.Event | None = None
    """When set, starts wait for it (to observe concurrency)."""

    async def _start(self, kind: str, detail: Any, workflow_id: str) -> StartedWorkflow:
        self.calls.append((kind, detail))
        if self.gate is not None:
            await self.gate.wait()
        return StartedWorkflow(workflow_id=workflow_id, workflow_type=kind, run_id="run-1")

    async def start_booking(
        self, context: CommandContext, request: dict[str, Any]
    ) -> StartedWorkflow:
        return await self._start("booking", request, f"booking-{request['appointment_id']}")

    async def start_catalogue(
        self,
        context: CommandContext,
        workflow: str,
        payload: dict[str, Any],
        priority: str = "normal",
        *,
        internal: dict[str, Any] | None = None,
    ) -> StartedWorkflow:
        return await self._start("catalogue", (workflow, payload, priority), f"{workflow}-1")

    async def start_plan(self, context: CommandContext, plan: dict[str, Any]) -> StartedWorkflow:
        return await self._start("plan", plan, "ai-plan-1")

    async def status(self, clinic_id: str, workflow_id: str) -> WorkflowStatus:
        self.calls.append(("status", (clinic_id, workflow_id)))
        found = self.statuses.get((clinic_id, workflow_id))
        if found is None:
            raise NotFound(f"workflow {workflow_id!r} not found", workflowId=workflow_id)
        return found

    async def start_message_delivery(
        self, context: CommandContext, message_id: str
    ) -> StartedWorkflow:
        return await self._start("delivery", message_id, f"message-delivery-{message_id}")

    async def cancel_booking(
        self,
        context: CommandContext,
        appointment_id: str,
        reason: str | None = None,
        *,
        notify_patient: bool = True,
    ) -> bool:
        self.calls.append(("cancel_booking", (appointment_id, reason, notify_patient)))
        return appointment_id in self.running_bookings

    async def decide_step(
        self, clinic_id: str, workflow_id: str, step_id: str, *, approve: bool, reason: str | None
    ) -> StepStatus:
        """Decide a step of a set status that waits for approval (approved: completed).

        Like the plan workflow: only a ``waiting_approval`` step may be decided; a
        rejected one is skipped with the reason; the stored status changes.
        """
        self.calls.append(("decide_step", (clinic_id, workflow_id, step_id, approve, reason)))
        found = self.statuses.get((clinic_id, workflow_id))
        if found is None:
            raise NotFound(f"workflow {workflow_id!r} not found", workflowId=workflow_id)
        step = next((s for s in found.steps if s.step_id == step_id), None)
        if step is None or step.status != "waiting_approval":
            raise Conflict(f"step {step_id!r} is not waiting for approval", stepId=step_id)
        message = "rejected" + (f": {reason}" if reason else "")
        error = {"code": "REJECTED", "message": message, "details": {}}
        decided = step.model_copy(
            update={"status": "completed", "finished_at": NOW}
            if approve
            else {"status": "skipped", "error": error, "finished_at": NOW}
        )
        steps = [decided if s.step_id == step_id else s for s in found.steps]
        self.statuses[(clinic_id, workflow_id)] = found.model_copy(update={"steps": steps})
        return decided

    def of(self, kind: str) -> list[Any]:
        return [detail for k, detail in self.calls if k == kind]


@dataclass
class MemoryAudit:
    """The audit sink: keeps entries; ``fail`` makes writes raise."""

    entries: list[AuditEntry] = field(default_factory=list)
    fail: bool = False

    @property
    def healthy(self) -> bool:
        return not self.fail

    def submit(self, entry: AuditEntry) -> asyncio.Future[None]:
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail:
            written.set_exception(ConnectionError("audit database unavailable"))
        else:
            self.entries.append(entry)
            written.set_result(None)
        return written


def context(
    *,
    commands: MemoryCommands | None = None,
    queries: CannedQueries | None = None,
    workflows: RecordingWorkflows | None = None,
    clinic_id: str = "clinic-1",
    scopes: frozenset[str] = ALL_SCOPES,
    idempotency_key: str | None = None,
    min_position: int | None = None,
) -> FunctionContext:
    """A function context over the fakes (fresh ones unless given)."""
    return FunctionContext(
        command=CommandContext(
            clinic_id=clinic_id,
            actor="test:unit",
            scopes=scopes,
            idempotency_key=idempotency_key,
        ),
        commands=commands or MemoryCommands(),
        queries=queries or CannedQueries(),
        workflows=workflows or RecordingWorkflows(),
        now=NOW,
        min_position=min_position,
    )
