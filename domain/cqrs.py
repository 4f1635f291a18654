"""Commands, queries and the unit of work that command handlers run in.

A command is an imperative record (``ScoreLead``); its handler is a small async
function ``handler(cmd, uow) -> dict`` that loads aggregates through the unit of
work, calls their methods and returns a JSON-ready result. The command bus
(``adapters.cqrs``) then appends every aggregate's pending events in ONE atomic
append with each stream's expected version and the command's idempotency key,
and retries the whole handler on a concurrency conflict.

An optional :class:`AggregateCache` lets a unit of work start from an aggregate as
this process last saw it stored, instead of reading its events again. A cached
aggregate is only an optimistic guess: the bus has the append check its version
(streams the command writes, and read-only ones as guards), so a stale entry ends in
a concurrency conflict and a reload, never in a write decided on old state.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from time import monotonic
from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

from domain.aggregate import Aggregate
from domain.events import DomainEvent, EventMetadata, event_class
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
        if isinstance(data, dict) and _has_nul(data):
            bad = nul_path(data)
            if bad:
                raise PydanticCustomError(
                    "nul_character", "{path} may not contain NUL (U+0000)", {"path": bad}
                )
        return data


def _has_nul(value: object) -> bool:
    """Whether ``nul_path`` would find a NUL: the same walk, without building paths."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and "\x00" in key:
                    return True
                stack.append(child)
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


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


@dataclass(frozen=True, slots=True)
class CachedAggregate:
    """An aggregate exactly as its stored events build it, at its stored version.

    ``tags`` name what else its state was read with (the crypto-shredding store puts
    the subject keys that opened its personal fields there): the bus checks them
    before the entry is used again. ``expires``: when the cache forgets it (a clock
    reading; 0 until the cache keeps it).
    """

    aggregate: Aggregate
    tags: frozenset[str] = frozenset()
    expires: float = 0.0

    @property
    def version(self) -> int:
        return self.aggregate.version


_IMMUTABLE: frozenset[type] = frozenset(
    {str, int, float, bool, type(None), bytes, date, datetime, time, timedelta, Decimal}
)


def clone_aggregate(agg: A) -> A:
    """A deep copy of an aggregate, like ``copy.deepcopy`` but several times faster.

    Aggregates hold plain data (scalars, dates, dicts and lists of them): those are
    copied directly, shared references stay shared (a memo, as deepcopy keeps);
    anything else goes through ``copy.deepcopy`` with the same memo. A class with
    ``__slots__`` or its own ``__deepcopy__`` is left to ``copy.deepcopy`` entirely.
    """
    cls = type(agg)
    if not hasattr(agg, "__dict__") or hasattr(cls, "__deepcopy__") or "__slots__" in cls.__dict__:
        return copy.deepcopy(agg)
    memo: dict[int, Any] = {}
    clone: A = object.__new__(cls)
    memo[id(agg)] = clone
    clone.__dict__.update(
        {
            name: value if type(value) in _IMMUTABLE else _clone_value(value, memo)
            for name, value in agg.__dict__.items()
        }
    )
    return clone


def _clone_value(value: Any, memo: dict[int, Any]) -> Any:
    found = memo.get(id(value))
    if found is not None:
        return found
    kind = type(value)
    if kind is dict:
        out: Any = {}
        memo[id(value)] = out
        for key, item in value.items():
            out[key] = item if type(item) in _IMMUTABLE else _clone_value(item, memo)
        return out
    if kind is list:
        out = []
        memo[id(value)] = out
        out.extend(item if type(item) in _IMMUTABLE else _clone_value(item, memo) for item in value)
        return out
    return copy.deepcopy(value, memo)


TagCheck = Callable[[str, frozenset[str]], Awaitable[bool]]
"""``async (clinic_id, tags) -> bool``: may an entry read with these tags still be used?"""


