"""The EventStore port's contract: every implementation must pass all of it.

Use it by subclassing and providing a ``store`` fixture::

    class TestMyEventStore(EventStoreContract):
        @pytest.fixture
        def store(self) -> EventStore:
            return MyEventStore(...)

The store may be shared between tests and hold other data: each test works in its
own fresh clinic and stream ids, and reads the global log only from positions it
has seen itself. What the contract pins down:

* streams are clinic-scoped; versions start at 1 and have no gaps;
* ``expected_version`` must equal the stream's version (``NO_STREAM`` = 0 for a new
  stream, ``ANY_VERSION`` skips the check), else ``ConcurrencyConflict`` with the
  stream id, expected and actual versions in ``details``;
* one append to several streams is atomic: one conflict and nothing is written;
* an append with no events, or naming a stream twice, raises ``ValueError``;
* global positions increase in commit order and ``read_all`` never skips a
  committed event (positions may have gaps);
* an idempotency key (per clinic) is bound to the append's content: the streams
  and the events' types and data, not the expected versions. The same content
  again returns the first ``AppendResult`` with ``replayed=True`` and writes
  nothing; other content raises ``IdempotencyKeyReused``;
* snapshots are clinic-scoped and never replaced by an older version.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime

import pytest

from domain.errors import ConcurrencyConflict, IdempotencyKeyReused
from domain.events import (
    AppointmentRequested,
    DomainEvent,
    EventMetadata,
    LeadAssigned,
    RecordedEvent,
)
from domain.ports import ANY_VERSION, NO_STREAM, EventStore, Snapshot, StreamAppend

META = EventMetadata(actor="contract-test")


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def assigned(n: int) -> LeadAssigned:
    return LeadAssigned(lead_id="lead-1", assignee=f"agent-{n}")


def to(
    stream_id: str, expected: int, *events: DomainEvent, stream_type: str = "lead"
) -> StreamAppend:
    return StreamAppend(
        stream_id=stream_id, stream_type=stream_type, expected_version=expected, events=events
    )


async def stream_versions(store: EventStore, clinic: str, stream_id: str) -> list[int]:
    return [e.version for e in await store.read_stream(clinic, stream_id)]


async def read_from(store: EventStore, after: int, clinic: str) -> list[RecordedEvent]:
    """This clinic's events after ``after`` in the global log (pages of 100)."""
    out: list[RecordedEvent] = []
    position = after
    while True:
        page = await store.read_all(after_position=position, limit=100)
        if not page:
            return [e for e in out if e.clinic_id == clinic]
        out.extend(page)
        position = page[-1].global_position


