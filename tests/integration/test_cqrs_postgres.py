"""The command bus and the query bus on PostgreSQL: validation, idempotency that
survives a new bus, retries under contention, authorisation, snapshots, and reads
that never go back in time."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest
import pytest_asyncio

from adapters.cqrs import CommandBus, ProjectionsBehind, QueryBus
from adapters.crypto.keys import PostgresSubjectKeyStore
from adapters.postgres.event_store import PostgresEventStore
from adapters.postgres.pool import create_pool
from adapters.projections import PersonalData, run_projector
from adapters.pseudonym import HmacPseudonymizer
from adapters.telemetry.metrics import get_metrics
from domain.aggregates import Lead
from domain.commands import (
    AssignLead,
    PatientChanges,
    RegisterPatient,
    ScoreLead,
    UpdatePatient,
)
from domain.cqrs import CommandContext
from domain.errors import (
    ConcurrencyConflict,
    Conflict,
    ExecutionError,
    Forbidden,
    IdempotencyKeyReused,
    InvalidArguments,
)
from domain.events import EventMetadata, RecordedEvent
from domain.memory import InMemoryEventStore
from domain.ports import AppendResult, EventStore, Snapshot, StreamAppend
from domain.queries import GetPatient, PatientView

pytestmark = pytest.mark.asyncio(loop_scope="session")

SECRET = "cqrs-test-secret-0123456789"
PSEUDO = HmacPseudonymizer(SECRET.encode())


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def context(clinic: str | None = None, **extra: object) -> CommandContext:
    return CommandContext(clinic_id=clinic or new_id("clinic"), actor="test", **extra)


@pytest.fixture
def bus(event_store: PostgresEventStore, pg_pool: asyncpg.Pool) -> CommandBus:
    return CommandBus(event_store, pool=pg_pool, pseudonymizer=PSEUDO)


def keys_for(pool: asyncpg.Pool) -> PostgresSubjectKeyStore:
    """The subject keys the read models seal personal values with (and queries open)."""
    return PostgresSubjectKeyStore.from_secret(pool, SECRET)


@pytest.fixture
def queries(pg_pool: asyncpg.Pool) -> QueryBus:
    return QueryBus(pg_pool, pseudonymizer=PSEUDO, keys=keys_for(pg_pool), wait_timeout=5.0)


@pytest_asyncio.fixture(loop_scope="session")
async def projector(pg_pool: asyncpg.Pool) -> AsyncIterator[asyncio.Task[None]]:
    """A projector that only wakes on NOTIFY (its polling fallback is 30 s away)."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_projector(
            pg_pool,
            stop,
            personal=PersonalData(PSEUDO, keys_for(pg_pool)),
            poll_interval=30.0,
            leader_interval=0.1,
            lag_interval=5.0,
        )
    )
    yield task
    stop.set()
    await asyncio.wait_for(task, 10)


async def count_events(pool: asyncpg.Pool, clinic: str) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM events WHERE clinic_id = $1", clinic))


async def register(bus: CommandBus, ctx: CommandContext, patient: str = "p-1") -> int:
    result = await bus.execute(
        RegisterPatient(patient_id=patient, first_name="Ana", phone="0721 234 567"), ctx
    )
    return result.position


# --- commands --------------------------------------------------------------------------


async def test_a_command_reports_its_versions_and_position(
    bus: CommandBus, event_store: PostgresEventStore
) -> None:
    ctx = context()
    result = await bus.execute(RegisterPatient(patient_id="p-1", first_name="Ana"), ctx)
    assert result.result == {"patientId": "p-1", "registered": True}
    assert result.stream_versions == {"patient-p-1": 1} and result.replayed is False
    [event] = await event_store.read_stream(ctx.clinic_id, "patient-p-1")
    assert result.position == event.global_position
    assert event.metadata.actor == "test"


async def test_invalid_arguments_say_where_and_change_nothing(
    bus: CommandBus, pg_pool: asyncpg.Pool
) -> None:
    ctx = context()
    await register(bus, ctx)
    before = await count_events(pg_pool, ctx.clinic_id)
    with pytest.raises(InvalidArguments) as caught:
        await bus.dispatch(
            "UpdatePatient",
            {"patient_id": "p-1", "updates": {"phone": "12", "date_of_birth": "yesterday"}},
            ctx,
        )
    paths = {e["path"] for e in caught.value.details["errors"]}
    assert paths == {"updates.phone", "updates.date_of_birth"}
    assert all(e["message"] and e["expected"] for e in caught.value.details["errors"])
    with pytest.raises(InvalidArguments) as caught:
        await bus.dispatch(
            ScoreLead,
            {
                "phone": "0721234567",
                "channel": "fax",
                "messages": [{"role": "bot", "content": "x"}],
            },
            ctx,
        )
    paths = {e["path"] for e in caught.value.details["errors"]}
    assert paths == {"channel", "messages[0].role"}
    assert caught.value.code == "INVALID_ARGUMENTS"
    assert await count_events(pg_pool, ctx.clinic_id) == before


