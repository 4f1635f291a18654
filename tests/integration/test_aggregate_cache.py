"""The command bus's aggregate cache on PostgreSQL: a cached aggregate is only a guess the
store confirms in the statement that acts on it, so a stale entry (another process wrote
since) costs a conflict and a reload, never a decision taken on old state.

"Another process" is a second pool with its own store, bus and cache (and, once, a real
second Python process): exactly what two API replicas or a replica and the worker are.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from adapters.cqrs import CommandBus
from adapters.crypto.keys import PostgresSubjectKeyStore, subject_id
from adapters.postgres.event_store import PostgresEventStore
from adapters.postgres.pool import create_pool
from adapters.pseudonym import HmacPseudonymizer
from adapters.shredding_store import CryptoShreddingEventStore
from domain.aggregates import Patient
from domain.commands import ErasePatient, PatientChanges, RecordConsent, RegisterPatient
from domain.commands import UpdatePatient as Update
from domain.cqrs import AggregateCache, Command, CommandContext, UnitOfWork
from domain.errors import Conflict, NotFound
from domain.handlers import COMMAND_HANDLERS

pytestmark = pytest.mark.asyncio(loop_scope="session")

SECRET = "aggregate-cache-test-secret"
PSEUDO = HmacPseudonymizer(SECRET.encode())


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def context(clinic: str) -> CommandContext:
    return CommandContext(clinic_id=clinic, actor="test")


def notes(patient: str, text: str) -> Update:
    return Update(patient_id=patient, updates=PatientChanges(notes=text))


@dataclass
class Replica:
    """One process's view: its pool, store, bus and cache."""

    pool: asyncpg.Pool
    store: PostgresEventStore
    bus: CommandBus

    @property
    def cache(self) -> AggregateCache:
        cache = self.bus.aggregate_cache
        assert cache is not None
        return cache


def replica(pool: asyncpg.Pool, **bus_options: Any) -> Replica:
    store = PostgresEventStore(pool, notify=False)
    return Replica(pool, store, CommandBus(store, pool=pool, pseudonymizer=PSEUDO, **bus_options))


@pytest_asyncio.fixture(loop_scope="session")
async def other_pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(pg_dsn, min_size=1, max_size=6)
    try:
        yield pool
    finally:
        await pool.close()


async def stream(store: PostgresEventStore, clinic: str, patient: str) -> list[Any]:
    return await store.read_stream(clinic, Patient.stream_id_for(patient))


async def reloaded(store: PostgresEventStore, clinic: str, patient: str) -> Patient:
    events = await stream(store, clinic, patient)
    return Patient.rehydrate(patient, [e.to_domain() for e in events], events[-1].version)


def cached(one: Replica, clinic: str, patient: str) -> Patient | None:
    """The cache's entry, put back (peeking must not change what the test measures)."""
    entry = one.cache.take(clinic, Patient.stream_id_for(patient), Patient)
    if entry is None:
        return None
    one.cache.put(clinic, entry)
    assert isinstance(entry.aggregate, Patient)
    return entry.aggregate


def same_state(a: Patient, b: Patient) -> bool:
    return (a.version, a.profile, a.lead_id, a.erased) == (
        b.version,
        b.profile,
        b.lead_id,
        b.erased,
    )


# --- the cache and its confirmation ----------------------------------------------------------


async def test_the_next_command_starts_from_the_cache(pg_pool: asyncpg.Pool) -> None:
    one = replica(pg_pool)
    clinic, patient = new_id("clinic"), new_id("p")
    await one.bus.execute(RegisterPatient(patient_id=patient, first_name="Ana"), context(clinic))
    hits, misses = one.cache.hits, one.cache.misses
    result = await one.bus.execute(notes(patient, "first visit"), context(clinic))
    assert (one.cache.hits, one.cache.misses) == (hits + 1, misses)
    assert result.stream_versions == {Patient.stream_id_for(patient): 2}
    # What the cache holds is what reading the stream builds, at the committed version.
    entry = cached(one, clinic, patient)
    assert entry is not None and same_state(entry, await reloaded(one.store, clinic, patient))


