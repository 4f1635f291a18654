"""Commands, queries and the unit of work that command handlers run in.

A command is an imperative record (``ScoreLead``); its handler is a small async
function ``handler(cmd, uow) -> dict`` that loads aggregates through the unit of
work, calls their methods and returns a JSON-ready result. The command bus
(``adapters.cqrs``) then appends every aggregate's pending events in ONE atomic
append with each stream's expected version and the command's idempotency key,
and retries the whole handler on a concurrency conflict.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

from domain.aggregate import Aggregate
from domain.events import DomainEvent, EventMetadata
from domain.ports import EventStore, Pseudonymizer, StreamAppend
from domain.text import nul_path

A = TypeVar("A", bound=Aggregate)


class Command(BaseModel):
    """Base of commands: frozen, closed, validated before any handler runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    command_type: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.command_type = cls.__name__

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if isinstance(data, dict):
            bad = nul_path(data)
            if bad:
                raise PydanticCustomError(
                    "nul_character", "{path} may not contain NUL (U+0000)", {"path": bad}
                )
        return data


class Query(BaseModel):
    """Base of queries: frozen, hashable arguments (they key the cache)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    query_type: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.query_type = cls.__name__


class CommandContext(BaseModel):
    """Who runs a command, for which clinic, under which trace and idempotency key."""

    model_config = ConfigDict(frozen=True)

    clinic_id: str
    actor: str
    idempotency_key: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    scopes: frozenset[str] = frozenset()

    def metadata(self) -> EventMetadata:
        return EventMetadata(
            correlation_id=self.correlation_id,
            causation_id=self.causation_id,
            actor=self.actor,
            traceparent=self.traceparent,
            tracestate=self.tracestate,
        )


class UnitOfWork:
    """Loads aggregates for one command attempt and collects what they recorded."""

    def __init__(
        self,
        store: EventStore,
        context: CommandContext,
        now: datetime,
        pseudonymizer: Pseudonymizer,
    ) -> None:
        self._store = store
        self.context = context
        self.clinic_id = context.clinic_id
        self.actor = context.actor
        self.now = now
        self._pseudonymizer = pseudonymizer
        self._tracked: dict[str, Aggregate] = {}

    async def get(self, cls: type[A], aggregate_id: str) -> A:
        """The aggregate's current state (a new, empty one if its stream does not exist)."""
        stream_id = cls.stream_id_for(aggregate_id)
        tracked = self._tracked.get(stream_id)
        if tracked is not None:
            if not isinstance(tracked, cls):
                raise TypeError(f"stream {stream_id} already loaded as {type(tracked).__name__}")
            return tracked
        agg = await self._load(cls, aggregate_id, stream_id)
        self._tracked[stream_id] = agg
        return agg

    async def _load(self, cls: type[A], aggregate_id: str, stream_id: str) -> A:
        after = 0
        agg: A | None = None
        if cls.snapshot_every:
            snap = await self._store.load_snapshot(self.clinic_id, stream_id)
            if snap is not None:
                agg = cls.from_snapshot(aggregate_id, snap.state, snap.version)
                after = snap.version
        recorded = await self._store.read_stream(self.clinic_id, stream_id, after_version=after)
        events = [r.to_domain() for r in recorded]
        version = recorded[-1].version if recorded else after
        if agg is None:
            return cls.rehydrate(aggregate_id, events, version)
        agg.replay(events, version)
        return agg

    def pseudonym(self, kind: str, value: str) -> str:
        """Stable keyed id for a natural key (e.g. a lead's phone) in this clinic."""
        return self._pseudonymizer.pseudonym(self.clinic_id, kind, value)

    def pending_appends(self) -> list[StreamAppend]:
        """One StreamAppend per aggregate that recorded events, in load order."""
        return [
            StreamAppend(
                stream_id=agg.stream_id,
                stream_type=agg.stream_type,
                expected_version=agg.version,
                events=agg.pending_events,
            )
            for agg in self._tracked.values()
            if agg.pending_events
        ]

    def snapshot_candidates(self) -> list[Aggregate]:
        """Aggregates whose new version crosses a snapshot boundary."""
        out = []
        for agg in self._tracked.values():
            n = agg.snapshot_every
            new_version = agg.version + len(agg.pending_events)
            if n and agg.pending_events and new_version // n > agg.version // n:
                out.append(agg)
        return out


CommandHandler = Callable[[Any, UnitOfWork], Awaitable[dict[str, Any]]]
"""``async def handle(cmd: SomeCommand, uow: UnitOfWork) -> dict`` (JSON-ready result)."""


def events_of(appends: list[StreamAppend]) -> list[DomainEvent]:
    return [e for a in appends for e in a.events]


class CommandResult(BaseModel):
    """What a command produced: its handler's result and where its events landed.

    ``position`` is the global position of the last event appended (or of the first
    run, for an idempotent replay); a reader passing it as ``min_position`` to the
    query bus never sees a state older than this command's effects.
    """

    model_config = ConfigDict(frozen=True)

    result: dict[str, Any]
    stream_versions: dict[str, int] = {}
    position: int = 0
    replayed: bool = False


class CommandExecutor(Protocol):
    """The command bus as the gateway and activities see it."""

    async def execute(self, command: Command, context: CommandContext) -> CommandResult: ...


class QueryExecutor(Protocol):
    """The query bus as the gateway and activities see it."""

    async def ask(
        self, query: Query, context: CommandContext, *, min_position: int | None = None
    ) -> Any: ...
