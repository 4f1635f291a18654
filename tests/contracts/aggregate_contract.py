"""Laws every aggregate obeys, and a state-machine base that checks them after each step.

* version + pending events = number of events in its history;
* rehydrating from the (JSON round-tripped) history gives the same state;
* a snapshot (JSON round-tripped) rebuilds the same state;
* a refused action (a ``DomainError``) records nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from domain.aggregate import Aggregate
from domain.errors import DomainError
from domain.events import DomainEvent, event_class

A = TypeVar("A", bound=Aggregate)


def roundtrip(event: DomainEvent) -> DomainEvent:
    """The event as the store gives it back: through JSON and its registered class."""
    data = json.loads(json.dumps(event.data()))
    return event_class(event.event_type()).model_validate(data)


def json_state(agg: Aggregate) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(json.dumps(agg.snapshot_state()))
    return state


def assert_aggregate_laws(agg: Aggregate, history: list[DomainEvent]) -> None:
    """Check the laws for ``agg`` whose full history (stored + pending) is ``history``."""
    cls = type(agg)
    assert agg.version + len(agg.pending_events) == len(history)
    again = cls.rehydrate(agg.id, [roundtrip(e) for e in history], len(history))
    assert json_state(again) == json_state(agg)
    restored = cls.from_snapshot(agg.id, json_state(agg), len(history))
    assert json_state(restored) == json_state(agg)
    assert restored.version == len(history)


def attempt(agg: Aggregate, action: Callable[[], Any]) -> DomainError | None:
    """Run ``action``; a refusal must leave the aggregate's recorded events untouched."""
    before = agg.pending_events
    state = json_state(agg)
    try:
        action()
    except DomainError as error:
        assert agg.pending_events == before
        assert json_state(agg) == state
        return error
    return None


class AggregateMachine(RuleBasedStateMachine):
    """Base machine: subclasses set ``aggregate`` and add rules acting on ``self.agg``."""

    aggregate: type[Aggregate]
    aggregate_id = "agg-1"

    def __init__(self) -> None:
        super().__init__()
        self.agg: Any = self.aggregate(self.aggregate_id)
        self.stored: list[DomainEvent] = []

    def history(self) -> list[DomainEvent]:
        return [*self.stored, *self.agg.pending_events]

    @rule(from_snapshot=st.booleans())
    def save_and_reload(self, from_snapshot: bool) -> None:
        """Commit the pending events and load the aggregate again, as the next command would."""
        self.stored = self.history()
        cls, n = self.aggregate, len(self.stored)
        if from_snapshot and n:
            self.agg = cls.from_snapshot(self.aggregate_id, json_state(self.agg), n)
        else:
            self.agg = cls.rehydrate(self.aggregate_id, [roundtrip(e) for e in self.stored], n)

    @invariant()
    def laws_hold(self) -> None:
        assert_aggregate_laws(self.agg, self.history())