async def test_a_write_by_another_process_costs_a_reload_not_a_wrong_decision(
    pg_pool: asyncpg.Pool, other_pool: asyncpg.Pool
) -> None:
    one, two = replica(pg_pool), replica(other_pool)
    clinic, patient = new_id("clinic"), new_id("p")
    await one.bus.execute(RegisterPatient(patient_id=patient, first_name="Ana"), context(clinic))
    await one.bus.execute(notes(patient, "a"), context(clinic))  # cached at version 2
    await two.bus.execute(notes(patient, "b"), context(clinic))  # version 3, unseen by one

    # On its stale entry, one would record "b" as a change; the store says no, one
    # reloads and finds nothing to change.
    result = await one.bus.execute(notes(patient, "b"), context(clinic))

    assert result.result["updated"] is False
    assert [e.version for e in await stream(one.store, clinic, patient)] == [1, 2, 3]
    assert one.cache.stale == 1


async def test_a_stale_entry_never_costs_the_caller_an_attempt(
    pg_pool: asyncpg.Pool, other_pool: asyncpg.Pool
) -> None:
    one, two = replica(pg_pool, max_attempts=1), replica(other_pool)
    clinic, patient = new_id("clinic"), new_id("p")
    await one.bus.execute(RegisterPatient(patient_id=patient, first_name="Ana"), context(clinic))
    await two.bus.execute(notes(patient, "by two"), context(clinic))
    result = await one.bus.execute(notes(patient, "by one"), context(clinic))
    assert result.stream_versions == {Patient.stream_id_for(patient): 3}
    assert (await reloaded(one.store, clinic, patient)).profile["notes"] == "by one"


async def test_an_answer_without_an_append_is_confirmed_first(
    pg_pool: asyncpg.Pool, other_pool: asyncpg.Pool
) -> None:
    one, two = replica(pg_pool), replica(other_pool)
    clinic, patient = new_id("clinic"), new_id("p")
    await one.bus.execute(RegisterPatient(patient_id=patient, notes="a"), context(clinic))
    await two.bus.execute(notes(patient, "b"), context(clinic))

    # The cached patient already has notes "a": nothing to append, but that answer rests
    # on version 1 and the stream is at 2, so it is run again from the store.
    result = await one.bus.execute(notes(patient, "a"), context(clinic))

    assert result.result["updated"] is True
    assert (await reloaded(one.store, clinic, patient)).profile["notes"] == "a"
    assert one.cache.stale == 1


async def test_an_aggregate_only_read_from_the_cache_is_guarded_by_the_append(
    pg_pool: asyncpg.Pool, other_pool: asyncpg.Pool
) -> None:
    one, two = replica(pg_pool), replica(other_pool)
    clinic, patient = new_id("clinic"), new_id("p")
    await one.bus.execute(RegisterPatient(patient_id=patient, first_name="Ana"), context(clinic))
    await two.bus.execute(ErasePatient(patient_id=patient, reason="asked"), context(clinic))

    consent = RecordConsent(
        patient_id=patient,
        phone="0721234567",
        consent_type="data_processing",
        status="granted",
        source="web",
    )
    # Recording a consent only reads the patient (cached: active) and writes the consent
    # stream; the patient's version goes with the append as a guard, which fails, and the
    # fresh patient is erased.
    with pytest.raises(NotFound):
        await one.bus.execute(consent, context(clinic))

    assert await one.store.read_stream(clinic, f"consent-{patient}") == []
    assert one.cache.stale == 1


class RequireNotes(Command):
    """Test command: change the first name, but only when the notes say so."""

    patient_id: str
    expected_notes: str
    first_name: str


async def require_notes(cmd: RequireNotes, uow: UnitOfWork) -> dict[str, Any]:
    patient = await uow.get(Patient, cmd.patient_id)
    if patient.profile["notes"] != cmd.expected_notes:
        raise Conflict("the notes say otherwise", notes=patient.profile["notes"])
    patient.update({"first_name": cmd.first_name})
    return {"patientId": patient.id}


