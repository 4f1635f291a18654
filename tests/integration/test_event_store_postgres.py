"""The PostgreSQL event store beyond the shared contract: races, the sequence-gap
barrier, idempotent replays, upcasting, immutability and migrations."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any, ClassVar

import asyncpg
import pytest

from adapters.postgres.event_store import PostgresEventStore
from adapters.postgres.migrate import apply_migrations
from adapters.projections.base import Conn
from domain.errors import ConcurrencyConflict
from domain.events import DomainEvent, EventMetadata, LeadAssigned, RecordedEvent
from domain.ports import ANY_VERSION, NO_STREAM, StreamAppend
from domain.upcasting import UpcastError, Upcasters
from tests.fixtures.postgres import with_database

pytestmark = pytest.mark.asyncio(loop_scope="session")

META = EventMetadata(actor="test", correlation_id="corr")


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def assigned(n: int) -> LeadAssigned:
    return LeadAssigned(lead_id="lead-1", assignee=f"agent-{n}")


def to(stream: str, expected: int, *events: DomainEvent) -> StreamAppend:
    return StreamAppend(
        stream_id=stream, stream_type="lead", expected_version=expected, events=events
    )


async def read_everything(store: PostgresEventStore, after: int) -> list[RecordedEvent]:
    out: list[RecordedEvent] = []
    while page := await store.read_all(after_position=after, limit=500):
        out.extend(page)
        after = page[-1].global_position
    return out


# --- concurrency -----------------------------------------------------------------------


async def test_eight_writers_on_one_stream_lose_no_version(event_store: PostgresEventStore) -> None:
    """Each writer reads, then appends at the version it saw, retrying on conflict."""
    clinic, stream = new_id("clinic"), new_id("lead")
    per_writer = 15
    conflicts = Counter[int]()

    async def writer(w: int) -> None:
        for n in range(per_writer):
            while True:
                version = len(await event_store.read_stream(clinic, stream))
                try:
                    await event_store.append(
                        clinic, [to(stream, version, assigned(w * 100 + n))], metadata=META
                    )
                    break
                except ConcurrencyConflict as exc:
                    assert exc.details["expected_version"] == version
                    assert exc.details["actual_version"] > version
                    conflicts[w] += 1

    await asyncio.gather(*(writer(w) for w in range(8)))
    events = await event_store.read_stream(clinic, stream)
    assert [e.version for e in events] == list(range(1, 8 * per_writer + 1))
    written = sorted(e.data["assignee"] for e in events)
    assert written == sorted(f"agent-{w * 100 + n}" for w in range(8) for n in range(per_writer))
    assert sum(conflicts.values()) > 0, "eight writers never collided: the test proves nothing"


async def test_any_version_writers_all_land_in_order(event_store: PostgresEventStore) -> None:
    clinic, stream = new_id("clinic"), new_id("lead")
    await asyncio.gather(
        *(
            event_store.append(clinic, [to(stream, ANY_VERSION, assigned(n))], metadata=META)
            for n in range(8)
        )
    )
    events = await event_store.read_stream(clinic, stream)
    assert [e.version for e in events] == list(range(1, 9))
    assert sorted(e.data["assignee"] for e in events) == sorted(f"agent-{n}" for n in range(8))


async def test_concurrent_replays_of_one_key_append_once(event_store: PostgresEventStore) -> None:
    clinic, stream = new_id("clinic"), new_id("lead")
    append = [to(stream, NO_STREAM, assigned(1), assigned(2))]
    results = await asyncio.gather(
        *(
            event_store.append(clinic, append, metadata=META, idempotency_key="same")
            for _ in range(8)
        )
    )
    assert sum(not r.replayed for r in results) == 1
    first = next(r for r in results if not r.replayed)
    for r in results:
        assert r.model_dump(exclude={"replayed"}) == first.model_dump(exclude={"replayed"})
    assert [e.version for e in await event_store.read_stream(clinic, stream)] == [1, 2]


async def test_streams_of_two_clinics_never_mix(event_store: PostgresEventStore) -> None:
    one, other, stream = new_id("clinic"), new_id("clinic"), new_id("lead")
    await event_store.append(one, [to(stream, NO_STREAM, assigned(1), assigned(2))], metadata=META)
    result = await event_store.append(other, [to(stream, NO_STREAM, assigned(3))], metadata=META)
    assert result.stream_versions == {stream: 1}
    with pytest.raises(ConcurrencyConflict):
        await event_store.append(other, [to(stream, 2, assigned(4))], metadata=META)
    assert [e.clinic_id for e in await event_store.read_stream(one, stream)] == [one, one]
    assert [e.data["assignee"] for e in await event_store.read_stream(other, stream)] == ["agent-3"]


# --- the sequence gap --------------------------------------------------------------------


async def test_an_open_transaction_holds_back_later_events(
    event_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    """A transaction that took its position first but commits last is still delivered.

    A naive reader (``WHERE global_position > cursor``) sees the later commit first,
    moves its cursor past the open transaction's position and skips it forever. The
    store holds the later event back until the open transaction has finished.
    """
    clinic = new_id("clinic")
    marker = await event_store.append(
        clinic, [to(new_id("lead"), NO_STREAM, assigned(0))], metadata=META
    )
    slow_stream, fast_stream = new_id("lead"), new_id("lead")
    async with pg_pool.acquire() as slow:
        tx = slow.transaction()
        await tx.start()
        try:
            slow_position = await _append_in_transaction(slow, clinic, slow_stream, assigned(1))
            fast = await event_store.append(
                clinic, [to(fast_stream, NO_STREAM, assigned(2))], metadata=META
            )
            assert slow_position < fast.first_position

            naive = await pg_pool.fetch(
                "SELECT global_position FROM events WHERE global_position > $1",
                marker.last_position,
            )
            assert [r["global_position"] for r in naive] == [fast.first_position]

            held = await read_everything(event_store, marker.last_position)
            assert fast.first_position not in [e.global_position for e in held]
        finally:
            await tx.commit()

    delivered = await read_everything(event_store, marker.last_position)
    ours = [e for e in delivered if e.clinic_id == clinic]
    assert [e.stream_id for e in ours] == [slow_stream, fast_stream]
    assert [e.global_position for e in ours] == [slow_position, fast.first_position]


async def _append_in_transaction(conn: Conn, clinic: str, stream: str, event: DomainEvent) -> int:
    batch = {
        "s": [[stream, "lead", NO_STREAM, 1]],
        "e": [[1, 1, event.event_type(), event.schema_version, event.data()]],
        "m": {"actor": "slow"},
    }
    row = await conn.fetchrow("SELECT * FROM mc_append_events($1, $2, NULL, NULL)", clinic, batch)
    assert row is not None and row["outcome"] == "appended"
    return int(row["first_position"])


async def test_a_rolled_back_append_leaves_a_gap_and_no_event(
    event_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    clinic = new_id("clinic")
    marker = await event_store.append(
        clinic, [to(new_id("lead"), NO_STREAM, assigned(0))], metadata=META
    )
    async with pg_pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await _append_in_transaction(conn, clinic, new_id("lead"), assigned(1))
        await tx.rollback()
    after = await event_store.append(
        clinic, [to(new_id("lead"), NO_STREAM, assigned(2))], metadata=META
    )
    ours = [e for e in await read_everything(event_store, marker.last_position)]
    assert [e.global_position for e in ours if e.clinic_id == clinic] == [after.first_position]


async def test_many_concurrent_multi_stream_appends_read_back_in_order(
    event_store: PostgresEventStore,
) -> None:
    clinic = new_id("clinic")
    marker = await event_store.append(
        clinic, [to(new_id("lead"), NO_STREAM, assigned(0))], metadata=META
    )
    batches = [[new_id("lead") for _ in range(3)] for _ in range(40)]
    results = await asyncio.gather(
        *(
            event_store.append(
                clinic, [to(s, NO_STREAM, assigned(1), assigned(2)) for s in streams], metadata=META
            )
            for streams in batches
        )
    )
    seen = [
        e for e in await read_everything(event_store, marker.last_position) if e.clinic_id == clinic
    ]
    positions = [e.global_position for e in seen]
    assert positions == sorted(set(positions)) and len(seen) == 40 * 6
    for result in results:  # each append's events are contiguous in the global order
        mine = [p for p in positions if result.first_position <= p <= result.last_position]
        assert len(mine) == 6


# --- upcasting -------------------------------------------------------------------------


class NoteAdded(DomainEvent):
    """A synthetic event at schema v3: ``text`` was ``note`` in v1, ``author`` came in v3."""

    stream_type = "note_test"
    schema_version: ClassVar[int] = 3
    text: str
    author: str
    pinned: bool = False


def note_upcasters() -> Upcasters:
    registry = Upcasters()

    @registry.register("NoteAdded", 1)
    def rename_note(data: dict[str, Any]) -> dict[str, Any]:
        data["text"] = data.pop("note")
        return data

    @registry.register("NoteAdded", 2)
    def add_author(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "author": "unknown"}

    return registry


async def _store_raw(
    pool: asyncpg.Pool, clinic: str, stream: str, version: int, data: dict[str, Any]
) -> None:
    """Write a row as an old release did (bypassing today's classes)."""
    batch = {
        "s": [[stream, "note_test", ANY_VERSION, 1]],
        "e": [[1, 1, "NoteAdded", version, data]],
    }
    await pool.execute("SELECT mc_append_events($1, $2, NULL, NULL)", clinic, batch)


async def test_old_event_versions_are_upcast_on_read(pg_pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pg_pool, upcasters=note_upcasters(), notify=False)
    clinic, stream = new_id("clinic"), new_id("note")
    await _store_raw(pg_pool, clinic, stream, 1, {"note": "v1 text"})
    await _store_raw(pg_pool, clinic, stream, 2, {"text": "v2 text"})
    await store.append(
        clinic,
        [
            StreamAppend(
                stream_id=stream,
                stream_type="note_test",
                expected_version=2,
                events=(NoteAdded(text="v3 text", author="ana"),),
            )
        ],
        metadata=META,
    )
    events = await store.read_stream(clinic, stream)
    assert [(e.schema_version, e.data) for e in events] == [
        (3, {"text": "v1 text", "author": "unknown"}),
        (3, {"text": "v2 text", "author": "unknown"}),
        (3, {"text": "v3 text", "author": "ana", "pinned": False}),
    ]
    assert events[0].to_domain() == NoteAdded(text="v1 text", author="unknown")
    everything = await read_everything(store, events[0].global_position - 1)
    assert [e.data["text"] for e in everything if e.clinic_id == clinic] == [
        "v1 text",
        "v2 text",
        "v3 text",
    ]
    stored = await pg_pool.fetchval(
        "SELECT data FROM events WHERE clinic_id = $1 AND version = 1", clinic
    )
    assert stored == {"note": "v1 text"}  # the stored fact is never rewritten


async def test_without_upcasters_data_comes_back_as_stored(pg_pool: asyncpg.Pool) -> None:
    """For a wrapping store that must open sealed fields before it upcasts."""
    store = PostgresEventStore(pg_pool, upcasters=None, notify=False)
    clinic, stream = new_id("clinic"), new_id("note")
    await _store_raw(pg_pool, clinic, stream, 1, {"note": "old"})
    [event] = await store.read_stream(clinic, stream)
    assert (event.schema_version, event.data) == (1, {"note": "old"})


async def test_a_missing_upcaster_is_a_loud_error(pg_pool: asyncpg.Pool) -> None:
    store = PostgresEventStore(pg_pool, upcasters=Upcasters(), notify=False)
    clinic, stream = new_id("clinic"), new_id("note")
    await _store_raw(pg_pool, clinic, stream, 1, {"note": "old"})
    with pytest.raises(UpcastError):
        await store.read_stream(clinic, stream)


# --- the table itself ------------------------------------------------------------------


async def test_events_cannot_be_updated_or_deleted(
    event_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    clinic, stream = new_id("clinic"), new_id("lead")
    await event_store.append(clinic, [to(stream, NO_STREAM, assigned(1))], metadata=META)
    for statement in (
        "UPDATE events SET data = '{}' WHERE clinic_id = $1",
        "DELETE FROM events WHERE clinic_id = $1",
    ):
        with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError):
            await pg_pool.execute(statement, clinic)
    assert len(await event_store.read_stream(clinic, stream)) == 1


async def test_read_events_equal_validated_ones(event_store: PostgresEventStore) -> None:
    """Events are rebuilt from the store without re-validation: they must still be equal."""
    clinic, stream = new_id("clinic"), new_id("lead")
    meta = EventMetadata(
        actor="a", traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    )
    await event_store.append(clinic, [to(stream, NO_STREAM, assigned(1))], metadata=meta)
    [event] = await event_store.read_stream(clinic, stream)
    assert RecordedEvent.model_validate(event.model_dump()) == event
    assert event.metadata == meta and event.metadata.model_dump() == meta.model_dump()
    assert (
        event.model_dump_json()
        == RecordedEvent.model_validate_json(event.model_dump_json()).model_dump_json()
    )


async def test_migrations_apply_once_under_concurrent_callers(pg_server_dsn: str) -> None:
    name = f"mc_migrate_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_server_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        dsn = with_database(pg_server_dsn, name)
        results = await asyncio.gather(*(apply_migrations(dsn) for _ in range(4)))
        applied = [r for r in results if r]
        assert len(applied) == 1 and applied[0][:2] == ["0001_event_store", "0002_append_function"]
        assert all(r == [] for r in results if r is not applied[0])
        assert await apply_migrations(dsn) == []
        conn = await asyncpg.connect(dsn)
        try:
            names = [
                r["name"]
                for r in await conn.fetch("SELECT name FROM schema_migrations ORDER BY name")
            ]
        finally:
            await conn.close()
        assert names == applied[0]
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
