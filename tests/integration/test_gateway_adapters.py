"""The gateway's PostgreSQL adapters on a real database: API keys, audit log, idempotency."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from adapters.api_keys import ApiKeyStore
from adapters.audit import AuditEntry, AuditLog
from adapters.http_idempotency import HttpIdempotencyStore, fingerprint

SECRET = "test-secret-for-api-keys"


# --- API keys ----------------------------------------------------------------------------


async def test_a_key_is_shown_once_and_only_its_keyed_hash_is_stored(pg_pool: asyncpg.Pool):
    keys = ApiKeyStore(pg_pool, SECRET)
    record, plaintext = await keys.create("clinic-a", {"read", "write"}, "agent")

    assert plaintext.startswith("mc_") and len(plaintext) > 40
    row = await pg_pool.fetchrow("SELECT * FROM api_keys WHERE key_id = $1", record.key_id)
    stored = {k: v for k, v in row.items() if k != "key_hash"}
    assert plaintext not in repr(stored) and plaintext.encode() not in bytes(row["key_hash"])
    assert bytes(row["key_hash"]) == keys.digest(plaintext)
    assert record.clinic_id == "clinic-a" and record.scopes == frozenset({"read", "write"})


async def test_verify_knows_the_key_and_nothing_else(pg_pool: asyncpg.Pool):
    keys = ApiKeyStore(pg_pool, SECRET)
    record, plaintext = await keys.create("clinic-a", {"read"})

    assert (await keys.verify(plaintext)) == record
    assert await keys.verify(plaintext + "x") is None
    assert await keys.verify("not-a-key") is None
    other_secret = ApiKeyStore(pg_pool, "another-secret")
    assert await other_secret.verify(plaintext) is None  # the hash is keyed


async def test_scopes_are_checked_when_creating(pg_pool: asyncpg.Pool):
    keys = ApiKeyStore(pg_pool, SECRET)
    with pytest.raises(ValueError):
        await keys.create("clinic-a", {"read", "superuser"})
    with pytest.raises(ValueError):
        await keys.create("clinic-a", set())


async def test_list_shows_a_clinics_active_keys(pg_pool: asyncpg.Pool):
    keys = ApiKeyStore(pg_pool, SECRET)
    first, _ = await keys.create("clinic-list", {"read"}, "one")
    second, _ = await keys.create("clinic-list", {"write"}, "two")
    await keys.create("clinic-other", {"read"})
    assert [k.key_id for k in await keys.list("clinic-list")] == [first.key_id, second.key_id]

    await keys.revoke(first.key_id)
    assert [k.key_id for k in await keys.list("clinic-list")] == [second.key_id]
    listed = await keys.list("clinic-list", include_revoked=True)
    assert {k.key_id: k.active for k in listed} == {first.key_id: False, second.key_id: True}


async def test_revoke_only_touches_the_named_clinics_key(pg_pool: asyncpg.Pool):
    keys = ApiKeyStore(pg_pool, SECRET)
    record, plaintext = await keys.create("clinic-a", {"read"})
    assert await keys.revoke(record.key_id, clinic_id="clinic-b") is False
    assert await keys.verify(plaintext) is not None
    assert await keys.revoke(record.key_id, clinic_id="clinic-a") is True
    assert await keys.revoke(record.key_id) is False  # already revoked


async def test_revocation_reaches_another_replicas_cache_within_a_second(pg_pool: asyncpg.Pool):
    admin = ApiKeyStore(pg_pool, SECRET)
    replica = ApiKeyStore(pg_pool, SECRET)
    await replica.start()
    try:
        record, plaintext = await admin.create("clinic-a", {"read"})
        assert await replica.verify(plaintext) is not None
        assert replica.caching
        await pg_pool.execute("UPDATE api_keys SET name = 'x' WHERE key_id = $1", record.key_id)
        assert await replica.verify(plaintext) is not None  # served from its cache

        await admin.revoke(record.key_id)
        revoked_at = time.monotonic()
        while await replica.verify(plaintext) is not None:
            assert time.monotonic() - revoked_at < 1.0, "revocation not seen within 1 s"
            await asyncio.sleep(0.01)
    finally:
        await replica.close()


async def test_without_a_listener_every_verify_reads_the_table(pg_pool: asyncpg.Pool):
    keys = ApiKeyStore(pg_pool, SECRET)
    record, plaintext = await keys.create("clinic-a", {"read"})
    assert await keys.verify(plaintext) is not None
    await pg_pool.execute("UPDATE api_keys SET revoked_at = now() WHERE key_id = $1", record.key_id)
    assert await keys.verify(plaintext) is None  # no cache to be stale


# --- audit log ---------------------------------------------------------------------------


def _entry(n: int, decision: str = "allowed") -> AuditEntry:
    return AuditEntry(
        clinic_id="clinic-audit",
        actor="api_key:key_1",
        key_id="key_1",
        function=f"fn_{n}",
        decision=decision,  # type: ignore[arg-type]
        reason=None if decision == "allowed" else "missing scope(s): write",
        surface="http",
        request_id=f"req-{n}",
        trace_id=f"trace-{n}",
        idempotency_key=None,
    )


async def test_concurrent_entries_are_all_committed_when_record_returns(pg_pool: asyncpg.Pool):
    audit = AuditLog(pg_pool)
    await asyncio.gather(*(audit.record(_entry(n)) for n in range(50)))
    await audit.record(_entry(99, "denied"))

    recent = await audit.recent("clinic-audit", limit=200)
    assert {r.entry.function for r in recent} == {f"fn_{n}" for n in [*range(50), 99]}
    newest = recent[0].entry
    assert newest.decision == "denied" and newest.reason == "missing scope(s): write"
    assert newest.trace_id == "trace-99" and newest.request_id == "req-99"


async def test_a_failed_write_fails_its_recorders_is_logged_and_marks_the_log_unhealthy(
    pg_pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
):
    audit = AuditLog(pg_pool)
    bad = AuditEntry(
        clinic_id="clinic-audit",
        actor="a",
        key_id=None,
        function="f",
        decision="maybe",  # type: ignore[arg-type]
    )
    assert audit.healthy
    with pytest.raises(asyncpg.CheckViolationError):
        await audit.record(bad)
    assert not audit.healthy
    assert any(
        "audit entry not stored" in r.message and "'maybe'" in r.message for r in caplog.records
    )
    await audit.record(_entry(1))  # the writer recovers with the next batch
    assert audit.healthy


async def test_a_bounded_backlog_makes_the_log_unhealthy(pg_pool: asyncpg.Pool):
    audit = AuditLog(pg_pool, max_backlog=3)
    pending = [audit.submit(_entry(n)) for n in range(4)]
    assert not audit.healthy  # more queued than the bound: readers must wait for their rows
    await asyncio.gather(*pending)
    assert audit.healthy


async def test_function_names_are_bounded(pg_pool: asyncpg.Pool):
    audit = AuditLog(pg_pool)
    long = AuditEntry(
        clinic_id="clinic-long", actor="a", key_id=None, function="x" * 5000, decision="denied"
    )
    await audit.record(long)
    (stored,) = await audit.recent("clinic-long")
    assert len(stored.entry.function) == 100


# --- HTTP idempotency --------------------------------------------------------------------


async def test_first_claim_runs_a_retry_replays_another_body_conflicts(pg_pool: asyncpg.Pool):
    store = HttpIdempotencyStore(pg_pool)
    body = fingerprint(b'{"type":"function_call"}')

    assert (await store.begin("clinic-i", "key-1", body)).outcome == "new"
    assert (await store.begin("clinic-i", "key-1", body)).outcome == "running"
    await store.finish("clinic-i", "key-1", 200, b'{"ok":true}')

    replay = await store.begin("clinic-i", "key-1", body)
    assert (replay.outcome, replay.status_code, replay.response) == ("replay", 200, b'{"ok":true}')
    assert (await store.begin("clinic-i", "key-1", fingerprint(b"other"))).outcome == "mismatch"
    assert (await store.begin("clinic-other", "key-1", body)).outcome == "new"  # per clinic


async def test_an_abandoned_claim_can_run_again(pg_pool: asyncpg.Pool):
    store = HttpIdempotencyStore(pg_pool)
    body = fingerprint(b"body")
    assert (await store.begin("clinic-i", "key-2", body)).outcome == "new"
    await store.abandon("clinic-i", "key-2")
    assert (await store.begin("clinic-i", "key-2", body)).outcome == "new"


async def test_expired_keys_and_stale_claims_are_taken_over(pg_pool: asyncpg.Pool):
    store = HttpIdempotencyStore(pg_pool)
    body = fingerprint(b"body")
    await store.begin("clinic-i", "key-3", body)
    await store.finish("clinic-i", "key-3", 200, b"{}")
    await store.begin("clinic-i", "key-4", body)  # left running by a "crashed" process
    await pg_pool.execute(
        "UPDATE http_idempotency SET created_at = now() - interval '2 days' "
        "WHERE idempotency_key IN ('key-3', 'key-4')"
    )
    assert (await store.begin("clinic-i", "key-3", fingerprint(b"new body"))).outcome == "new"
    assert (await store.begin("clinic-i", "key-4", body)).outcome == "new"
    assert await store.purge_expired() == 0
