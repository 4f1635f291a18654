"""What every activity shares: its command context, reads of aggregates, error mapping."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from opentelemetry import propagate
from temporalio import activity
from temporalio.exceptions import ApplicationError

from adapters.temporal.payloads import Caller
from domain.aggregate import Aggregate
from domain.cqrs import Command, CommandContext, CommandExecutor, CommandResult, UnitOfWork
from domain.errors import DomainError
from domain.ports import EventStore, Pseudonymizer

A = TypeVar("A", bound=Aggregate)
T = TypeVar("T")


def idempotency_key() -> str:
    """``<workflow id>:<activity id>``: the same for every attempt of this activity."""
    info = activity.info()
    return f"{info.workflow_id}:{info.activity_id}"


def command_context(caller: Caller, *, suffix: str = "") -> CommandContext:
    """The context of a command this activity runs, keyed for idempotency.

    ``suffix`` distinguishes several commands run by one activity.
    """
    info = activity.info()
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    key = idempotency_key() + (f":{suffix}" if suffix else "")
    return CommandContext(
        clinic_id=caller.clinic_id,
        actor=caller.actor,
        idempotency_key=key,
        correlation_id=caller.correlation_id or info.workflow_id,
        causation_id=key,
        traceparent=carrier.get("traceparent"),
        tracestate=carrier.get("tracestate"),
        scopes=frozenset(caller.scopes),
    )


def application_error(exc: DomainError) -> ApplicationError:
    """A domain error as a non-retryable activity failure the workflow can read back."""
    return ApplicationError(exc.message, exc.to_dict(), type=exc.code, non_retryable=True)


async def domain_call(work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work``; domain errors become non-retryable failures, anything else retries."""
    try:
        return await work()
    except DomainError as exc:
        raise application_error(exc) from exc


async def run(
    commands: CommandExecutor, caller: Caller, command: Command, *, suffix: str = ""
) -> CommandResult:
    """Execute one command for the caller with this activity's idempotency key."""
    context = command_context(caller, suffix=suffix)
    return await domain_call(lambda: commands.execute(command, context))


class AggregateReader:
    """Reads an aggregate's current state from the event store (no writes)."""

    def __init__(self, store: EventStore, pseudonymizer: Pseudonymizer) -> None:
        self._store = store
        self._pseudonymizer = pseudonymizer

    async def load(self, cls: type[A], clinic_id: str, aggregate_id: str) -> A:
        context = CommandContext(clinic_id=clinic_id, actor="system:reader")
        uow = UnitOfWork(self._store, context, datetime.now(UTC), self._pseudonymizer)
        return await uow.get(cls, aggregate_id)

    def pseudonym(self, clinic_id: str, kind: str, value: str) -> str:
        return self._pseudonymizer.pseudonym(clinic_id, kind, value)


def compact(result: dict[str, Any]) -> dict[str, Any]:
    """A command result without ``None`` values (smaller histories)."""
    return {k: v for k, v in result.items() if v is not None}
