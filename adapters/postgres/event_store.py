"""The event store on PostgreSQL (asyncpg): one ``events`` table for every clinic.

Appends are one round trip: ``mc_append_events`` (migration 0002) checks the
idempotency key and the expected versions, derives positions from the transaction
id (``xid8 * 65536 + n``) and inserts, all in one statement. One event on one stream,
the common case, goes through ``mc_append_one(_keyed)`` (0081), a single SQL statement
with plain parameters; and when several such appends are under way at once outside any
transaction, they are group-committed: ``mc_append_batch`` (0082) judges each one on
its own (key, expected version) and inserts the accepted ones in one statement and one
transaction, one round trip and one WAL flush for all (:class:`_GroupCommit`).

Readers of the global order only take positions below the oldest transaction still in
flight (``pg_snapshot_xmin * 65536``); since positions grow with transaction ids, an
event that commits late with a lower position is delivered before anything after it:
nobody skips it.

Projectors are woken by ``NOTIFY`` on :data:`WAKE_CHANNEL`, sent after the append
has committed, at most one in flight and at most one per ``WAKE_INTERVAL`` per store.
A NOTIFY inside the append transaction would serialise every commit behind
PostgreSQL's global notify lock; projectors also poll, so a lost wake-up only
delays them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from opentelemetry import context as otel_context
from pydantic_core import to_json

from adapters.telemetry.metrics import record_event_appended, record_event_store_latency
from domain.errors import ConcurrencyConflict, IdempotencyKeyReused
from domain.events import EventMetadata, RecordedEvent
from domain.ports import (
    ANY_VERSION,
    AppendResult,
    Snapshot,
    StreamAppend,
    append_fingerprint,
    check_appends,
)
from domain.upcasting import UPCASTERS, Upcasters

log = logging.getLogger(__name__)


class LazyConnection:
    """A pool connection taken on the first statement and kept until :meth:`release`.

    The command bus holds one for a command's reads (one connection, not one per
    statement; none at all when every aggregate comes from its cache).
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._conn: PoolConnectionProxy | None = None
        self._lock = asyncio.Lock()

    async def _get(self) -> PoolConnectionProxy:
        if self._conn is None:
            async with self._lock:
                if self._conn is None:
                    self._conn = await self._pool.acquire()
        return self._conn

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return await (await self._get()).fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        return await (await self._get()).fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await (await self._get()).fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        return await (await self._get()).execute(query, *args)

    def is_in_transaction(self) -> bool:
        return self._conn is not None and self._conn.is_in_transaction()

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._pool.release(conn)


Executor = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy | LazyConnection
"""Where statements run: the pool, or a connection held for a command's reads."""

WAKE_CHANNEL = "medicalcor_events"
"""Channel notified after appends; projectors LISTEN on it."""
WAKE_INTERVAL = 0.005
"""Least time between two wake-up NOTIFYs of one store (each is a small commit)."""
_NOTIFY = "SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, $2)"

STREAM_VERSION_CONSTRAINT = "events_stream_version_key"
IDEMPOTENCY_CONSTRAINT = "idempotency_keys_pkey"
MAX_ANY_VERSION_RETRIES = 10
MAX_EVENTS_PER_APPEND = 65535

_APPEND = "SELECT * FROM mc_append_events($1, $2::text::jsonb, $3, $4)"
"""The batch goes as JSON text encoded here (``pydantic_core.to_json``: several times
faster than the pool's ``json.dumps`` codec); the server parses it as jsonb either way."""

_APPEND_ONE = "SELECT * FROM mc_append_one($1, $2, $3, $4, $5, $6, $7, $8, $9)"
_APPEND_ONE_KEYED = (
    "SELECT * FROM mc_append_one_keyed($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
)
"""One event on one stream, no read guards (most commands): migration 0081's single
statement with plain parameters instead of mc_append_events' JSON batch."""

_STREAM_JSON = """json_agg(json_build_array(global_position, stream_type, version, event_type,
                                 schema_version, data, metadata, idempotency_key, recorded_at)
                ORDER BY version)"""
_READ_STREAM = f"""
SELECT {_STREAM_JSON}
  FROM events
 WHERE clinic_id = $1 AND stream_id = $2 AND version > $3
"""
"""A stream as ONE JSON document: one decode per read instead of two per event."""

_READ_STREAM_WITH = f"""
WITH s AS MATERIALIZED (
    SELECT * FROM events WHERE clinic_id = $1 AND stream_id = $2 AND version > $3
)
SELECT (SELECT {_STREAM_JSON} FROM s) AS events, {{also}} AS also
"""
"""``_READ_STREAM`` and, in the same statement, one more value computed from the stream's
rows (the CTE ``s``, columns as in ``events``)."""