class EventStoreContract:
    """The contract; subclasses provide the ``store`` fixture."""

    @pytest.fixture
    def clinic(self) -> str:
        return new_id("clinic")

    @pytest.fixture
    def stream(self) -> str:
        return new_id("lead")

    # --- appending and reading ------------------------------------------------------

    async def test_append_then_read_the_stream_back(
        self, store: EventStore, clinic: str, stream: str
    ) -> None:
        result = await store.append(
            clinic, [to(stream, NO_STREAM, assigned(1), assigned(2))], metadata=META
        )
        events = await store.read_stream(clinic, stream)
        assert [e.version for e in events] == [1, 2]
        assert result.stream_versions == {stream: 2}
        assert result.replayed is False
        first = events[0]
        assert (first.clinic_id, first.stream_id, first.stream_type) == (clinic, stream, "lead")
        assert (first.event_type, first.schema_version) == ("LeadAssigned", 1)
        assert first.data == assigned(1).data()
        assert first.to_domain() == assigned(1)
        assert first.idempotency_key is None
        assert first.recorded_at.tzinfo is not None

    async def test_event_data_is_json_and_rebuilds_typed_events(
        self, store: EventStore, clinic: str
    ) -> None:
        event = AppointmentRequested(
            appointment_id="a-1",
            patient_id="p-1",
            service_type="implant",
            preferred_date=date(2025, 3, 4),
            doctor_id="d-1",
            start=datetime(2025, 3, 4, 7, 0, tzinfo=UTC),
            end=datetime(2025, 3, 4, 8, 30, tzinfo=UTC),
            duration_minutes=90,
        )
        stream = new_id("appointment")
        await store.append(
            clinic, [to(stream, NO_STREAM, event, stream_type="appointment")], metadata=META
        )
        [stored] = await store.read_stream(clinic, stream)
        assert stored.data["preferred_date"] == "2025-03-04"
        assert isinstance(stored.data["start"], str)
        assert stored.to_domain() == event

    async def test_metadata_is_kept_with_every_event(
        self, store: EventStore, clinic: str, stream: str
    ) -> None:
        meta = EventMetadata(
            correlation_id="corr-1",
            causation_id="cause-1",
            actor="api-key:7",
            traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            tracestate="vendor=1",
        )
        await store.append(clinic, [to(stream, NO_STREAM, assigned(1), assigned(2))], metadata=meta)
        assert [e.metadata for e in await store.read_stream(clinic, stream)] == [meta, meta]

    async def test_read_stream_after_a_version(
        self, store: EventStore, clinic: str, stream: str
    ) -> None:
        await store.append(clinic, [to(stream, NO_STREAM, *map(assigned, range(4)))], metadata=META)
        later = await store.read_stream(clinic, stream, after_version=2)
        assert [e.version for e in later] == [3, 4]
        assert [e.to_domain() for e in later] == [assigned(2), assigned(3)]

    async def test_an_unknown_stream_reads_empty(self, store: EventStore, clinic: str) -> None:
        assert await store.read_stream(clinic, new_id("nothing")) == []

    async def test_versions_continue_across_appends(
        self, store: EventStore, clinic: str, stream: str
    ) -> None:
        await store.append(clinic, [to(stream, NO_STREAM, assigned(1))], metadata=META)
        result = await store.append(
            clinic, [to(stream, 1, assigned(2), assigned(3))], metadata=META
        )
        assert result.stream_versions == {stream: 3}
        assert await stream_versions(store, clinic, stream) == [1, 2, 3]

    # --- optimistic concurrency -----------------------------------------------------

    async def test_a_stale_expected_version_conflicts_and_writes_nothing(
        self, store: EventStore, clinic: str, stream: str
    ) -> None:
        await store.append(clinic, [to(stream, NO_STREAM, assigned(1), assigned(2))], metadata=META)
        with pytest.raises(ConcurrencyConflict) as caught:
            await store.append(clinic, [to(stream, 1, assigned(3))], metadata=META)
        assert caught.value.details == {
            "stream_id": stream,
            "expected_version": 1,
            "actual_version": 2,
        }
        assert caught.value.code == "CONFLICT"
        assert await stream_versions(store, clinic, stream) == [1, 2]

    async def test_no_stream_conflicts_when_the_stream_exists(
        self, store: EventStore, clinic: str, stream: str
    ) -> None:
        await store.append(clinic, [to(stream, NO_STREAM, assigned(1))], metadata=META)
        with pytest.raises(ConcurrencyConflict):
            await store.append(clinic, [to(stream, NO_STREAM, assigned(2))], metadata=META)

    async def test_expecting_a_version_of_a_missing_stream_conflicts(
        self, store: EventStore, clinic: str, stream: str
    ) -> None:
        with pytest.raises(ConcurrencyConflict):
            await store.append(clinic, [to(stream, 3, assigned(1))], metadata=META)
        assert await store.read_stream(clinic, stream) == []

    async def test_any_version_skips_the_check(
        self, store: EventStore, clinic: str, stream: str
    ) -> None:
        await store.append(clinic, [to(stream, ANY_VERSION, assigned(1))], metadata=META)
        result = await store.append(clinic, [to(stream, ANY_VERSION, assigned(2))], metadata=META)
        assert result.stream_versions == {stream: 2}

    async def test_concurrent_writers_of_one_version_one_wins(
        self, store: EventStore, clinic: str, stream: str
    ) -> None:
        attempts = [
            store.append(clinic, [to(stream, NO_STREAM, assigned(n))], metadata=META)
            for n in range(8)
        ]
        outcomes = await asyncio.gather(*attempts, return_exceptions=True)
        winners = [o for o in outcomes if not isinstance(o, BaseException)]
        losers = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(winners) == 1
        assert all(isinstance(o, ConcurrencyConflict) for o in losers)
        assert await stream_versions(store, clinic, stream) == [1]

    # --- atomic multi-stream appends --------------------------------------------------

    async def test_several_streams_in_one_append(self, store: EventStore, clinic: str) -> None:
        a, b = new_id("lead"), new_id("lead")
        await store.append(clinic, [to(b, NO_STREAM, assigned(0))], metadata=META)
        result = await store.append(
            clinic,
            [to(a, NO_STREAM, assigned(1), assigned(2)), to(b, 1, assigned(3))],
            metadata=META,
        )
        assert result.stream_versions == {a: 2, b: 2}
        assert result.last_position > result.first_position

    async def test_one_conflict_and_no_stream_is_written(
        self, store: EventStore, clinic: str
    ) -> None:
        a, b = new_id("lead"), new_id("lead")
        await store.append(clinic, [to(b, NO_STREAM, assigned(0))], metadata=META)
        with pytest.raises(ConcurrencyConflict) as caught:
            await store.append(
                clinic,
                [to(a, NO_STREAM, assigned(1)), to(b, NO_STREAM, assigned(2))],
                metadata=META,
            )
        assert caught.value.details["stream_id"] == b
        assert await store.read_stream(clinic, a) == []
        assert await stream_versions(store, clinic, b) == [1]

    async def test_an_append_without_events_is_refused(
        self, store: EventStore, clinic: str, stream: str
    ) -> None:
        with pytest.raises(ValueError):
            await store.append(clinic, [], metadata=META)
        with pytest.raises(ValueError):
            await store.append(clinic, [to(stream, NO_STREAM)], metadata=META)

    async def test_a_stream_twice_in_one_append_is_refused(
        self, store: EventStore, clinic: str, stream: str
    ) -> None:
        with pytest.raises(ValueError):
            await store.append(
                clinic,
                [to(stream, NO_STREAM, assigned(1)), to(stream, 1, assigned(2))],
                metadata=META,
            )
        assert await store.read_stream(clinic, stream) == []

    # --- clinic scoping ---------------------------------------------------------------

    async def test_streams_are_clinic_scoped(self, store: EventStore, stream: str) -> None:
        one, other = new_id("clinic"), new_id("clinic")
        await store.append(one, [to(stream, NO_STREAM, assigned(1))], metadata=META)
        await store.append(other, [to(stream, NO_STREAM, assigned(2))], metadata=META)
        assert [e.to_domain() for e in await store.read_stream(one, stream)] == [assigned(1)]
        assert [e.to_domain() for e in await store.read_stream(other, stream)] == [assigned(2)]
        assert await store.read_stream(new_id("clinic"), stream) == []

    # --- the global log ---------------------------------------------------------------

    async def test_positions_follow_the_append_order(self, store: EventStore, clinic: str) -> None:
        a, b = new_id("lead"), new_id("lead")
        first = await store.append(
            clinic, [to(a, NO_STREAM, assigned(1), assigned(2))], metadata=META
        )
        second = await store.append(clinic, [to(b, NO_STREAM, assigned(3))], metadata=META)
        assert first.first_position < first.last_position < second.first_position
        assert second.first_position == second.last_position
        stored = await store.read_stream(clinic, a) + await store.read_stream(clinic, b)
        positions = [e.global_position for e in stored]
        assert positions == sorted(positions)
        assert positions[0] == first.first_position and positions[1] == first.last_position
        assert positions[2] == second.first_position

    async def test_read_all_pages_in_global_order(self, store: EventStore, clinic: str) -> None:
        a, b = new_id("lead"), new_id("lead")
        first = await store.append(
            clinic, [to(a, NO_STREAM, assigned(1), assigned(2))], metadata=META
        )
        await store.append(clinic, [to(b, NO_STREAM, assigned(3))], metadata=META)
        page = await store.read_all(after_position=first.first_position - 1, limit=2)
        assert [e.to_domain() for e in page] == [assigned(1), assigned(2)]
        rest = await store.read_all(after_position=page[-1].global_position, limit=10)
        assert [e.to_domain() for e in rest if e.clinic_id == clinic] == [assigned(3)]
        assert await store.read_all(after_position=first.first_position - 1, limit=0) == []

    async def test_read_all_never_skips_a_concurrent_commit(
        self, store: EventStore, clinic: str
    ) -> None:
        marker = await store.append(
            clinic, [to(new_id("lead"), NO_STREAM, assigned(0))], metadata=META
        )
        streams = [new_id("lead") for _ in range(20)]
        await asyncio.gather(
            *(
                store.append(clinic, [to(s, NO_STREAM, assigned(1), assigned(2))], metadata=META)
                for s in streams
            )
        )
        seen = await read_from(store, marker.last_position, clinic)
        positions = [e.global_position for e in seen]
        assert positions == sorted(set(positions))
        assert sorted(e.stream_id for e in seen) == sorted(streams * 2)
        for s in streams:
            assert [e.version for e in seen if e.stream_id == s] == [1, 2]

    # --- idempotency ------------------------------------------------------------------

    async def test_the_same_key_and_content_replays_the_first_result(
        self, store: EventStore, clinic: str, stream: str
    ) -> None:
        append = [to(stream, NO_STREAM, assigned(1), assigned(2))]
        first = await store.append(clinic, append, metadata=META, idempotency_key="key-1")
        again = await store.append(clinic, append, metadata=META, idempotency_key="key-1")
        assert again.replayed is True
        assert again.model_dump(exclude={"replayed"}) == first.model_dump(exclude={"replayed"})
        stored = await store.read_stream(clinic, stream)
        assert [e.version for e in stored] == [1, 2]
        assert {e.idempotency_key for e in stored} == {"key-1"}
        assert [e.stream_id for e in await read_from(store, first.first_position - 1, clinic)] == [
            stream,
            stream,
        ]

    async def test_a_replay_ignores_the_expected_version(
        self, store: EventStore, clinic: str, stream: str
    ) -> None:
        first = await store.append(
            clinic, [to(stream, NO_STREAM, assigned(1))], metadata=META, idempotency_key="key-2"
        )
        again = await store.append(
            clinic, [to(stream, 1, assigned(1))], metadata=META, idempotency_key="key-2"
        )
        assert again.replayed and again.stream_versions == first.stream_versions
        assert await stream_versions(store, clinic, stream) == [1]

    async def test_the_same_key_with_other_content_is_refused(
        self, store: EventStore, clinic: str, stream: str
    ) -> None:
        await store.append(
            clinic, [to(stream, NO_STREAM, assigned(1))], metadata=META, idempotency_key="k"
        )
        with pytest.raises(IdempotencyKeyReused) as caught:
            await store.append(
                clinic, [to(stream, 1, assigned(2))], metadata=META, idempotency_key="k"
            )
        assert caught.value.code == "CONFLICT"
        with pytest.raises(IdempotencyKeyReused):
            await store.append(
                clinic,
                [to(new_id("lead"), NO_STREAM, assigned(1))],
                metadata=META,
                idempotency_key="k",
            )
        assert await stream_versions(store, clinic, stream) == [1]

    async def test_idempotency_keys_are_clinic_scoped(self, store: EventStore, stream: str) -> None:
        one, other = new_id("clinic"), new_id("clinic")
        append = [to(stream, NO_STREAM, assigned(1))]
        await store.append(one, append, metadata=META, idempotency_key="shared")
        result = await store.append(other, append, metadata=META, idempotency_key="shared")
        assert result.replayed is False
        assert await stream_versions(store, other, stream) == [1]

    async def test_a_failed_append_does_not_consume_its_key(
        self, store: EventStore, clinic: str, stream: str
    ) -> None:
        await store.append(clinic, [to(stream, NO_STREAM, assigned(1))], metadata=META)
        with pytest.raises(ConcurrencyConflict):
            await store.append(
                clinic, [to(stream, 0, assigned(2))], metadata=META, idempotency_key="k3"
            )
        result = await store.append(
            clinic, [to(stream, 1, assigned(2))], metadata=META, idempotency_key="k3"
        )
        assert result.replayed is False and result.stream_versions == {stream: 2}

    # --- snapshots --------------------------------------------------------------------

    async def test_snapshots_round_trip(self, store: EventStore, clinic: str, stream: str) -> None:
        assert await store.load_snapshot(clinic, stream) is None
        snap = Snapshot(stream_id=stream, version=5, state={"status": "scored", "n": [1, 2]})
        await store.save_snapshot(clinic, snap)
        assert await store.load_snapshot(clinic, stream) == snap

    async def test_a_newer_snapshot_replaces_an_older_one_never_the_reverse(
        self, store: EventStore, clinic: str, stream: str
    ) -> None:
        await store.save_snapshot(clinic, Snapshot(stream_id=stream, version=5, state={"v": 5}))
        await store.save_snapshot(clinic, Snapshot(stream_id=stream, version=10, state={"v": 10}))
        await store.save_snapshot(clinic, Snapshot(stream_id=stream, version=7, state={"v": 7}))
        loaded = await store.load_snapshot(clinic, stream)
        assert loaded is not None and (loaded.version, loaded.state) == (10, {"v": 10})

    async def test_snapshots_are_clinic_scoped(self, store: EventStore, stream: str) -> None:
        one, other = new_id("clinic"), new_id("clinic")
        await store.save_snapshot(one, Snapshot(stream_id=stream, version=1, state={}))
        assert await store.load_snapshot(other, stream) is None
