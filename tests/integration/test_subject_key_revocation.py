"""The subject-key cache on PostgreSQL: bounded, expiring, and dropped everywhere on erasure.

Two key stores on one database stand for two processes (API replicas, the worker):
``erase_patient`` run by one reaches the other's cache through the LISTEN channel.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest_asyncio

from adapters.cqrs import CommandBus
from adapters.crypto.fields import ERASED, erased_value
from adapters.crypto.keys import PostgresSubjectKeyStore, master_key_from_secret, subject_id
from adapters.gdpr import GdprServices, erase_patient
from adapters.postgres.event_store import PostgresEventStore
from adapters.pseudonym import HmacPseudonymizer
from adapters.shredding_store import CryptoShreddingEventStore
from domain import commands as c
from domain.aggregates import Patient
from domain.cqrs import CommandContext
from domain.events import PatientRegistered

SECRET = "subject-key-cache-test-secret"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture
async def stores() -> AsyncIterator[list[PostgresSubjectKeyStore]]:
    made: list[PostgresSubjectKeyStore] = []
    yield made
    for store in made:
        await store.close()


async def listening(
    pool: asyncpg.Pool,
    made: list[PostgresSubjectKeyStore],
    *,
    cache_ttl_s: float = 30.0,
    cache_max_entries: int = 10_000,
    clock: Callable[[], float] = time.monotonic,
) -> PostgresSubjectKeyStore:
    """A key store that LISTENs (so it caches), closed at the end of the test."""
    store = PostgresSubjectKeyStore(
        pool,
        [master_key_from_secret(SECRET)],
        cache_ttl_s=cache_ttl_s,
        cache_max_entries=cache_max_entries,
        clock=clock,
    )
    await store.start()
    made.append(store)
    return store


def new_clinic() -> str:
    return f"clinic-{uuid.uuid4().hex[:10]}"


async def test_live_keys_are_bounded_and_expired_ones_evicted(
    pg_pool: asyncpg.Pool, stores: list[PostgresSubjectKeyStore]
) -> None:
    clock = Clock()
    keys = await listening(pg_pool, stores, cache_ttl_s=30.0, cache_max_entries=8, clock=clock)
    clinic_id = new_clinic()
    made = [await keys.encryption_key(clinic_id, f"lead:l{i}") for i in range(20)]
    assert keys.cache_sizes() == {"live": 8, "by_id": 8, "destroyed": 0}
    # The newest are served from memory: same key, even though the table is not asked.
    assert await keys.encryption_key(clinic_id, "lead:l19") == made[19]

    clock.now += 30.0  # everything cached so far has expired
    await keys.encryption_key(clinic_id, "lead:new")
    assert keys.cache_sizes() == {"live": 1, "by_id": 1, "destroyed": 0}
    # Expired entries are fetched again, and are the same keys.
    again = await keys.get_keys([k.key_id for k in made])
    assert {k: v.material for k, v in again.items()} == {k.key_id: k.material for k in made}
    assert keys.cache_sizes()["by_id"] == 8


async def test_destroyed_keys_are_kept_under_the_same_bound(
    pg_pool: asyncpg.Pool, stores: list[PostgresSubjectKeyStore]
) -> None:
    keys = await listening(pg_pool, stores, cache_max_entries=5)
    clinic_id = new_clinic()
    subjects = [f"lead:d{i}" for i in range(12)]
    made = [await keys.encryption_key(clinic_id, s) for s in subjects]
    await keys.destroy(clinic_id, subjects, actor="test", reason=None)
    assert keys.cache_sizes()["live"] == 0  # destruction dropped every live entry

    found = await keys.get_keys([k.key_id for k in made])

    assert all(k.destroyed for k in found.values()) and len(found) == 12
    assert keys.cache_sizes() == {"live": 0, "by_id": 0, "destroyed": 5}


async def test_erase_patient_reaches_another_processes_cache(
    pg_pool: asyncpg.Pool, event_store: PostgresEventStore, stores: list[PostgresSubjectKeyStore]
) -> None:
    pseudonymizer = HmacPseudonymizer(SECRET.encode())
    # The replica caches for an hour: only the notification can make it forget in time.
    replica_keys = await listening(pg_pool, stores, cache_ttl_s=3600.0)
    admin_keys = await listening(pg_pool, stores)
    replica = CryptoShreddingEventStore(event_store, replica_keys, pseudonymizer)
    admin = CryptoShreddingEventStore(event_store, admin_keys, pseudonymizer)
    bus = CommandBus(admin, pool=pg_pool, pseudonymizer=pseudonymizer)
    clinic_id = new_clinic()
    context = CommandContext(clinic_id=clinic_id, actor="test")
    await bus.execute(
        c.RegisterPatient(patient_id="p1", first_name="Ioana", last_name="M", phone="0721234567"),
        context,
    )
    stream = Patient.stream_id_for("p1")

    (registered,) = await replica.read_stream(clinic_id, stream)
    assert registered.data["first_name"] == "Ioana"
    assert replica_keys.cache_sizes()["by_id"] == 1  # the patient's key, cached

    services = GdprServices(store=admin, keys=admin_keys, commands=bus)
    report = await erase_patient(services, clinic_id, "p1", actor="api_key:admin")
    assert subject_id("patient", "p1") in report["subjects"]

    deadline = asyncio.get_running_loop().time() + 5
    while replica_keys.cache_sizes()["by_id"]:
        assert asyncio.get_running_loop().time() < deadline, "the erasure never arrived"
        await asyncio.sleep(0.01)
    events = await replica.read_stream(clinic_id, stream)
    assert events[0].event_type == "PatientRegistered"
    first = events[0]
    assert first.data["first_name"] == erased_value(PatientRegistered, "first_name")
    assert first.data["phone"] in (None, ERASED) and "Ioana" not in str(first.data)
    assert events[-1].event_type == "PatientErased"
    assert replica_keys.cache_sizes() == {"live": 0, "by_id": 0, "destroyed": 1}


async def test_a_replicas_cached_answers_are_dropped_when_keys_are_destroyed(
    pg_pool: asyncpg.Pool, stores: list[PostgresSubjectKeyStore]
) -> None:
    """The query bus caches opened answers; another process's erasure must clear them."""
    from adapters.cqrs import QueryCache

    replica_keys = await listening(pg_pool, stores)
    admin_keys = await listening(pg_pool, stores)
    answers = QueryCache(size=16, ttl=3600.0)
    replica_keys.on_invalidate(answers.clear)
    answers.put(("clinic", "GetPatient", "{}"), {"firstName": "Ioana"}, 1, time.monotonic())
    clinic_id = new_clinic()
    await admin_keys.encryption_key(clinic_id, "patient:p1")

    await admin_keys.destroy(clinic_id, ["patient:p1"], actor="test", reason=None)

    deadline = asyncio.get_running_loop().time() + 5
    while len(answers):
        assert asyncio.get_running_loop().time() < deadline, "the erasure never arrived"
        await asyncio.sleep(0.01)