async def test_a_refusal_on_cached_state_is_confirmed_first(
    pg_pool: asyncpg.Pool, other_pool: asyncpg.Pool
) -> None:
    handlers = {**COMMAND_HANDLERS, RequireNotes: require_notes}
    one = replica(pg_pool, handlers=handlers)
    two = replica(other_pool)
    clinic, patient = new_id("clinic"), new_id("p")
    await one.bus.execute(RegisterPatient(patient_id=patient, notes="wait"), context(clinic))
    await two.bus.execute(notes(patient, "go"), context(clinic))

    command = RequireNotes(patient_id=patient, expected_notes="go", first_name="Ioana")
    await one.bus.execute(command, context(clinic))  # refused on the cache, done afresh

    assert (await reloaded(one.store, clinic, patient)).profile["first_name"] == "Ioana"
    assert one.cache.stale == 1
    with pytest.raises(Conflict):  # a refusal on current state stands
        await one.bus.execute(
            RequireNotes(patient_id=patient, expected_notes="wait", first_name="X"),
            context(clinic),
        )


async def test_concurrent_writers_in_two_processes_lose_no_version(
    pg_pool: asyncpg.Pool, other_pool: asyncpg.Pool
) -> None:
    one, two = replica(pg_pool, max_attempts=50), replica(other_pool, max_attempts=50)
    clinic, patients = new_id("clinic"), [new_id("p") for _ in range(3)]
    for patient in patients:
        await one.bus.execute(RegisterPatient(patient_id=patient), context(clinic))
    rounds = 12

    async def writer(who: Replica, name: str, worker: int) -> list[int]:
        versions = []
        for n in range(rounds):
            patient = patients[(n + worker) % len(patients)]
            result = await who.bus.execute(notes(patient, f"{name}-{worker}-{n}"), context(clinic))
            versions.append(result.stream_versions[Patient.stream_id_for(patient)])
        return versions

    await asyncio.gather(
        *(writer(one, "one", w) for w in range(4)), *(writer(two, "two", w) for w in range(4))
    )

    total = 0
    for patient in patients:
        events = await stream(one.store, clinic, patient)
        assert [e.version for e in events] == list(range(1, len(events) + 1))
        written = [e.data["changes"]["notes"] for e in events[1:]]
        assert len(written) == len(set(written))  # each command appended once
        total += len(written)
        fresh = await reloaded(one.store, clinic, patient)
        for who in (one, two):  # an entry is older than the stream or exactly it
            entry = cached(who, clinic, patient)
            assert entry is None or entry.version < fresh.version or same_state(entry, fresh)
    assert total == 2 * 4 * rounds
    assert one.cache.stale + two.cache.stale > 0, "the processes never raced"


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from adapters.cqrs import CommandBus
    from adapters.postgres.event_store import PostgresEventStore
    from adapters.postgres.pool import create_pool
    from adapters.pseudonym import HmacPseudonymizer
    from domain.commands import PatientChanges, UpdatePatient
    from domain.cqrs import CommandContext

    async def main(dsn, clinic, patient, count):
        pool = await create_pool(dsn, min_size=1, max_size=2)
        store = PostgresEventStore(pool, notify=False)
        pseudonymizer = HmacPseudonymizer(b"child-secret-0123456789")
        bus = CommandBus(store, pool=pool, pseudonymizer=pseudonymizer, max_attempts=100)
        ctx = CommandContext(clinic_id=clinic, actor="child")
        for n in range(int(count)):
            changes = PatientChanges(notes=f"child-{n}")
            await bus.execute(UpdatePatient(patient_id=patient, updates=changes), ctx)
        await store.aclose()
        await pool.close()
        print("stale", bus.aggregate_cache.stale)

    asyncio.run(main(*sys.argv[1:]))
    """
)


async def test_a_second_os_process_writing_the_same_stream(
    pg_pool: asyncpg.Pool, pg_dsn: str
) -> None:
    one = replica(pg_pool, max_attempts=100)
    clinic, patient = new_id("clinic"), new_id("p")
    await one.bus.execute(RegisterPatient(patient_id=patient), context(clinic))
    count = 25
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        pg_dsn,
        clinic,
        patient,
        str(count),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    for n in range(count):
        await one.bus.execute(notes(patient, f"parent-{n}"), context(clinic))
        await asyncio.sleep(0.002)  # leave the child room to interleave
    _, err = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == 0, err.decode()

    events = await stream(one.store, clinic, patient)
    assert [e.version for e in events] == list(range(1, 2 * count + 2))
    written = sorted(e.data["changes"]["notes"] for e in events[1:])
    assert written == sorted(
        [f"parent-{n}" for n in range(count)] + [f"child-{n}" for n in range(count)]
    )
    # The parent's last command may have been overtaken; its next one still decides right.
    await one.bus.execute(notes(patient, "last"), context(clinic))
    entry = cached(one, clinic, patient)
    assert entry is not None and same_state(entry, await reloaded(one.store, clinic, patient))


class TagPatient(Command):
    """Test command: add a tag, answer the patient's tag list itself (not a copy)."""

    patient_id: str
    tag: str


