"""Ports: what the domain needs from the outside world, as Protocols.

Adapters implement them (``adapters.postgres`` for the event store); unit tests may
use the in-memory implementations in ``domain.memory``, which follow the same
contract tests as the real backends.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from domain.events import DomainEvent, EventMetadata, RecordedEvent

ANY_VERSION = -1
"""``expected_version`` that skips the optimistic check (used only for append-only logs)."""

NO_STREAM = 0
"""``expected_version`` for a stream that must not exist yet."""


class StreamAppend(BaseModel):
    """Events to append to one stream, guarded by the version the writer last saw."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    stream_id: str
    stream_type: str
    expected_version: int
    events: tuple[DomainEvent, ...]


class AppendResult(BaseModel):
    """Where the appended events landed. ``replayed`` is true for an idempotent repeat."""

    model_config = ConfigDict(frozen=True)

    stream_versions: dict[str, int]
    first_position: int
    last_position: int
    replayed: bool = False


class Snapshot(BaseModel):
    model_config = ConfigDict(frozen=True)

    stream_id: str
    version: int
    state: dict[str, Any]
    schema_version: int = 1


class EventStore(Protocol):
    """Append-only, clinic-scoped event log with optimistic concurrency."""

    async def append(
        self,
        clinic_id: str,
        appends: Sequence[StreamAppend],
        *,
        metadata: EventMetadata,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        """Append to one or more streams atomically.

        Raises ``ConcurrencyConflict`` when a stream's version differs from its
        ``expected_version``; ``IdempotencyKeyReused`` when the key was used with
        different content; returns the first result (``replayed=True``) when the key
        was already used with the same content.
        """
        ...

    async def read_stream(
        self, clinic_id: str, stream_id: str, *, after_version: int = 0
    ) -> list[RecordedEvent]: ...

    async def read_all(self, *, after_position: int, limit: int) -> list[RecordedEvent]:
        """Events in global order after ``after_position``; never skips a committed event."""
        ...

    async def load_snapshot(self, clinic_id: str, stream_id: str) -> Snapshot | None: ...

    async def save_snapshot(self, clinic_id: str, snapshot: Snapshot) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class Pseudonymizer(Protocol):
    """Keyed hash for looking people up without storing identifiers in plain text."""

    def pseudonym(self, clinic_id: str, kind: str, value: str) -> str: ...


def append_fingerprint(appends: Sequence[StreamAppend]) -> str:
    """What an idempotency key is bound to: the streams and the events' types and data.

    Expected versions are left out: a retry of an applied request is a replay even
    when the writer's view of the stream has moved on.
    """
    content = [
        {
            "stream_id": a.stream_id,
            "stream_type": a.stream_type,
            "events": [[e.event_type(), e.schema_version, e.data()] for e in a.events],
        }
        for a in appends
    ]
    encoded = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()


def check_appends(appends: Sequence[StreamAppend]) -> None:
    """Reject empty appends and a stream named twice (both are programming errors)."""
    if not appends or any(not a.events for a in appends):
        raise ValueError("an append needs at least one event per stream")
    ids = [a.stream_id for a in appends]
    if len(set(ids)) != len(ids):
        raise ValueError("a stream may appear once per append")
