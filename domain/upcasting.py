"""Upcasters: lift stored event data from an old schema version to the current one.

Events are facts and are never rewritten; when an event's shape changes, its class
bumps ``schema_version`` and an upcaster ``(event_type, from_version) -> fn(data)``
turns version ``n`` data into version ``n + 1``. The event store applies the chain
on read, so ``RecordedEvent.data`` always has the current shape. Upcasters are pure
functions of the data; they never read anything else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from domain.events import EVENT_TYPES

Data = dict[str, Any]
Upcaster = Callable[[Data], Data]


class UpcastError(LookupError):
    """Stored data is older than its class and no upcaster bridges the gap."""


def current_version(event_type: str) -> int | None:
    """The schema version the event class declares now (None for an unknown type)."""
    cls = EVENT_TYPES.get(event_type)
    return cls.schema_version if cls is not None else None


class Upcasters:
    """A registry of upcasters keyed by ``(event_type, from_version)``."""

    def __init__(self) -> None:
        self._steps: dict[tuple[str, int], Upcaster] = {}

    def add(self, event_type: str, from_version: int, fn: Upcaster) -> None:
        """Register ``fn`` turning ``event_type`` data of ``from_version`` into the next."""
        key = (event_type, from_version)
        if key in self._steps:
            raise ValueError(f"an upcaster for {event_type} v{from_version} is already registered")
        self._steps[key] = fn

    def register(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator form of :meth:`add`; returns the function unchanged."""

        def decorate(fn: Upcaster) -> Upcaster:
            self.add(event_type, from_version, fn)
            return fn

        return decorate

    def upcast(self, event_type: str, schema_version: int, data: Data) -> tuple[Data, int]:
        """The data lifted to the class's current version, and that version.

        Unknown event types are lifted as far as the registered steps go.
        """
        target = current_version(event_type)
        if target is not None and schema_version >= target:
            return data, schema_version
        version = schema_version
        while (target is None or version < target) and (event_type, version) in self._steps:
            data = self._steps[(event_type, version)](dict(data))
            version += 1
        if target is not None and version < target:
            raise UpcastError(
                f"{event_type} data is v{version}, the class is v{target}: "
                f"no upcaster registered for v{version}"
            )
        return data, version


UPCASTERS = Upcasters()
"""The clinic's upcasters. Empty while every event is at its first version."""