async def test_a_keyed_command_replays_through_a_new_bus(
    event_store: PostgresEventStore, pg_dsn: str, pg_pool: asyncpg.Pool
) -> None:
    """The key and the result live in PostgreSQL: a restarted replica answers the same."""
    ctx = context(idempotency_key="req-1")
    command = RegisterPatient(patient_id="p-1", first_name="Ana")
    first = await CommandBus(event_store, pool=pg_pool, pseudonymizer=PSEUDO).execute(command, ctx)

    other_pool = await create_pool(pg_dsn, min_size=1, max_size=2)
    try:
        restarted = CommandBus(
            PostgresEventStore(other_pool), pool=other_pool, pseudonymizer=PSEUDO
        )
        again = await restarted.execute(command, ctx)  # the handler itself would now refuse
    finally:
        await other_pool.close()
    assert again.replayed is True and first.replayed is False
    assert (again.result, again.stream_versions, again.position) == (
        first.result,
        first.stream_versions,
        first.position,
    )
    assert await count_events(pg_pool, ctx.clinic_id) == 1
    with pytest.raises(Conflict):  # without the key it is a new request, and refused
        await CommandBus(event_store, pool=pg_pool, pseudonymizer=PSEUDO).execute(
            command, ctx.model_copy(update={"idempotency_key": None})
        )


