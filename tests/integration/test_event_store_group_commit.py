"""The event store's fast paths on PostgreSQL: one-event appends as one SQL statement
(migration 0081), group commit of concurrent ones (0082), read guards (0080).

Group commit puts several appends in one statement and one transaction; each must still
be judged on its own (version, key), a bad or racing append must not sink the others,
and positions must keep the global order's guarantees.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from adapters.postgres.event_store import PostgresEventStore, guard_reads, use_connection
from domain.errors import ConcurrencyConflict, IdempotencyKeyReused
from domain.events import EventMetadata, LeadAssigned, RecordedEvent
from domain.ports import ANY_VERSION, NO_STREAM, EventStore, StreamAppend
from tests.contracts.event_store_contract import EventStoreContract

pytestmark = pytest.mark.asyncio(loop_scope="session")

META = EventMetadata(actor="test", correlation_id="corr")


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def assigned(n: int | str) -> LeadAssigned:
    return LeadAssigned(lead_id="lead-1", assignee=f"agent-{n}")


def to(stream: str, expected: int, *events: LeadAssigned) -> StreamAppend:
    return StreamAppend(
        stream_id=stream, stream_type="lead", expected_version=expected, events=events
    )


async def read_everything(store: PostgresEventStore, after: int) -> list[RecordedEvent]:
    out: list[RecordedEvent] = []
    while page := await store.read_all(after_position=after, limit=500):
        out.extend(page)
        after = page[-1].global_position
    return out


class TestWithoutGroupCommit(EventStoreContract):
    """The whole contract once more with every append in a statement of its own."""

    @pytest.fixture
    def store(self, pg_pool: asyncpg.Pool) -> EventStore:
        return PostgresEventStore(pg_pool, notify=False, group_commit=False)


async def test_concurrent_one_event_appends_share_commits(
    event_store: PostgresEventStore,
) -> None:
    clinic = new_id("clinic")
    marker = await event_store.append(
        clinic, [to(new_id("lead"), NO_STREAM, assigned(0))], metadata=META
    )
    transactions, appends = event_store.group_commit_stats
    streams = [new_id("lead") for _ in range(24)]
    results = await asyncio.gather(
        *(
            event_store.append(clinic, [to(s, NO_STREAM, assigned(n))], metadata=META)
            for n, s in enumerate(streams)
        )
    )
    more_transactions, more_appends = event_store.group_commit_stats
    assert more_appends - appends == 24
    assert more_transactions - transactions < 24  # some appends shared a commit

    seen = [
        e for e in await read_everything(event_store, marker.last_position) if e.clinic_id == clinic
    ]
    assert sorted(e.stream_id for e in seen) == sorted(streams)
    positions = [e.global_position for e in seen]
    assert positions == sorted(set(positions))
    for stream, result in zip(streams, results, strict=True):
        assert result.stream_versions == {stream: 1}
        assert result.first_position == result.last_position
        [event] = await event_store.read_stream(clinic, stream)
        assert event.global_position == result.first_position


async def test_each_append_of_a_batch_is_judged_on_its_own(
    event_store: PostgresEventStore,
) -> None:
    clinic = new_id("clinic")
    old = [new_id("lead") for _ in range(4)]
    for stream in old:
        await event_store.append(clinic, [to(stream, NO_STREAM, assigned(0))], metadata=META)
    fresh = [new_id("lead") for _ in range(4)]
    # Streams at version 1: "expected 0" is stale; new streams: "expected 0" is right.
    outcomes = await asyncio.gather(
        *(
            event_store.append(clinic, [to(s, NO_STREAM, assigned(1))], metadata=META)
            for s in old + fresh
        ),
        return_exceptions=True,
    )
    for stream, outcome in zip(old, outcomes[:4], strict=True):
        assert isinstance(outcome, ConcurrencyConflict)
        assert outcome.details["actual_version"] == 1
        assert len(await event_store.read_stream(clinic, stream)) == 1
    for stream, outcome in zip(fresh, outcomes[4:], strict=True):
        assert not isinstance(outcome, BaseException)
        assert outcome.stream_versions == {stream: 1}


async def test_a_burst_on_one_stream_wins_once(event_store: PostgresEventStore) -> None:
    clinic, stream = new_id("clinic"), new_id("lead")
    await event_store.append(clinic, [to(stream, NO_STREAM, assigned(0))], metadata=META)
    outcomes = await asyncio.gather(
        *(
            event_store.append(clinic, [to(stream, 1, assigned(n))], metadata=META)
            for n in range(8)
        ),
        return_exceptions=True,
    )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(won) == 1 and won[0].stream_versions == {stream: 2}
    assert all(isinstance(o, ConcurrencyConflict) for o in outcomes if o not in won)
    assert [e.version for e in await event_store.read_stream(clinic, stream)] == [1, 2]


async def test_any_version_appends_to_one_stream_all_land(
    event_store: PostgresEventStore,
) -> None:
    clinic, stream = new_id("clinic"), new_id("lead")
    await asyncio.gather(
        *(
            event_store.append(clinic, [to(stream, ANY_VERSION, assigned(n))], metadata=META)
            for n in range(8)
        )
    )
    events = await event_store.read_stream(clinic, stream)
    assert [e.version for e in events] == list(range(1, 9))


async def test_concurrent_replays_of_one_key_append_once(
    event_store: PostgresEventStore,
) -> None:
    clinic, stream = new_id("clinic"), new_id("lead")
    append = [to(stream, NO_STREAM, assigned(1))]
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
    with pytest.raises(IdempotencyKeyReused):
        await event_store.append(
            clinic, [to(stream, 1, assigned(2))], metadata=META, idempotency_key="same"
        )
    assert len(await event_store.read_stream(clinic, stream)) == 1


async def test_a_bad_append_does_not_sink_its_batch(event_store: PostgresEventStore) -> None:
    clinic = new_id("clinic")
    streams = [new_id("lead") for _ in range(6)]
    bad = LeadAssigned(lead_id="lead-1", assignee="nul\x00inside")  # jsonb refuses U+0000
    outcomes = await asyncio.gather(
        *(
            event_store.append(
                clinic, [to(s, NO_STREAM, bad if n == 2 else assigned(n))], metadata=META
            )
            for n, s in enumerate(streams)
        ),
        return_exceptions=True,
    )
    assert isinstance(outcomes[2], asyncpg.PostgresError)
    assert await event_store.read_stream(clinic, streams[2]) == []
    for n, stream in enumerate(streams):
        if n != 2:
            assert not isinstance(outcomes[n], BaseException)
            assert len(await event_store.read_stream(clinic, stream)) == 1


async def test_a_racing_writer_outside_the_group_fails_only_its_stream(
    event_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    clinic, raced = new_id("clinic"), new_id("lead")
    await event_store.append(clinic, [to(raced, NO_STREAM, assigned(0))], metadata=META)
    others = [new_id("lead") for _ in range(3)]
    async with pg_pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        with use_connection(conn):  # a writer in its own, still open, transaction
            await event_store.append(clinic, [to(raced, 1, assigned("first"))], metadata=META)
        group = asyncio.gather(
            *(
                event_store.append(clinic, [to(s, expected, assigned(n))], metadata=META)
                for n, (s, expected) in enumerate([(raced, 1)] + [(o, 0) for o in others])
            ),
            return_exceptions=True,
        )
        await asyncio.sleep(0.2)  # the group's statement now waits on the open writer
        await tx.commit()
        outcomes = await group
    assert isinstance(outcomes[0], ConcurrencyConflict)
    assert outcomes[0].details["actual_version"] == 2
    assert all(not isinstance(o, BaseException) for o in outcomes[1:])
    events = await event_store.read_stream(clinic, raced)
    assert [(e.version, e.data["assignee"]) for e in events] == [
        (1, "agent-0"),
        (2, "agent-first"),
    ]


async def test_appends_inside_a_transaction_continue_its_positions(
    event_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    clinic = new_id("clinic")
    a, b, c = (new_id("lead") for _ in range(3))
    transactions, _ = event_store.group_commit_stats
    async with pg_pool.acquire() as conn, conn.transaction():
        with use_connection(conn):
            first = await event_store.append(clinic, [to(a, NO_STREAM, assigned(1))], metadata=META)
            second = await event_store.append(
                clinic, [to(b, NO_STREAM, assigned(2))], metadata=META
            )
            both = await event_store.append(
                clinic, [to(c, NO_STREAM, assigned(3), assigned(4))], metadata=META
            )
            again = await event_store.append(clinic, [to(a, 1, assigned(5))], metadata=META)
    positions = [
        first.first_position,
        second.first_position,
        both.first_position,
        both.last_position,
        again.first_position,
    ]
    assert positions == list(range(positions[0], positions[0] + 5))
    assert positions[0] % 65536 == 1  # the transaction's first position
    assert event_store.group_commit_stats[0] == transactions  # none went to the group


async def test_read_guards_refuse_a_moved_stream_and_stay_out_of_the_key(
    event_store: PostgresEventStore,
) -> None:
    clinic, read, written = new_id("clinic"), new_id("lead"), new_id("lead")
    await event_store.append(clinic, [to(read, NO_STREAM, assigned(1))], metadata=META)
    await event_store.append(clinic, [to(read, 1, assigned(2))], metadata=META)

    with guard_reads({read: 1}), pytest.raises(ConcurrencyConflict) as caught:
        await event_store.append(clinic, [to(written, NO_STREAM, assigned(3))], metadata=META)
    assert caught.value.details["stream_id"] == read
    assert caught.value.details["actual_version"] == 2
    assert await event_store.read_stream(clinic, written) == []

    with guard_reads({read: 2}) as guards:
        first = await event_store.append(
            clinic, [to(written, NO_STREAM, assigned(3))], metadata=META, idempotency_key="g"
        )
    assert guards.honoured and first.stream_versions == {written: 1}
    again = await event_store.append(
        clinic, [to(written, NO_STREAM, assigned(3))], metadata=META, idempotency_key="g"
    )
    assert again.replayed and again.stream_versions == {written: 1}


async def test_the_group_survives_losing_its_connection(pg_dsn: str) -> None:
    """The group's writer keeps one pool connection over a run of batches; when the
    server drops it, the appends under way (and a batch sent on it before the client
    notices) get the error, their outcome unknown to them, and the next ones land on
    a fresh connection."""
    from adapters.postgres.pool import create_pool

    app = f"gc-{uuid.uuid4().hex[:8]}"
    pool = await create_pool(pg_dsn, min_size=1, max_size=4, application_name=app)
    store = PostgresEventStore(pool, notify=False)
    admin = await asyncpg.connect(pg_dsn)
    clinic = new_id("clinic")
    landed: list[str] = []
    failed: list[BaseException] = []
    running = True
    progress = asyncio.Event()

    async def writer(n: int) -> None:
        while running:
            stream = new_id("lead")
            try:
                await store.append(clinic, [to(stream, NO_STREAM, assigned(n))], metadata=META)
            except Exception as exc:  # the outcome of an append cut off is unknown
                failed.append(exc)
            else:
                landed.append(stream)
                progress.set()

    async def until_landed(count: int) -> None:
        while len(landed) < count:
            progress.clear()
            await progress.wait()

    writers = [asyncio.create_task(writer(n)) for n in range(6)]
    try:
        await asyncio.wait_for(until_landed(200), 30)
        batches, appends = store.group_commit_stats
        assert appends - batches > 100, "concurrent appends should share statements"
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1",
            app,
        )
        assert killed >= 1
        await asyncio.wait_for(until_landed(len(landed) + 200), 30)
    finally:
        running = False
        await asyncio.wait_for(asyncio.gather(*writers), 10)
    try:
        assert len(failed) <= 12, f"only appends under way may fail: {failed[:3]}"
        versions = await store.stream_versions(clinic, landed)
        assert versions == dict.fromkeys(landed, 1), "every accepted append is in, once"
    finally:
        await store.aclose()
        await pool.close()
        await admin.close()


@pytest.mark.parametrize(
    ("error", "lost"),
    [
        (asyncpg.UniqueViolationError("duplicate key"), False),
        (asyncpg.QueryCanceledError("canceling statement due to statement timeout"), False),
        (asyncpg.AdminShutdownError("terminating connection due to administrator command"), True),
        (asyncpg.ConnectionDoesNotExistError("connection was closed"), True),
        (asyncpg.InternalClientError("cannot switch to state 12"), True),
        (OSError("broken pipe"), True),
    ],
)
async def test_which_errors_cost_the_group_its_connection(error: BaseException, lost: bool) -> None:
    """A statement's own error (a race, a timeout) leaves the connection usable."""
    from adapters.postgres.event_store import _connection_lost

    assert _connection_lost(error) is lost