_READ_ALL = """
SELECT e.global_position, e.clinic_id, e.stream_id, e.stream_type, e.version, e.event_type,
       e.schema_version, {data}, {extra}e.recorded_at,
       e.global_position < barrier.position AS safe
  FROM events e,
       (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint * 65536 AS position)
           AS barrier
 WHERE e.global_position > $1
 ORDER BY e.global_position
 LIMIT $2
"""
READ_ALL = _READ_ALL.format(data="e.data", extra="e.metadata, e.idempotency_key, ")
"""Events after a position in global order, each flagged ``safe`` when no transaction
still in flight can commit an event before it."""
READ_ALL_DATA = _READ_ALL.format(data="e.data", extra="")
"""The same without metadata, for projections (half the JSON to decode)."""
READ_ALL_DATA_TEXT = _READ_ALL.format(data="e.data::text AS data", extra="")
"""The same with the data as JSON text, for readers that decode it faster themselves."""

_STREAM_VERSIONS = """
SELECT stream_id, max(version) AS version FROM events
 WHERE clinic_id = $1 AND stream_id = ANY($2::text[])
 GROUP BY stream_id
"""

_STORED_KEY = """
SELECT fingerprint, stream_versions, first_position, last_position, result
  FROM idempotency_keys WHERE clinic_id = $1 AND idempotency_key = $2
"""

_RECORD_RESULT = """
INSERT INTO idempotency_keys (clinic_id, idempotency_key, fingerprint, result)
VALUES ($1, $2, $3, $4)
ON CONFLICT (clinic_id, idempotency_key) DO NOTHING
RETURNING true
"""

_LOAD_SNAPSHOT = """
SELECT version, schema_version, state FROM snapshots WHERE clinic_id = $1 AND stream_id = $2
"""

_SAVE_SNAPSHOT = """
INSERT INTO snapshots (clinic_id, stream_id, version, schema_version, state)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (clinic_id, stream_id) DO UPDATE
   SET version = EXCLUDED.version, schema_version = EXCLUDED.schema_version,
       state = EXCLUDED.state, taken_at = now()
 WHERE snapshots.version <= EXCLUDED.version
"""


@dataclass(frozen=True)
class CommandAppend:
    """What an append under an idempotency key stored: where events landed and the result."""

    appended: AppendResult
    result: dict[str, Any] | None = None