class AggregateCache:
    """Aggregates per ``(clinic, stream)`` as this process last saw them stored: at most
    ``size`` of them, each for at most ``ttl`` seconds.

    A unit of work *takes* an entry (it leaves the cache, so no two commands share an
    object), works on a private copy, and the bus puts an entry back only after the
    command's append committed, rebuilt from the committed events in their stored
    form. Entries may be stale (another process appended since): whoever uses one must
    have the store confirm its version (see ``UnitOfWork.cached_versions``).

    The time bound limits how long opened personal data of a subject erased elsewhere
    can stay in this process's memory (its entries are refused at once, but only
    dropped when touched or expired); expired entries go whenever one is put.
    """

    def __init__(
        self, size: int = 10_000, ttl: float = 60.0, clock: Callable[[], float] = monotonic
    ) -> None:
        self._size = size
        self._ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], CachedAggregate] = OrderedDict()
        self.hits = 0
        """Entries taken (and passed their tag check)."""
        self.misses = 0
        """Loads that found nothing usable and read the store."""
        self.stale = 0
        """Commands whose cached entries the store refused (conflict or version check)."""

    def take(self, clinic_id: str, stream_id: str, cls: type[Aggregate]) -> CachedAggregate | None:
        """Remove and return the entry of a stream (None when absent or of another class)."""
        entry = self._entries.pop((clinic_id, stream_id), None)
        if entry is None or type(entry.aggregate) is not cls or entry.expires <= self._clock():
            return None
        return entry

    def put(self, clinic_id: str, entry: CachedAggregate) -> None:
        """Keep ``entry`` unless a newer version of its stream is already kept."""
        if self._size <= 0 or self._ttl <= 0:
            return
        now = self._clock()
        key = (clinic_id, entry.aggregate.stream_id)
        current = self._entries.get(key)
        if current is None or current.version < entry.version:
            self._entries[key] = replace(entry, expires=now + self._ttl)
            self._entries.move_to_end(key)  # so the order is the order of expiry
        entries = self._entries
        while entries and (
            len(entries) > self._size or next(iter(entries.values())).expires <= now
        ):
            entries.popitem(last=False)  # the least recently kept: over size, or expired

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        return self._size


class UnitOfWork:
    """Loads aggregates for one command attempt and collects what they recorded.

    With a ``cache``, loads first try the cache (``reuse``; entries whose tags
    ``check`` refuses are dropped) and every aggregate keeps a private base copy
    from which :meth:`cache_entries` builds what to cache after a committed append.
    """

    def __init__(
        self,
        store: EventStore,
        context: CommandContext,
        now: datetime,
        pseudonymizer: Pseudonymizer,
        *,
        cache: AggregateCache | None = None,
        reuse: bool = True,
        check: TagCheck | None = None,
    ) -> None:
        self._store = store
        self.context = context
        self.clinic_id = context.clinic_id
        self.actor = context.actor
        self.now = now
        self._pseudonymizer = pseudonymizer
        self._tracked: dict[str, Aggregate] = {}
        self._cache = cache
        self._reuse = reuse
        self._check = check
        self._hits: dict[str, CachedAggregate] = {}
        self._bases: dict[str, Aggregate] = {}

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
        cache = self._cache
        if cache is None:
            return await self._read(cls, aggregate_id, stream_id)
        if self._reuse:
            entry = cache.take(self.clinic_id, stream_id, cls)
            if entry is not None and (not entry.tags or await self._usable(entry)):
                cache.hits += 1
                self._hits[stream_id] = entry
                # The entry stays private (it becomes the cached state after commit);
                # the handler works on a copy, which may end up aliased by its result.
                return clone_aggregate(entry.aggregate)  # type: ignore[return-value]
        cache.misses += 1
        agg = await self._read(cls, aggregate_id, stream_id)
        self._bases[stream_id] = clone_aggregate(agg)
        return agg

    async def _usable(self, entry: CachedAggregate) -> bool:
        if not entry.tags:
            return True
        return self._check is not None and await self._check(self.clinic_id, entry.tags)

    async def _read(self, cls: type[A], aggregate_id: str, stream_id: str) -> A:
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

    def cached_versions(self) -> dict[str, int]:
        """Version of every stream this attempt took from the cache.

        The store must confirm each before the attempt's outcome stands: streams the
        command writes are checked by the append's expected version; the others are
        passed to the append as read guards, or checked on their own when nothing is
        appended.
        """
        return {stream_id: entry.version for stream_id, entry in self._hits.items()}

    def read_guards(self) -> dict[str, int]:
        """Cached streams this attempt read without writing: ``{stream_id: version}``."""
        return {
            stream_id: entry.version
            for stream_id, entry in self._hits.items()
            if not self._tracked[stream_id].pending_events
        }

    def cache_entries(
        self, tags: Mapping[str, Iterable[str]] | None = None
    ) -> list[CachedAggregate]:
        """What to cache once this attempt's append (if any) has committed.

        Each aggregate is rebuilt from its base by replaying the recorded events in the
        form a reload reads them (``data()`` validated again), so the cache holds what
        reading the stream would build, and nothing the handler or its result can
        still reach. ``tags``: per stream, what else the state was read with.
        """
        out: list[CachedAggregate] = []
        for stream_id, agg in self._tracked.items():
            hit = self._hits.get(stream_id)
            base = hit.aggregate if hit is not None else self._bases.get(stream_id)
            if base is None:
                continue
            pending = agg.pending_events
            if pending:
                stored = [event_class(e.event_type()).model_validate(e.data()) for e in pending]
                base.replay(stored, base.version + len(pending))
            if base.version == 0:
                continue  # a stream that does not exist: nothing to remember
            names = set(hit.tags) if hit is not None else set()
            if tags is not None:
                names.update(tags.get(stream_id, ()))
            out.append(CachedAggregate(base, frozenset(names)))
        return out

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
