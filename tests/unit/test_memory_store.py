"""The in-memory event store passes the EventStore contract; run_command acts like the bus."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from domain.aggregates import Lead
from domain.commands import AssignLead, ScoreLead
from domain.cqrs import Command, CommandContext, CommandHandler, UnitOfWork
from domain.errors import ConcurrencyConflict, IdempotencyKeyReused
from domain.events import EventMetadata, LeadAssigned
from domain.handlers import COMMAND_HANDLERS
from domain.memory import HmacPseudonymizer, InMemoryEventStore, run_command
from domain.ports import ANY_VERSION, AppendResult, StreamAppend
from tests.contracts.event_store_contract import EventStoreContract

NOW = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
CTX = CommandContext(clinic_id="clinic-1", actor="test")
PSEUDO = HmacPseudonymizer(b"test-key")


class TestInMemoryEventStore(EventStoreContract):
    @pytest.fixture
    def store(self) -> InMemoryEventStore:
        return InMemoryEventStore()


def test_the_store_uses_its_clock_for_recording_times() -> None:
    import asyncio

    store = InMemoryEventStore(clock=lambda: NOW)
    append = StreamAppend(
        stream_id="s",
        stream_type="lead",
        expected_version=0,
        events=(LeadAssigned(lead_id="l", assignee="a"),),
    )
    asyncio.run(store.append("c", [append], metadata=EventMetadata()))
    [event] = asyncio.run(store.read_stream("c", "s"))
    assert event.recorded_at == NOW


def test_pseudonyms_are_stable_per_clinic_and_kind() -> None:
    p = HmacPseudonymizer(b"k")
    assert p.pseudonym("c1", "lead", "+40721234567") == p.pseudonym("c1", "lead", "+40721234567")
    assert p.pseudonym("c1", "lead", "+40721234567") != p.pseudonym("c2", "lead", "+40721234567")
    assert p.pseudonym("c1", "lead", "+40721234567") != p.pseudonym(
        "c1", "conversation", "+40721234567"
    )
    assert p.pseudonym("c1", "lead", "x") != HmacPseudonymizer(b"other").pseudonym(
        "c1", "lead", "x"
    )


class RacingStore(InMemoryEventStore):
    """Before each of its first ``races`` appends, another writer appends to the same streams."""

    def __init__(self, races: int) -> None:
        super().__init__()
        self.races = races
        self.calls = 0

    async def append(
        self,
        clinic_id: str,
        appends: Sequence[StreamAppend],
        *,
        metadata: EventMetadata,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        self.calls += 1
        if self.races > 0:
            self.races -= 1
            rival = [
                StreamAppend(
                    stream_id=a.stream_id,
                    stream_type=a.stream_type,
                    expected_version=ANY_VERSION,
                    events=(LeadAssigned(lead_id="rival", assignee=f"rival-{self.calls}"),),
                )
                for a in appends
            ]
            await super().append(clinic_id, rival, metadata=metadata)
        return await super().append(
            clinic_id, appends, metadata=metadata, idempotency_key=idempotency_key
        )


async def _lead_with_score(store: InMemoryEventStore) -> str:
    cmd = ScoreLead(
        phone="0721234567", channel="web", messages=[{"role": "user", "content": "implant"}]
    )
    run = await run_command(store, COMMAND_HANDLERS, cmd, CTX, NOW, PSEUDO)
    return str(run.result["leadId"])


async def test_run_command_retries_the_handler_after_a_conflict() -> None:
    store = RacingStore(races=0)
    lead_id = await _lead_with_score(store)
    store.races = 2
    run = await run_command(
        store, COMMAND_HANDLERS, AssignLead(lead_id=lead_id, assignee="ana"), CTX, NOW, PSEUDO
    )
    assert run.attempts == 3
    events = await store.read_stream("clinic-1", Lead.stream_id_for(lead_id))
    assert [e.event_type for e in events][-3:] == ["LeadAssigned", "LeadAssigned", "LeadAssigned"]
    assert events[-1].data["assignee"] == "ana"
    assert events[-1].data["previous_status"] == "assigned"  # re-read after the rivals


async def test_run_command_gives_up_after_max_attempts() -> None:
    store = RacingStore(races=0)
    lead_id = await _lead_with_score(store)
    store.races = 10
    with pytest.raises(ConcurrencyConflict):
        await run_command(
            store,
            COMMAND_HANDLERS,
            AssignLead(lead_id=lead_id, assignee="ana"),
            CTX,
            NOW,
            PSEUDO,
            max_attempts=3,
        )
    assert store.calls == 1 + 3


async def test_run_command_appends_nothing_when_nothing_changed() -> None:
    store = InMemoryEventStore()
    lead_id = await _lead_with_score(store)
    cmd = AssignLead(lead_id=lead_id, assignee="ana")
    await run_command(store, COMMAND_HANDLERS, cmd, CTX, NOW, PSEUDO)
    again = await run_command(store, COMMAND_HANDLERS, cmd, CTX, NOW, PSEUDO)
    assert again.appended is None and again.events == []
    assert again.result["changed"] is False


async def test_run_command_passes_the_idempotency_key_to_the_store() -> None:
    store = InMemoryEventStore()
    lead_id = await _lead_with_score(store)
    ctx = CTX.model_copy(update={"idempotency_key": "req-1"})
    cmd = AssignLead(lead_id=lead_id, assignee="ana")
    first = await run_command(store, COMMAND_HANDLERS, cmd, ctx, NOW, PSEUDO)
    assert first.appended is not None and not first.appended.replayed
    # A different request under the same key is refused by the store.
    other = AssignLead(lead_id=lead_id, assignee="bob")
    with pytest.raises(IdempotencyKeyReused):
        await run_command(store, COMMAND_HANDLERS, other, ctx, NOW, PSEUDO)


async def test_snapshots_are_taken_at_the_boundary_and_used_on_load() -> None:
    store = InMemoryEventStore()
    lead_id = await _lead_with_score(store)  # version 2: created + scored
    for n in range(Lead.snapshot_every - 2):
        await run_command(
            store, COMMAND_HANDLERS, AssignLead(lead_id=lead_id, assignee=f"a{n}"), CTX, NOW, PSEUDO
        )
    snapshot = await store.load_snapshot("clinic-1", Lead.stream_id_for(lead_id))
    assert snapshot is not None and snapshot.version == Lead.snapshot_every
    await run_command(
        store, COMMAND_HANDLERS, AssignLead(lead_id=lead_id, assignee="last"), CTX, NOW, PSEUDO
    )
    uow = UnitOfWork(store, CTX, NOW, PSEUDO)
    loaded = await uow.get(Lead, lead_id)
    events = [
        e.to_domain() for e in await store.read_stream("clinic-1", Lead.stream_id_for(lead_id))
    ]
    full = Lead.rehydrate(lead_id, events, len(events))
    assert loaded.version == full.version == Lead.snapshot_every + 1
    assert loaded.snapshot_state() == full.snapshot_state()
    assert loaded.assignee == "last"


async def test_an_unknown_command_type_is_a_programming_error() -> None:
    class Unknown(Command):
        pass

    handlers: dict[type[Command], CommandHandler] = {}
    with pytest.raises(KeyError):
        await run_command(InMemoryEventStore(), handlers, Unknown(), CTX, NOW, PSEUDO)