class PostgresEventStore:
    """The ``EventStore`` port on PostgreSQL; safe for any number of concurrent tasks."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        upcasters: Upcasters | None = UPCASTERS,
        notify: bool = True,
        hold_wait: float = 0.25,
        group_commit: bool = True,
    ) -> None:
        """``upcasters=None`` hands data back as stored (a wrapping store that must
        open sealed fields before upcasting does the upcasting itself).
        ``group_commit``: one-event appends under way together share a statement and a
        transaction (see :class:`_GroupCommit`); each is still judged on its own."""
        self._pool = pool
        self._upcasters = upcasters
        self._wake = _WakeUp(pool, WAKE_CHANNEL) if notify else None
        self._hold_wait = hold_wait
        self._group = _GroupCommit(pool, self._committed) if group_commit else None
        self._fast = True  # migrations 0081/0082 applied (see _append)

    @property
    def group_commit_stats(self) -> tuple[int, int]:
        """``(transactions, appends)`` the group commit has run (batches of one included)."""
        if self._group is None:
            return 0, 0
        return self._group.batches, self._group.items

    @property
    def hold_wait(self) -> float:
        """Seconds ``read_all`` waits for a transaction in flight that holds back every event."""
        return self._hold_wait

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    def _db(self) -> Executor:
        return _CONNECTION.get() or self._pool

    # --- appending --------------------------------------------------------------------

    async def append(
        self,
        clinic_id: str,
        appends: Sequence[StreamAppend],
        *,
        metadata: EventMetadata,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        """Append to one or more streams atomically (see ``domain.ports.EventStore``).

        Under :func:`bind_command` (the command bus) the key is bound to the command's
        fingerprint instead of the events, the command's result is stored with the
        events, and a replay hands the stored result back through the binding.
        """
        check_appends(appends)
        guards = _read_guards(appends)
        binding = _BINDING.get()
        if binding is None or idempotency_key is None or binding.key != idempotency_key:
            fingerprint = append_fingerprint(appends) if idempotency_key is not None else None
            stored = await self._append(
                clinic_id, appends, metadata, idempotency_key, fingerprint, guards=guards
            )
            return stored.appended
        binding.honoured = True
        stored = await self._append(
            clinic_id,
            appends,
            metadata,
            idempotency_key,
            binding.fingerprint,
            binding.result,
            guards=guards,
        )
        if stored.appended.replayed:
            binding.stored_result = stored.result
        return stored.appended

    async def _append(
        self,
        clinic_id: str,
        appends: Sequence[StreamAppend],
        metadata: EventMetadata,
        idempotency_key: str | None,
        fingerprint: str | None,
        result: dict[str, Any] | None = None,
        *,
        guards: Sequence[tuple[str, int]] = (),
    ) -> CommandAppend:
        started = time.perf_counter()
        db = self._db()
        one = self._fast and len(appends) == 1 and len(appends[0].events) == 1 and not guards
        # Group commit only when nothing is held: a caller holding a connection (maybe
        # in a transaction) appends on it; the batch takes a connection of its own.
        group = self._group if one and isinstance(db, asyncpg.Pool) else None
        item: tuple[Any, ...] = ()
        if group is not None:
            item = _item(clinic_id, appends[0], metadata, idempotency_key, fingerprint, result)
        elif one:
            # Inside an explicit transaction, earlier appends of it may hold positions.
            in_transaction = not isinstance(db, asyncpg.Pool) and db.is_in_transaction()
            statement = _APPEND_ONE if idempotency_key is None else _APPEND_ONE_KEYED
            args = [*_item(clinic_id, appends[0], metadata, None, None, None)[:8], in_transaction]
            if idempotency_key is not None:
                args += [idempotency_key, fingerprint, _json_text(result)]
        else:
            statement = _APPEND
            args = _append_args(
                clinic_id, appends, metadata, idempotency_key, fingerprint, result, guards
            )
        for _ in range(MAX_ANY_VERSION_RETRIES):
            try:
                if group is not None:
                    row = await group.append(item)
                else:
                    row = await db.fetchrow(statement, *args)
            except asyncpg.UniqueViolationError as exc:
                raced = await self._after_race(
                    clinic_id, appends, idempotency_key, fingerprint, exc
                )
                if raced is not None:
                    return raced
                continue
            except asyncpg.UndefinedFunctionError:
                if not one:
                    raise
                # A database whose migrations 0081/0082 have not run yet (new code on an
                # old schema during an upgrade): mc_append_events does the same, slower.
                log.warning("mc_append_one/mc_append_batch missing: appending one by one")
                self._fast = False
                return await self._append(
                    clinic_id, appends, metadata, idempotency_key, fingerprint, result
                )
            assert row is not None
            keyed = group is not None or idempotency_key is not None
            fields = _one_outcome(row, keyed) if one else row
            stored = await self._outcome(
                clinic_id, appends, idempotency_key, fingerprint, fields, guards
            )
            record_event_store_latency("append", time.perf_counter() - started)
            if not stored.appended.replayed and appends and group is None:  # (a group
                self._appended(appends, stored.appended.last_position)  # counts its own)
            return stored
        first = appends[0]
        actual = (await self.stream_versions(clinic_id, [first.stream_id])).get(first.stream_id, 0)
        raise ConcurrencyConflict(first.stream_id, first.expected_version, actual)

    async def _outcome(
        self,
        clinic_id: str,
        appends: Sequence[StreamAppend],
        key: str | None,
        fingerprint: str | None,
        row: asyncpg.Record | dict[str, Any],
        guards: Sequence[tuple[str, int]] = (),
    ) -> CommandAppend:
        """``row`` in mc_append_events' shape (see :func:`_one_outcome`)."""
        outcome = row["outcome"]
        if outcome == "appended":
            bases = row["base_versions"][: len(appends)]  # guards, if any, come after
            versions = {
                a.stream_id: base + len(a.events) for a, base in zip(appends, bases, strict=True)
            }
            appended = AppendResult(
                stream_versions=versions,
                first_position=row["first_position"],
                last_position=row["last_position"],
            )
            return CommandAppend(appended)
        if outcome == "conflict":
            # The same idempotent request may have committed between the key check
            # and the version check: then this is a replay, not a conflict.
            replay = await self._replay_if_stored(clinic_id, key, fingerprint)
            if replay is not None:
                return replay
            index = row["conflict_index"] - 1
            if index >= len(appends):  # a read guard: the stream moved since it was read
                stream_id, expected = guards[index - len(appends)]
                raise ConcurrencyConflict(stream_id, expected, row["actual_version"])
            stream = appends[index]
            raise ConcurrencyConflict(
                stream.stream_id, stream.expected_version, row["actual_version"]
            )
        if outcome == "key_reused":
            raise _key_reused(key)
        stored = StoredKey(
            _versions(row["stored_versions"]),
            row["first_position"],
            row["last_position"],
            row["stored_result"],
        )
        return stored.replay()

    async def _after_race(
        self,
        clinic_id: str,
        appends: Sequence[StreamAppend],
        key: str | None,
        fingerprint: str | None,
        exc: asyncpg.UniqueViolationError,
    ) -> CommandAppend | None:
        """A racing writer committed first: a replay, a conflict, or None to retry."""
        replay = await self._replay_if_stored(clinic_id, key, fingerprint)
        if replay is not None:
            return replay
        if exc.constraint_name not in (STREAM_VERSION_CONSTRAINT, IDEMPOTENCY_CONSTRAINT):
            raise exc
        actual = await self.stream_versions(clinic_id, [a.stream_id for a in appends])
        for a in appends:
            current = actual.get(a.stream_id, 0)
            if a.expected_version not in (ANY_VERSION, current):
                raise ConcurrencyConflict(a.stream_id, a.expected_version, current) from None
        return None  # only ANY_VERSION streams raced: take their new versions and retry

    async def _replay_if_stored(
        self, clinic_id: str, key: str | None, fingerprint: str | None
    ) -> CommandAppend | None:
        if key is None:
            return None
        stored = await self.stored_key(clinic_id, key)
        if stored is None:
            return None
        if stored.fingerprint != fingerprint:
            raise _key_reused(key)
        return stored.replay()

    async def stored_key(self, clinic_id: str, key: str) -> StoredKey | None:
        """What an idempotency key holds in this clinic, if it was used."""
        return await stored_key(self._db(), clinic_id, key)

    def _appended(self, appends: Sequence[StreamAppend], last_position: int) -> None:
        self._committed(Counter(e.event_type() for a in appends for e in a.events), last_position)

    def _committed(self, types: Mapping[str, int], last_position: int) -> None:
        """Events of these types were committed, the last at ``last_position``."""
        for event_type, count in types.items():
            record_event_appended(event_type, count)
        if self._wake is not None:
            self._wake.poke(last_position)

    async def stream_versions(self, clinic_id: str, stream_ids: Sequence[str]) -> dict[str, int]:
        """Current version of each named stream that exists."""
        return await stream_versions(self._db(), clinic_id, stream_ids)

    # --- reading ----------------------------------------------------------------------

    async def read_stream(
        self, clinic_id: str, stream_id: str, *, after_version: int = 0
    ) -> list[RecordedEvent]:
        """The stream's events above ``after_version``, in order, upcast to current data."""
        started = time.perf_counter()
        rows = await self._db().fetchval(_READ_STREAM, clinic_id, stream_id, after_version)
        events = self._stream_events(clinic_id, stream_id, rows)
        record_event_store_latency("read_stream", time.perf_counter() - started)
        return events

    async def read_stream_with(
        self, clinic_id: str, stream_id: str, also: str, *, after_version: int = 0
    ) -> tuple[list[RecordedEvent], Any]:
        """``read_stream``, and the value of the SQL expression ``also`` over the stream's
        rows (the CTE ``s``, columns as in ``events``), read in the same statement: what
        a wrapping store would otherwise look up in a second round trip (``also`` is
        code, never data: it becomes part of the statement's text)."""
        started = time.perf_counter()
        row = await self._db().fetchrow(
            _READ_STREAM_WITH.format(also=also), clinic_id, stream_id, after_version
        )
        assert row is not None  # two scalar subqueries: always one row
        events = self._stream_events(clinic_id, stream_id, row["events"])
        record_event_store_latency("read_stream", time.perf_counter() - started)
        return events, row["also"]

    def _stream_events(
        self, clinic_id: str, stream_id: str, rows: list[list[Any]] | None
    ) -> list[RecordedEvent]:
        """``_READ_STREAM``'s JSON rows as events, upcast."""
        upcast = self.upcast
        events = []
        for position, stream_type, version, event_type, schema, data, meta, key, at in rows or ():
            data, schema = upcast(event_type, schema, data)
            events.append(
                _trusted_event(
                    position,
                    clinic_id,
                    stream_id,
                    stream_type,
                    version,
                    event_type,
                    schema,
                    data,
                    meta,
                    key,
                    datetime.fromisoformat(at),
                )
            )
        return events

    async def read_all(self, *, after_position: int, limit: int) -> list[RecordedEvent]:
        """Every clinic's events in global order after ``after_position``.

        Stops before the first event a transaction still in flight could precede; when
        that leaves nothing it waits up to ``hold_wait`` seconds for the transaction
        to finish, then returns what is safe (possibly nothing).
        """
        if limit <= 0:
            return []
        rows = await wait_committed(self._pool, after_position, limit, self._hold_wait)
        return [self._recorded(r, r["clinic_id"], r["stream_id"]) for r in rows]

    def upcast(self, event_type: str, schema_version: int, data: dict[str, Any]) -> tuple[Any, int]:
        """Stored data lifted to the event's current schema version (as stored: no upcasters)."""
        if self._upcasters is None:
            return data, schema_version
        return self._upcasters.upcast(event_type, schema_version, data)

    def _recorded(self, row: asyncpg.Record, clinic_id: str, stream_id: str) -> RecordedEvent:
        data, schema_version = self.upcast(row["event_type"], row["schema_version"], row["data"])
        return _trusted_event(
            row["global_position"],
            clinic_id,
            stream_id,
            row["stream_type"],
            row["version"],
            row["event_type"],
            schema_version,
            data,
            row["metadata"],
            row["idempotency_key"],
            row["recorded_at"],
        )

    # --- snapshots --------------------------------------------------------------------

    async def load_snapshot(self, clinic_id: str, stream_id: str) -> Snapshot | None:
        row = await self._db().fetchrow(_LOAD_SNAPSHOT, clinic_id, stream_id)
        if row is None:
            return None
        return Snapshot(
            stream_id=stream_id,
            version=row["version"],
            state=row["state"],
            schema_version=row["schema_version"],
        )

    async def save_snapshot(self, clinic_id: str, snapshot: Snapshot) -> None:
        """Keep the newest snapshot of a stream; an older one never replaces it."""
        await self._db().execute(
            _SAVE_SNAPSHOT,
            clinic_id,
            snapshot.stream_id,
            snapshot.version,
            snapshot.schema_version,
            snapshot.state,
        )

    async def aclose(self) -> None:
        """Wait for pending group commits and wake-up NOTIFYs (call before closing the pool)."""
        if self._group is not None:
            await self._group.drain()
        if self._wake is not None:
            await self._wake.drain()