async def tag_patient(cmd: TagPatient, uow: UnitOfWork) -> dict[str, Any]:
    patient = await uow.get(Patient, cmd.patient_id)
    patient.update({"tags": [*patient.profile["tags"], cmd.tag]})
    return {"tags": patient.profile["tags"]}


async def test_a_result_never_shares_objects_with_the_cache(pg_pool: asyncpg.Pool) -> None:
    one = replica(pg_pool, handlers={**COMMAND_HANDLERS, TagPatient: tag_patient})
    clinic, patient = new_id("clinic"), new_id("p")
    await one.bus.execute(RegisterPatient(patient_id=patient, tags=["vip"]), context(clinic))
    first = await one.bus.execute(TagPatient(patient_id=patient, tag="late"), context(clinic))
    first.result["tags"].append("scribbled on by the caller")

    second = await one.bus.execute(TagPatient(patient_id=patient, tag="kind"), context(clinic))

    assert first.result["tags"] == ["vip", "late", "scribbled on by the caller"]
    assert second.result["tags"] == ["vip", "late", "kind"]
    entry = cached(one, clinic, patient)
    assert entry is not None and entry.profile["tags"] == ["vip", "late", "kind"]
    assert same_state(entry, await reloaded(one.store, clinic, patient))


# --- crypto-shredding ------------------------------------------------------------------------


async def test_a_destroyed_key_makes_cached_plaintext_unusable(
    pg_pool: asyncpg.Pool, event_store: PostgresEventStore
) -> None:
    keys = PostgresSubjectKeyStore.from_secret(pg_pool, SECRET)
    await keys.start()
    try:
        store = CryptoShreddingEventStore(event_store, keys, PSEUDO)
        bus = CommandBus(store, pool=pg_pool, pseudonymizer=PSEUDO)
        cache = bus.aggregate_cache
        assert cache is not None
        clinic, patient = new_id("clinic"), new_id("p")
        register = RegisterPatient(patient_id=patient, first_name="Ioana", phone="0721234567")
        await bus.execute(register, context(clinic))
        await bus.execute(notes(patient, "a"), context(clinic))
        entry = cache.take(clinic, Patient.stream_id_for(patient), Patient)
        assert entry is not None and entry.aggregate.profile["first_name"] == "Ioana"
        assert entry.tags  # the subject key that opened (and sealed) the profile
        assert await store.keys_live(clinic, entry.tags)
        cache.put(clinic, entry)

        # Another replica destroys the patient's keys (no event on this stream).
        other = PostgresSubjectKeyStore.from_secret(pg_pool, SECRET)
        await other.destroy(clinic, [subject_id("patient", patient)], actor="t", reason=None)
        deadline = asyncio.get_running_loop().time() + 5
        while await store.keys_live(clinic, entry.tags):  # the notification arrives
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)

        hits = cache.hits
        with pytest.raises(NotFound):  # read afresh: erased, so no new key to seal with
            await bus.execute(notes(patient, "b"), context(clinic))
        assert cache.hits == hits  # the entry was not used
        assert cache.take(clinic, Patient.stream_id_for(patient), Patient) is None
    finally:
        await keys.close()