class Wrapping:
    """A store that delegates to the PostgreSQL one, as the crypto-shredding layer does."""

    def __init__(self, inner: EventStore) -> None:
        self.inner = inner

    async def append(
        self,
        clinic_id: str,
        appends: Sequence[StreamAppend],
        *,
        metadata: EventMetadata,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        return await self.inner.append(
            clinic_id, appends, metadata=metadata, idempotency_key=idempotency_key
        )

    async def read_stream(
        self, clinic_id: str, stream_id: str, *, after_version: int = 0
    ) -> list[RecordedEvent]:
        return await self.inner.read_stream(clinic_id, stream_id, after_version=after_version)

    async def read_all(self, *, after_position: int, limit: int) -> list[RecordedEvent]:
        return await self.inner.read_all(after_position=after_position, limit=limit)

    async def load_snapshot(self, clinic_id: str, stream_id: str) -> Snapshot | None:
        return await self.inner.load_snapshot(clinic_id, stream_id)

    async def save_snapshot(self, clinic_id: str, snapshot: Snapshot) -> None:
        await self.inner.save_snapshot(clinic_id, snapshot)


async def test_idempotency_works_through_a_wrapping_store(
    event_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    bus = CommandBus(Wrapping(event_store), pool=pg_pool, pseudonymizer=PSEUDO)
    ctx = context(idempotency_key="wrapped")
    command = RegisterPatient(patient_id="p-1", first_name="Ana")
    first = await bus.execute(command, ctx)
    again = await bus.execute(command, ctx)
    assert again.replayed and again.result == first.result and again.position == first.position
    assert await count_events(pg_pool, ctx.clinic_id) == 1


async def test_a_store_that_cannot_keep_results_is_refused_under_a_key(
    pg_pool: asyncpg.Pool,
) -> None:
    memory = InMemoryEventStore()
    bus = CommandBus(memory, pool=pg_pool, pseudonymizer=PSEUDO)
    ctx = context()
    await bus.execute(RegisterPatient(patient_id="p-1", first_name="Ana"), ctx)
    with pytest.raises(ExecutionError, match="cannot keep command results"):
        await bus.execute(
            RegisterPatient(patient_id="p-2", first_name="Ion"),
            ctx.model_copy(update={"idempotency_key": "k"}),
        )
    assert await memory.read_stream(ctx.clinic_id, "patient-p-2") == []  # refused up front


async def test_a_key_reused_for_another_command_is_refused(
    bus: CommandBus, pg_pool: asyncpg.Pool
) -> None:
    ctx = context(idempotency_key="req-2")
    await bus.execute(RegisterPatient(patient_id="p-1", first_name="Ana"), ctx)
    with pytest.raises(IdempotencyKeyReused):
        await bus.execute(RegisterPatient(patient_id="p-2", first_name="Ion"), ctx)
    with pytest.raises(IdempotencyKeyReused):
        await bus.execute(
            UpdatePatient(patient_id="p-1", updates=PatientChanges(first_name="Ioana")), ctx
        )
    assert await count_events(pg_pool, ctx.clinic_id) == 1


async def test_a_keyed_command_that_changed_nothing_replays_its_result(
    bus: CommandBus, pg_pool: asyncpg.Pool
) -> None:
    ctx = context()
    await register(bus, ctx)
    keyed = ctx.model_copy(update={"idempotency_key": "noop"})
    noop = UpdatePatient(patient_id="p-1", updates=PatientChanges(first_name="Ana"))
    first = await bus.execute(noop, keyed)
    assert first.result["updated"] is False and first.position == 0
    await bus.execute(
        UpdatePatient(patient_id="p-1", updates=PatientChanges(first_name="Ioana")), ctx
    )
    again = await bus.execute(noop, keyed)  # now it would change the name back
    assert again.replayed is True and again.result == first.result
    assert await count_events(pg_pool, ctx.clinic_id) == 2


async def test_eight_concurrent_commands_on_one_stream(
    event_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    """Every command wins exactly one version (after retries) or reports a conflict."""
    bus = CommandBus(event_store, pool=pg_pool, pseudonymizer=PSEUDO, max_attempts=12)
    ctx = context()
    scored = await bus.execute(ScoreLead(phone="0721234567", channel="web"), ctx)
    lead_id = scored.result["leadId"]
    outcomes = await asyncio.gather(
        *(bus.execute(AssignLead(lead_id=lead_id, assignee=f"agent-{n}"), ctx) for n in range(8)),
        return_exceptions=True,
    )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert all(isinstance(o, ConcurrencyConflict) for o in lost)
    events = await event_store.read_stream(ctx.clinic_id, Lead.stream_id_for(lead_id))
    assert [e.version for e in events] == list(range(1, len(events) + 1))
    assigned = [e for e in events if e.event_type == "LeadAssigned"]
    assert len(assigned) == len(won) >= 7
    versions = sorted(r.stream_versions[Lead.stream_id_for(lead_id)] for r in won)
    assert versions == sorted({e.version for e in assigned})


async def test_scopes_are_checked_when_the_caller_states_them(
    bus: CommandBus, pg_pool: asyncpg.Pool
) -> None:
    ctx = context()
    await register(bus, ctx)
    update = UpdatePatient(patient_id="p-1", updates=PatientChanges(notes="x"))
    with pytest.raises(Forbidden) as caught:
        await bus.execute(update, ctx.model_copy(update={"scopes": frozenset({"read"})}))
    assert caught.value.details["required"] == "write"
    assert await count_events(pg_pool, ctx.clinic_id) == 1
    for scopes in ({"write"}, {"admin"}, set()):
        changes = PatientChanges(notes=f"by {sorted(scopes)}")
        await bus.execute(
            UpdatePatient(patient_id="p-1", updates=changes),
            ctx.model_copy(update={"scopes": frozenset(scopes)}),
        )
    assert await count_events(pg_pool, ctx.clinic_id) == 4


async def test_snapshots_are_saved_at_the_boundary_and_used(
    bus: CommandBus, event_store: PostgresEventStore
) -> None:
    ctx = context()
    lead_id = (await bus.execute(ScoreLead(phone="0722000000", channel="web"), ctx)).result[
        "leadId"
    ]
    stream = Lead.stream_id_for(lead_id)
    for n in range(Lead.snapshot_every - 2):
        await bus.execute(AssignLead(lead_id=lead_id, assignee=f"a{n}"), ctx)
    snapshot = await event_store.load_snapshot(ctx.clinic_id, stream)
    assert snapshot is not None and snapshot.version == Lead.snapshot_every
    assert snapshot.state["assignee"] == f"a{Lead.snapshot_every - 3}"
    result = await bus.execute(AssignLead(lead_id=lead_id, assignee="last"), ctx)
    assert result.stream_versions == {stream: Lead.snapshot_every + 1}


async def test_events_carry_the_callers_trace_and_correlation(
    bus: CommandBus, event_store: PostgresEventStore
) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    ctx = context(
        correlation_id="corr-9", causation_id="cause-9", traceparent=traceparent, tracestate="v=1"
    )
    await register(bus, ctx)
    [event] = await event_store.read_stream(ctx.clinic_id, "patient-p-1")
    meta = event.metadata
    assert (meta.correlation_id, meta.causation_id, meta.actor, meta.tracestate) == (
        "corr-9",
        "cause-9",
        "test",
        "v=1",
    )
    # Same trace; the span id is the caller's, or the command span's child of it when a
    # real tracer provider is installed (the API installs one for the whole process).
    assert meta.traceparent is not None
    assert meta.traceparent.split("-")[1] == traceparent.split("-")[1]


def _commands_counted(command: str, status: str) -> float:
    value = get_metrics().commands.labels(command, status)._value.get()
    return float(value)


async def test_commands_are_counted_by_outcome(bus: CommandBus) -> None:
    ctx = context()
    ok_before = _commands_counted("RegisterPatient", "success")
    refused_before = _commands_counted("RegisterPatient", "CONFLICT")
    await register(bus, ctx)
    with pytest.raises(Conflict):
        await register(bus, ctx)
    assert _commands_counted("RegisterPatient", "success") == ok_before + 1
    assert _commands_counted("RegisterPatient", "CONFLICT") == refused_before + 1


# --- queries ---------------------------------------------------------------------------


async def test_a_read_after_a_write_waits_for_the_projection(
    bus: CommandBus, queries: QueryBus, projector: asyncio.Task[None]
) -> None:
    ctx = context()
    for n in range(3):  # the projector has only NOTIFY to wake it up in time
        patient = f"p-{n}"
        position = await register(bus, ctx, patient)
        started = time.monotonic()
        found = await queries.ask(GetPatient(patient_id=patient), ctx, min_position=position)
        assert isinstance(found, PatientView) and found.phone == "+40721234567"
        assert time.monotonic() - started < 5.0


async def test_the_cache_never_answers_older_than_the_callers_position(
    bus: CommandBus, queries: QueryBus, projector: asyncio.Task[None]
) -> None:
    ctx = context()
    position = await register(bus, ctx)
    first = await queries.ask(GetPatient(patient_id="p-1"), ctx, min_position=position)
    assert first is not None and first.first_name == "Ana"
    update = UpdatePatient(patient_id="p-1", updates=PatientChanges(first_name="Ioana"))
    changed = await bus.execute(update, ctx)
    cached = await queries.ask(GetPatient(patient_id="p-1"), ctx)
    assert cached is first  # no position asked for: the cached answer is fine
    fresh = await queries.ask(GetPatient(patient_id="p-1"), ctx, min_position=changed.position)
    assert fresh is not None and fresh.first_name == "Ioana"
    again = await queries.ask(GetPatient(patient_id="p-1"), ctx, min_position=changed.position)
    assert again is fresh  # the new entry remembers the position it was computed at


async def test_a_projection_that_lags_too_long_is_reported(
    bus: CommandBus, pg_pool: asyncpg.Pool
) -> None:
    ctx = context()
    position = await register(bus, ctx)  # no projector runs in this test
    impatient = QueryBus(pg_pool, wait_timeout=0.2)
    started = time.monotonic()
    with pytest.raises(ProjectionsBehind) as caught:
        await impatient.ask(GetPatient(patient_id="p-1"), ctx, min_position=position)
    assert 0.2 <= time.monotonic() - started < 2.0
    assert caught.value.details["minPosition"] == position
    assert "patients" in caught.value.details["projections"]


async def test_authorisation_comes_before_the_cache(
    bus: CommandBus, queries: QueryBus, projector: asyncio.Task[None]
) -> None:
    ctx = context()
    position = await register(bus, ctx)
    reader = ctx.model_copy(update={"scopes": frozenset({"read"})})
    assert await queries.ask(GetPatient(patient_id="p-1"), reader, min_position=position)
    writer_only = ctx.model_copy(update={"scopes": frozenset({"write"})})
    with pytest.raises(Forbidden):
        await queries.ask(GetPatient(patient_id="p-1"), writer_only)


async def test_the_cache_is_per_clinic_and_bounded(
    bus: CommandBus, pg_pool: asyncpg.Pool, projector: asyncio.Task[None]
) -> None:
    small = QueryBus(
        pg_pool, pseudonymizer=PSEUDO, keys=keys_for(pg_pool), cache_size=2, wait_timeout=5.0
    )
    one, other = context(), context()
    p1 = await bus.execute(RegisterPatient(patient_id="p-1", first_name="Ana"), one)
    p2 = await bus.execute(RegisterPatient(patient_id="p-1", first_name="Ion"), other)
    a = await small.ask(GetPatient(patient_id="p-1"), one, min_position=p1.position)
    b = await small.ask(GetPatient(patient_id="p-1"), other, min_position=p2.position)
    assert (a.first_name, b.first_name) == ("Ana", "Ion")
    await small.ask(GetPatient(email="nobody@example.ro"), one)
    assert len(small.cache) == 2