async def stream_versions(
    conn: Executor, clinic_id: str, stream_ids: Sequence[str]
) -> dict[str, int]:
    """Current version of each named stream of a clinic that exists."""
    rows = await conn.fetch(_STREAM_VERSIONS, clinic_id, list(stream_ids))
    return {r["stream_id"]: r["version"] for r in rows}


async def stored_key(conn: Executor, clinic_id: str, key: str) -> StoredKey | None:
    """What an idempotency key holds in a clinic, if it was used."""
    row = await conn.fetchrow(_STORED_KEY, clinic_id, key)
    if row is None:
        return None
    return StoredKey(
        _versions(row["stream_versions"]),
        row["first_position"],
        row["last_position"],
        row["result"],
        row["fingerprint"],
    )


async def record_command_result(
    conn: Executor,
    clinic_id: str,
    key: str,
    fingerprint: str,
    result: dict[str, Any],
) -> StoredKey | None:
    """Keep a command's result under its key when it appended nothing.

    Returns None when stored now, else what the key already held (a replay, or a
    reuse when the fingerprints differ: the caller decides).
    """
    inserted = await conn.fetchval(_RECORD_RESULT, clinic_id, key, fingerprint, result)
    if inserted:
        return None
    return await stored_key(conn, clinic_id, key)


