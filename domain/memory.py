"""In-memory implementations of the domain's ports, and the command loop for tests.

``InMemoryEventStore`` keeps the same promises as the PostgreSQL store (both pass
``tests/contracts/event_store_contract.py``): clinic-scoped streams, optimistic
concurrency, atomic multi-stream appends, idempotency keys, global positions and
snapshots. ``run_command`` does what the command bus does (load → handle → append,
retrying on a concurrency conflict), so handlers can be exercised without I/O.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from domain.cqrs import Command, CommandContext, CommandHandler, UnitOfWork, events_of
from domain.errors import ConcurrencyConflict, IdempotencyKeyReused
from domain.events import DomainEvent, EventMetadata, RecordedEvent
from domain.ports import (
    ANY_VERSION,
    AppendResult,
    EventStore,
    Pseudonymizer,
    Snapshot,
    StreamAppend,
    append_fingerprint,
    check_appends,
)

StreamKey = tuple[str, str]
"""``(clinic_id, stream_id)``."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _IdempotentResult:
    fingerprint: str
    result: AppendResult


@dataclass
class InMemoryEventStore:
    """The EventStore port held in process memory; safe for concurrent asyncio tasks."""

    clock: Callable[[], datetime] = _utc_now
    _streams: dict[StreamKey, list[RecordedEvent]] = field(default_factory=dict)
    _log: list[RecordedEvent] = field(default_factory=list)
    _keys: dict[StreamKey, _IdempotentResult] = field(default_factory=dict)
    _snapshots: dict[StreamKey, Snapshot] = field(default_factory=dict)

    async def append(
        self,
        clinic_id: str,
        appends: Sequence[StreamAppend],
        *,
        metadata: EventMetadata,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        """Append to one or more streams atomically (see ``EventStore.append``)."""
        check_appends(appends)
        await asyncio.sleep(0)  # let concurrent writers interleave, as with a database
        fingerprint = append_fingerprint(appends)
        if idempotency_key is not None:
            seen = self._keys.get((clinic_id, idempotency_key))
            if seen is not None:
                return self._replay(seen, fingerprint, idempotency_key)
        for a in appends:
            self._check_version(clinic_id, a)
        result = self._write(clinic_id, appends, metadata, idempotency_key)
        if idempotency_key is not None:
            self._keys[(clinic_id, idempotency_key)] = _IdempotentResult(fingerprint, result)
        return result

    async def read_stream(
        self, clinic_id: str, stream_id: str, *, after_version: int = 0
    ) -> list[RecordedEvent]:
        """The stream's events with a version above ``after_version``, in order."""
        await asyncio.sleep(0)
        events = self._streams.get((clinic_id, stream_id), [])
        return [e for e in events if e.version > after_version]

    async def read_all(self, *, after_position: int, limit: int) -> list[RecordedEvent]:
        """Every clinic's events in global order after ``after_position``."""
        await asyncio.sleep(0)
        start = max(after_position, 0)  # positions are 1-based and contiguous here
        return list(self._log[start : start + max(limit, 0)])

    async def load_snapshot(self, clinic_id: str, stream_id: str) -> Snapshot | None:
        """The newest snapshot of the stream, if any."""
        return self._snapshots.get((clinic_id, stream_id))

    async def save_snapshot(self, clinic_id: str, snapshot: Snapshot) -> None:
        """Keep the newest snapshot of a stream; an older one never replaces it."""
        key = (clinic_id, snapshot.stream_id)
        current = self._snapshots.get(key)
        if current is None or snapshot.version >= current.version:
            self._snapshots[key] = snapshot

    def _replay(self, seen: _IdempotentResult, fingerprint: str, key: str) -> AppendResult:
        if seen.fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                "idempotency key was already used for a different request", idempotencyKey=key
            )
        return seen.result.model_copy(update={"replayed": True})

    def _check_version(self, clinic_id: str, a: StreamAppend) -> None:
        actual = len(self._streams.get((clinic_id, a.stream_id), []))
        if a.expected_version != ANY_VERSION and a.expected_version != actual:
            raise ConcurrencyConflict(a.stream_id, a.expected_version, actual)

    def _write(
        self,
        clinic_id: str,
        appends: Sequence[StreamAppend],
        metadata: EventMetadata,
        idempotency_key: str | None,
    ) -> AppendResult:
        recorded_at = self.clock()
        first = len(self._log) + 1
        versions: dict[str, int] = {}
        for a in appends:
            stream = self._streams.setdefault((clinic_id, a.stream_id), [])
            for event in a.events:
                recorded = RecordedEvent(
                    global_position=len(self._log) + 1,
                    clinic_id=clinic_id,
                    stream_id=a.stream_id,
                    stream_type=a.stream_type,
                    version=len(stream) + 1,
                    event_type=event.event_type(),
                    schema_version=event.schema_version,
                    data=event.data(),
                    metadata=metadata,
                    idempotency_key=idempotency_key,
                    recorded_at=recorded_at,
                )
                stream.append(recorded)
                self._log.append(recorded)
            versions[a.stream_id] = len(stream)
        return AppendResult(
            stream_versions=versions, first_position=first, last_position=len(self._log)
        )


class HmacPseudonymizer:
    """Keyed HMAC-SHA256 pseudonyms: stable per (clinic, kind, value), not reversible."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def pseudonym(self, clinic_id: str, kind: str, value: str) -> str:
        """A 32-hex-digit keyed hash of ``value`` for ``clinic_id`` and ``kind``."""
        message = "\x1f".join((clinic_id, kind, value)).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class CommandRun:
    """What ``run_command`` did: the handler's result and what was appended."""

    result: dict[str, Any]
    appended: AppendResult | None
    events: list[DomainEvent]
    attempts: int


async def run_command(
    store: EventStore,
    handler_map: Mapping[type[Command], CommandHandler],
    cmd: Command,
    ctx: CommandContext,
    now: datetime,
    pseudonymizer: Pseudonymizer,
    *,
    max_attempts: int = 5,
) -> CommandRun:
    """Load → handle → append atomically, retrying the handler on a concurrency conflict."""
    handler = handler_map[type(cmd)]
    for attempt in range(1, max_attempts + 1):
        uow = UnitOfWork(store, ctx, now, pseudonymizer)
        result = await handler(cmd, uow)
        appends = uow.pending_appends()
        if not appends:
            return CommandRun(result, None, [], attempt)
        try:
            appended = await store.append(
                ctx.clinic_id,
                appends,
                metadata=ctx.metadata(),
                idempotency_key=ctx.idempotency_key,
            )
        except ConcurrencyConflict:
            if attempt == max_attempts:
                raise
            continue
        if not appended.replayed:
            await save_snapshots(store, ctx.clinic_id, uow)
        return CommandRun(result, appended, events_of(appends), attempt)
    raise AssertionError("unreachable: the loop returns or raises")


async def save_snapshots(store: EventStore, clinic_id: str, uow: UnitOfWork) -> None:
    """Snapshot the aggregates whose new version crossed their ``snapshot_every``."""
    for agg in uow.snapshot_candidates():
        await store.save_snapshot(
            clinic_id,
            Snapshot(
                stream_id=agg.stream_id,
                version=agg.version + len(agg.pending_events),
                state=agg.snapshot_state(),
            ),
        )
