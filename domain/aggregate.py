"""Event-sourced aggregates: guard invariants, then record an event.

An aggregate's state is a fold of its events. Methods check the rules and call
``_record``; ``_apply`` dispatches each event to ``when_<EventType>`` so the same
code rebuilds state on load and advances it on record.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Self

from domain.events import DomainEvent


class Aggregate:
    """Base of the clinic's aggregates."""

    stream_type: ClassVar[str] = ""
    snapshot_every: ClassVar[int] = 0
    """Take a snapshot every N events (0: never). Long-lived streams set this."""

    def __init__(self, aggregate_id: str) -> None:
        self.id = aggregate_id
        self.version = 0
        self._pending: list[DomainEvent] = []

    @classmethod
    def stream_id_for(cls, aggregate_id: str) -> str:
        return f"{cls.stream_type}-{aggregate_id}"

    @property
    def stream_id(self) -> str:
        return self.stream_id_for(self.id)

    @property
    def exists(self) -> bool:
        return self.version > 0 or bool(self._pending)

    @property
    def pending_events(self) -> tuple[DomainEvent, ...]:
        return tuple(self._pending)

    @classmethod
    def rehydrate(cls, aggregate_id: str, events: Iterable[DomainEvent], version: int) -> Self:
        """Rebuild from stored events; ``version`` is the last stored event's version."""
        agg = cls(aggregate_id)
        for event in events:
            agg._apply(event)
        agg.version = version
        return agg

    def replay(self, events: Iterable[DomainEvent], version: int) -> None:
        """Apply further stored events (after a snapshot)."""
        for event in events:
            self._apply(event)
        self.version = version

    def _record(self, event: DomainEvent) -> None:
        self._apply(event)
        self._pending.append(event)

    def _apply(self, event: DomainEvent) -> None:
        handler = getattr(self, f"when_{event.event_type()}", None)
        if handler is None:
            raise TypeError(f"{type(self).__name__} cannot apply {event.event_type()}")
        handler(event)

    # Snapshots: aggregates that set snapshot_every override these two.
    def snapshot_state(self) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} does not take snapshots")

    @classmethod
    def from_snapshot(cls, aggregate_id: str, state: dict[str, Any], version: int) -> Self:
        raise NotImplementedError(f"{cls.__name__} does not take snapshots")