@dataclass
class CommandBinding:
    """Binds the next append under ``key`` in this task to a command (see bind_command)."""

    key: str
    fingerprint: str
    result: dict[str, Any]
    honoured: bool = False
    """Set by the store that used the binding."""
    stored_result: dict[str, Any] | None = None
    """On a replay: the result stored by the command's first run."""


@dataclass
class ReadGuards:
    """Streams read but not written, which an append must find at these versions."""

    versions: dict[str, int]
    honoured: bool = False
    """Set by the store that checked them."""


_BINDING: ContextVar[CommandBinding | None] = ContextVar("medicalcor_command", default=None)
_GUARDS: ContextVar[ReadGuards | None] = ContextVar("medicalcor_read_guards", default=None)
_CONNECTION: ContextVar[Executor | None] = ContextVar("medicalcor_connection", default=None)


@contextmanager
def use_connection(conn: Executor) -> Iterator[None]:
    """Within the block, this task's store calls run on ``conn``.

    The command bus holds one connection for a whole command (read, append, key)
    instead of taking one from the pool per statement.
    """
    token = _CONNECTION.set(conn)
    try:
        yield
    finally:
        _CONNECTION.reset(token)


@contextmanager
def bind_command(key: str, fingerprint: str, result: dict[str, Any]) -> Iterator[CommandBinding]:
    """Within the block, an append under ``key`` stores ``result`` atomically with its events.

    A context variable rather than a parameter, so that wrappers of the store (the
    crypto-shredding layer) that delegate ``append`` keep the binding for free.
    """
    binding = CommandBinding(key, fingerprint, result)
    token = _BINDING.set(binding)
    try:
        yield binding
    finally:
        _BINDING.reset(token)


@contextmanager
def guard_reads(versions: Mapping[str, int]) -> Iterator[ReadGuards]:
    """Within the block, an append also checks that these streams are at these versions.

    A guarded stream is written nothing; when it moved, the append is refused with a
    ``ConcurrencyConflict`` naming it. The command bus guards the aggregates it took
    from its cache and only read. A context variable, like :func:`bind_command`, so
    wrapping stores pass the guards on untouched.
    """
    guards = ReadGuards(dict(versions))
    token = _GUARDS.set(guards)
    try:
        yield guards
    finally:
        _GUARDS.reset(token)


def _read_guards(appends: Sequence[StreamAppend]) -> list[tuple[str, int]]:
    guards = _GUARDS.get()
    if guards is None or not guards.versions:
        return []
    guards.honoured = True
    written = {a.stream_id for a in appends}
    return [(s, v) for s, v in guards.versions.items() if s not in written]


async def fetch_committed(
    conn: Executor,
    after_position: int,
    limit: int,
    *,
    metadata: bool = True,
    data_as_text: bool = False,
) -> tuple[list[asyncpg.Record], bool]:
    """Rows after ``after_position`` that are safe to deliver, and whether any were held.

    A row is held when a transaction that may still commit an earlier position is in
    flight; rows after a held one are held too, so the answer is a prefix of the log.
    ``data_as_text`` (only without ``metadata``): ``data`` is the JSON text, undecoded.
    """
    if metadata:
        if data_as_text:
            raise ValueError("data_as_text reads without metadata")
        query = READ_ALL
    else:
        query = READ_ALL_DATA_TEXT if data_as_text else READ_ALL_DATA
    rows = await conn.fetch(query, after_position, limit)
    for index, row in enumerate(rows):
        if not row["safe"]:
            return rows[:index], True
    return rows, False


async def wait_committed(
    pool: asyncpg.Pool, after_position: int, limit: int, hold_wait: float, **options: bool
) -> list[asyncpg.Record]:
    """``fetch_committed``'s safe rows; when a transaction in flight holds back every
    one, wait up to ``hold_wait`` seconds for it, then answer what is safe (maybe none).
    ``options``: ``fetch_committed``'s ``metadata`` and ``data_as_text``."""
    deadline = time.monotonic() + hold_wait
    delay = 0.002
    while True:
        rows, held = await fetch_committed(pool, after_position, limit, **options)
        if rows or not held or time.monotonic() >= deadline:
            return rows
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.02)


_EVENT_FIELDS = frozenset(RecordedEvent.model_fields)
_NO_METADATA = dict.fromkeys(EventMetadata.model_fields)
_new = object.__new__
_set = object.__setattr__


def _trusted_event(
    position: int,
    clinic_id: str,
    stream_id: str,
    stream_type: str,
    version: int,
    event_type: str,
    schema_version: int,
    data: dict[str, Any],
    metadata: dict[str, Any],
    idempotency_key: str | None,
    recorded_at: datetime,
) -> RecordedEvent:
    # The store writes only EventMetadata's own fields (model_dump(exclude_none=True)).
    meta_values = _NO_METADATA.copy()
    meta_values.update(metadata)
    meta = _new(EventMetadata)
    _set(meta, "__dict__", meta_values)
    _set(meta, "__pydantic_fields_set__", set(metadata))
    _set(meta, "__pydantic_extra__", None)
    _set(meta, "__pydantic_private__", None)
    event = _new(RecordedEvent)
    _set(
        event,
        "__dict__",
        {
            "global_position": position,
            "clinic_id": clinic_id,
            "stream_id": stream_id,
            "stream_type": stream_type,
            "version": version,
            "event_type": event_type,
            "schema_version": schema_version,
            "data": data,
            "metadata": meta,
            "idempotency_key": idempotency_key,
            "recorded_at": recorded_at,
        },
    )
    _set(event, "__pydantic_fields_set__", set(_EVENT_FIELDS))
    _set(event, "__pydantic_extra__", None)
    _set(event, "__pydantic_private__", None)
    return event


@dataclass(frozen=True)
class StoredKey:
    """An idempotency key's first outcome: where its events landed and the result."""

    stream_versions: dict[str, int]
    first_position: int
    last_position: int
    result: dict[str, Any] | None
    fingerprint: str | None = None

    def replay(self) -> CommandAppend:
        appended = AppendResult(
            stream_versions=self.stream_versions,
            first_position=self.first_position,
            last_position=self.last_position,
            replayed=True,
        )
        return CommandAppend(appended, self.result)


def _versions(stored: dict[str, Any]) -> dict[str, int]:
    """Stream versions as stored with a key (``jsonb_object`` keeps them as strings)."""
    return {stream: int(version) for stream, version in stored.items()}


def _key_reused(key: str | None) -> IdempotencyKeyReused:
    return IdempotencyKeyReused(
        "idempotency key was already used for a different request", idempotencyKey=key
    )


def _append_args(
    clinic_id: str,
    appends: Sequence[StreamAppend],
    metadata: EventMetadata,
    key: str | None,
    fingerprint: str | None,
    result: dict[str, Any] | None,
    guards: Sequence[tuple[str, int]] = (),
) -> list[Any]:
    """The append as one JSON document (one parameter to encode, see migration 0002);
    read guards are streams with no events after the appended ones (migration 0080)."""
    streams = [[a.stream_id, a.stream_type, a.expected_version, len(a.events)] for a in appends]
    streams += [[stream_id, "", version, 0] for stream_id, version in guards]
    events = [
        [index, rank, event.event_type(), event.schema_version, event.data()]
        for index, a in enumerate(appends, start=1)
        for rank, event in enumerate(a.events, start=1)
    ]
    if len(events) > MAX_EVENTS_PER_APPEND:
        raise ValueError(f"an append may hold at most {MAX_EVENTS_PER_APPEND} events")
    batch = {"s": streams, "e": events, "m": metadata.model_dump(exclude_none=True), "r": result}
    return [clinic_id, to_json(batch).decode(), key, fingerprint]


def _item(
    clinic_id: str,
    append: StreamAppend,
    metadata: EventMetadata,
    key: str | None,
    fingerprint: str | None,
    result: dict[str, Any] | None,
) -> tuple[Any, ...]:
    """One event on one stream as mc_append_batch's item (JSON encoded here): clinic,
    stream, stream type, expected version, event type, schema version, data, metadata,
    key, fingerprint, result (the first eight are mc_append_one's parameters too)."""
    (event,) = append.events
    return (
        clinic_id,
        append.stream_id,
        append.stream_type,
        append.expected_version,
        event.event_type(),
        event.schema_version,
        to_json(event.data()).decode(),
        to_json(metadata.model_dump(exclude_none=True)).decode(),
        key,
        fingerprint,
        _json_text(result),
    )


def _json_text(value: Any) -> str | None:
    return None if value is None else to_json(value).decode()


def _one_outcome(row: Any, keyed: bool) -> dict[str, Any]:
    """mc_append_one's (``keyed``: mc_append_one_keyed's or mc_append_batch's) answer
    in mc_append_events' shape."""
    start = row["start_position"]
    base = row["base_version"]
    outcome = row["outcome"] if keyed else ("conflict" if start is None else "appended")
    if outcome in ("replayed", "key_reused"):
        first, last = row["stored_first"], row["stored_last"]
    else:
        first = last = 0 if start is None else start + 1
    return {
        "outcome": outcome,
        "base_versions": [base],
        "first_position": first,
        "last_position": last,
        "conflict_index": 1,
        "actual_version": base,
        "stored_versions": row["stored_versions"] if keyed else None,
        "stored_result": row["stored_result"] if keyed else None,
    }


_APPEND_BATCH = "SELECT * FROM mc_append_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
MAX_BATCH = 64
"""Appends per group commit (far below the 65,535 positions a transaction has)."""


_Entry = tuple[tuple[Any, ...], "asyncio.Future[Any]", otel_context.Context]
"""An append queued for the group commit: its item, its caller's future, and the caller's
trace context (the statement that carries it is traced as part of that caller's work)."""


class _GroupCommit:
    """Group commit of one-event appends, without a timer: a writer task sends whatever
    is queued when it runs as one ``mc_append_batch`` statement, and what queues while
    that statement is under way goes in the next one (a lone append goes at once).

    The statement judges each append on its own: a conflict or a replay answers only
    that append. Appends to the same stream, or under the same key, as an earlier one
    of the batch wait for the next batch (the statement judges all against one
    snapshot). When a batch statement fails (a racing writer's unique violation, data
    PostgreSQL refuses), nothing of it was written: each append is then run on its own,
    so each caller gets its own outcome or error. When the connection fails, whether
    the batch committed is unknown: every caller gets the error, as it would for its
    own statement. Batches are sent by the writer task, never by a caller, so one
    caller's cancellation cannot touch another's append.

    The writer keeps one pool connection while batches follow each other (after a
    batch it yields once, so the callers it answered queue their next appends first),
    instead of a pool acquire and release per batch; a connection that fails, or that
    the server ended, is terminated and the next batch takes a fresh one.

    (Tried and dropped, on the benchmark's 2 cores: several statements under way at
    once, callers sending their own append when the writer is idle, and waking a
    batch's callers in two halves so that one half computes while the other's batch is
    under way. All made batches smaller, which cost more client CPU per command than
    the overlap gained. Two writers, each with its own connection, tried again: 2.5
    appends per batch instead of 8, 99 against 79 us of client CPU per command.)
    """

    def __init__(
        self, pool: asyncpg.Pool, committed: Callable[[Mapping[str, int], int], None]
    ) -> None:
        self._pool = pool
        self._committed = committed  # per statement: counts by event type, last position
        self._queue: list[_Entry] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0
        self.items = 0

    async def append(self, item: tuple[Any, ...]) -> Any:
        """The append's row (``mc_append_batch`` shape, less ``item``)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future, otel_context.get_current()))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        """Send batches until nothing is queued, on one connection while it stays sound
        (one pool acquire for a run of batches, not one per batch)."""
        try:
            while self._queue:
                try:
                    async with self._pool.acquire() as conn:
                        await self._run_on(conn)
                except Exception as exc:  # no connection (_run_on answers its own errors)
                    self._fail_queued(exc)
                    return
        except BaseException as exc:  # cancelled (shutdown): nobody may wait forever
            self._fail_queued(exc)
            raise

    async def _run_on(self, conn: PoolConnectionProxy) -> None:
        """Batches on ``conn`` while appends keep coming and it stays sound."""
        while await self._more():
            batch = self._next_batch()
            try:
                sound = await self._write(conn, batch) if batch else True
            except BaseException as exc:
                _fail(batch, exc)
                raise
            if not sound or conn.is_closed():
                conn.terminate()  # never back to the pool: a fresh one next
                return

    def _fail_queued(self, exc: BaseException) -> None:
        _fail(self._queue, exc)
        self._queue = []

    async def _more(self) -> bool:
        """Whether appends are queued; when none is, the callers just answered (woken
        before this task) run first and queue their next ones."""
        if not self._queue:
            await asyncio.sleep(0)
        return bool(self._queue)

    def _next_batch(self) -> list[_Entry]:
        batch: list[_Entry] = []
        later: list[_Entry] = []
        streams: set[tuple[str, str]] = set()
        keys: set[tuple[str, str]] = set()
        for entry in self._queue:
            item, future, _ = entry
            if future.done():  # its caller was cancelled before it was written
                continue
            stream, key = (item[0], item[1]), (item[0], item[8])
            if len(batch) >= MAX_BATCH or stream in streams or (item[8] and key in keys):
                later.append(entry)
                continue
            batch.append(entry)
            streams.add(stream)
            if item[8]:
                keys.add(key)
        self._queue = later
        return batch

    async def _write(self, conn: PoolConnectionProxy, batch: list[_Entry]) -> bool:
        """Send ``batch`` and answer its callers; False when the connection is lost."""
        # Traced under the first caller's context: each statement is part of a request's
        # trace, not a trace of its own nor of whichever request started the writer.
        token = otel_context.attach(batch[0][2])
        try:
            return await self._write_batch(conn, batch)
        finally:
            otel_context.detach(token)

    async def _write_batch(self, conn: PoolConnectionProxy, batch: list[_Entry]) -> bool:
        rows: list[Any]
        sound = True
        if len(batch) == 1:
            item, future, _ = batch[0]
            row, sound = await self._resolve_one(conn, item, future)
            rows = [row]
        else:
            try:
                columns = zip(*(item for item, _, _ in batch), strict=True)
                rows = await conn.fetch(_APPEND_BATCH, *(list(c) for c in columns))
            except asyncpg.PostgresError as exc:
                # The statement was rolled back: nothing of the batch is in. One by one,
                # on fresh connections if this one is gone (the server ended it).
                sound = not _connection_lost(exc)
                on: Executor = conn if sound else self._pool
                rows = []
                for item, future, _ in batch:
                    row, alive = await self._resolve_one(on, item, future)
                    rows.append(row)
                    sound = sound and alive
            except Exception as exc:  # the connection: the outcome is unknown to all
                _fail(batch, exc)
                return False
            for (_, future, _), row in zip(batch, rows, strict=True):
                if not future.done():
                    future.set_result(row)
        self._count([(item, row) for (item, _, _), row in zip(batch, rows, strict=True)])
        return sound

    @staticmethod
    async def _send_one(conn: Executor, item: tuple[Any, ...]) -> Any:
        """One append in a statement of its own (mc_append_one(_keyed)); raises its error."""
        if item[8] is not None:
            return await conn.fetchrow(_APPEND_ONE_KEYED, *item[:8], False, *item[8:])
        return _unkeyed_row(await conn.fetchrow(_APPEND_ONE, *item[:8], False))

    async def _resolve_one(
        self, conn: Executor, item: tuple[Any, ...], future: asyncio.Future[Any]
    ) -> tuple[Any, bool]:
        """A queued append on its own; resolves its future. Its row (None on an error)
        and whether the connection is still sound."""
        try:
            row = await self._send_one(conn, item)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return None, not _connection_lost(exc)
        if not future.done():
            future.set_result(row)
        return row, True

    def _count(self, written: list[tuple[tuple[Any, ...], Any]]) -> None:
        self.batches += 1
        self.items += len(written)
        appended = [
            (item[4], row["start_position"] + 1)
            for item, row in written
            if row is not None and row["outcome"] == "appended"
        ]
        if appended:
            self._committed(Counter(t for t, _ in appended), max(p for _, p in appended))

    async def drain(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)


_SESSION_ENDED: tuple[type[asyncpg.PostgresError], ...] = (
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.AdminShutdownError,  # an administrator's terminate, a fast shutdown
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
)


def _fail(entries: list[_Entry], exc: BaseException) -> None:
    for _, future, _ in entries:
        if not future.done():
            future.set_exception(exc)


def _connection_lost(exc: BaseException) -> bool:
    """Whether an error leaves the connection unusable: anything but an error the
    server reported for the statement, or the server ending the session."""
    return not isinstance(exc, asyncpg.PostgresError) or isinstance(exc, _SESSION_ENDED)


def _unkeyed_row(row: asyncpg.Record | None) -> dict[str, Any]:
    """mc_append_one's answer in mc_append_one_keyed's shape."""
    assert row is not None
    start = row["start_position"]
    return {
        "outcome": "conflict" if start is None else "appended",
        "base_version": row["base_version"],
        "start_position": start,
        "stored_versions": None,
        "stored_first": None,
        "stored_last": None,
        "stored_result": None,
    }


class _WakeUp:
    """Coalesced NOTIFY after appends: one in flight at most, and one per ``WAKE_INTERVAL``.

    The NOTIFY's own commit does not wait for the WAL flush: a wake-up lost in a
    crash only delays projectors until their next poll.
    """

    def __init__(self, pool: asyncpg.Pool, channel: str) -> None:
        self._pool = pool
        self._channel = channel
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._position = 0
        self._last = 0.0

    def poke(self, position: int) -> None:
        self._position = max(self._position, position)
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            self._again = False
            wait = self._last + WAKE_INTERVAL - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last = time.monotonic()
            try:
                await self._pool.execute(_NOTIFY, self._channel, str(self._position))
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                log.debug("wake-up notify failed (projectors will poll): %s", exc)
                return
            if not self._again:
                return

    async def drain(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
