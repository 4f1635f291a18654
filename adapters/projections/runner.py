"""The projector: tails the event store and keeps every projection's tables current.

One reader per process fetches batches in global order (only events no in-flight
transaction can precede, see ``adapters.postgres.event_store``) and hands each batch
to the projections this process leads. For each projection, rows and checkpoint are
written in ONE transaction that first locks the checkpoint row and checks it still
holds the position the batch starts from, so nothing is applied twice: not after a
crash between rows and checkpoint, not when two processes overlap, not during a
rebuild.

Leadership: one leader per projection across processes, by a session advisory lock
held on a dedicated connection (which also LISTENs for append wake-ups). When that
connection or its process dies, PostgreSQL releases the lock and another projector
takes over.

Versions: each checkpoint remembers the ``Projection.version`` its rows were written
by. A projection whose code is newer (a migration changed its tables) is rebuilt
from the first event by its leader before it applies anything else, exactly as
``rebuild`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from pydantic_core import from_json

from adapters.crypto.fields import sealed_values
from adapters.postgres.event_store import (
    WAKE_CHANNEL,
    PostgresEventStore,
    fetch_committed,
    wait_committed,
)
from adapters.projections.base import Conn, ProjectedEvent, Projection
from adapters.projections.personal import PersonalData
from adapters.shredding_store import CryptoShreddingEventStore
from adapters.telemetry.metrics import set_projection_lag
from domain.events import RecordedEvent
from domain.ports import EventStore
from domain.upcasting import UPCASTERS, Upcasters

log = logging.getLogger("medicalcor.projector")

LEADER_LOCK_CLASS = 0x4D435052  # "MCPR": first key of every projection's leader lock
DEFAULT_BATCH = 5000
DEFAULT_CONCURRENCY = 3
"""Projections applying a batch at once (each on a pool connection of its own)."""
MAX_LAG_COUNT = 1_000_000

EventReader = Callable[[int, int], Awaitable[list[ProjectedEvent]]]
"""``read(after_position, limit)``: events in global order, never skipping one."""

_LOCK_CHECKPOINT = "SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE"
_MOVE_CHECKPOINT = """
UPDATE projection_checkpoints
   SET position = $2, last_event_at = $3, events_applied = events_applied + $4, updated_at = now()
 WHERE name = $1
"""
_ENSURE = """
INSERT INTO projection_checkpoints (name, version) SELECT * FROM unnest($1::text[], $2::int[])
ON CONFLICT (name) DO NOTHING
"""
_POSITIONS = "SELECT name, position FROM projection_checkpoints WHERE name = ANY($1::text[])"
_CHECKPOINTS = """
SELECT name, position, version FROM projection_checkpoints WHERE name = ANY($1::text[])
"""
_REBUILT = """
UPDATE projection_checkpoints
   SET position = $2, last_event_at = $3, events_applied = $4, version = $5, updated_at = now(),
       rebuilt_at = now()
 WHERE name = $1
"""
_LAG = f"""
SELECT c.name, c.position, c.version, c.last_event_at, c.events_applied, c.updated_at,
       c.rebuilt_at,
       (SELECT count(*) FROM (SELECT 1 FROM events e WHERE e.global_position > c.position
                              LIMIT {MAX_LAG_COUNT}) pending) AS behind,
       (SELECT e.recorded_at FROM events e WHERE e.global_position > c.position
         ORDER BY e.global_position LIMIT 1) AS oldest_pending_at
  FROM projection_checkpoints c
 WHERE c.name = ANY($1::text[])
 ORDER BY c.name
"""
_LEADERS = """
SELECT l.objid::bigint AS objid, l.pid, a.application_name
  FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'advisory' AND l.classid = $1::bigint::oid AND l.objsubid = 2
   AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def leader_key(name: str) -> tuple[int, int]:
    """The two int4 keys of a projection's leader lock."""
    return LEADER_LOCK_CLASS, zlib.crc32(name.encode()) & 0x7FFFFFFF


# --- reading events --------------------------------------------------------------------


def table_reader(pool: asyncpg.Pool, upcasters: Upcasters = UPCASTERS) -> EventReader:
    """Read straight from the events table (upcast to current data)."""

    async def read(after: int, limit: int) -> list[ProjectedEvent]:
        rows, _ = await fetch_committed(pool, after, limit, metadata=False)
        out: list[ProjectedEvent] = []
        for r in rows:
            data, _version = upcasters.upcast(r["event_type"], r["schema_version"], r["data"])
            out.append(
                ProjectedEvent(
                    r["global_position"],
                    r["clinic_id"],
                    r["stream_id"],
                    r["stream_type"],
                    r["version"],
                    r["event_type"],
                    data,
                    r["recorded_at"],
                )
            )
        return out

    return read


def store_reader(store: EventStore) -> EventReader:
    """Read through an ``EventStore`` (e.g. the crypto-shredding layer, which opens
    sealed personal fields before the projections see them).

    Through the crypto-shredding store each event also says which subject key sealed
    it (``ProjectedEvent.key_id``), so projections seal what they keep under that key.
    Over PostgreSQL the rows are read as ``table_reader`` reads them (same visibility
    barrier, no metadata) and opened by the crypto-shredding store, without building
    a ``RecordedEvent`` per event.
    """
    if isinstance(store, CryptoShreddingEventStore):
        if isinstance(store.inner, PostgresEventStore):
            return _shredding_table_reader(store, store.inner)
        return _shredding_reader(store)

    async def read(after: int, limit: int) -> list[ProjectedEvent]:
        events = await store.read_all(after_position=after, limit=limit)
        return [_projected(e, e.data, None) for e in events]

    return read


def _projected(e: RecordedEvent, data: dict[str, Any], key_id: str | None) -> ProjectedEvent:
    return ProjectedEvent(
        e.global_position,
        e.clinic_id,
        e.stream_id,
        e.stream_type,
        e.version,
        e.event_type,
        data,
        e.recorded_at,
        key_id,
    )


def _shredding_reader(store: CryptoShreddingEventStore) -> EventReader:
    async def read(after: int, limit: int) -> list[ProjectedEvent]:
        raw = await store.inner.read_all(after_position=after, limit=limit)
        found = [sealed_values(e.data) for e in raw]
        keys = await store.keys_for(found)
        out: list[ProjectedEvent] = []
        for e, sealed in zip(raw, found, strict=True):
            out.append(_projected(e, store.open_event(e, keys, sealed).data, _one(sealed)))
        return out

    return read


def _shredding_table_reader(
    store: CryptoShreddingEventStore, inner: PostgresEventStore
) -> EventReader:
    async def read(after: int, limit: int) -> list[ProjectedEvent]:
        # data as JSON text: ``pydantic_core.from_json`` decodes it in about half the time
        # of the pool's jsonb codec (``json.loads`` per value), thousands per batch
        rows = await wait_committed(
            inner.pool, after, limit, inner.hold_wait, metadata=False, data_as_text=True
        )
        # as ``inner.read_all`` hands them out (upcast only if the inner store upcasts)
        stored = [
            inner.upcast(r["event_type"], r["schema_version"], _data(r["data"])) for r in rows
        ]
        found = [sealed_values(d) for d, _ in stored]
        keys = await store.keys_for(found)
        out: list[ProjectedEvent] = []
        for r, (data, version), sealed in zip(rows, stored, found, strict=True):
            clinic_id, stream_id, event_type = r["clinic_id"], r["stream_id"], r["event_type"]
            data, _ = store.open_data(
                event_type,
                version,
                data,
                sealed,
                keys,
                clinic_id=clinic_id,
                stream_id=stream_id,
            )
            out.append(
                ProjectedEvent(
                    r["global_position"],
                    clinic_id,
                    stream_id,
                    r["stream_type"],
                    r["version"],
                    event_type,
                    data,
                    r["recorded_at"],
                    _one(sealed),
                )
            )
        return out

    return read


def _data(stored: Any) -> dict[str, Any]:
    return from_json(stored) if isinstance(stored, str) else stored


def _one(sealed: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The key that sealed an event (one subject per event; None: not sealed)."""
    if not sealed:
        return None
    key_ids = {v["kid"] for v in sealed.values()}
    return next(iter(key_ids)) if len(key_ids) == 1 else None


def personal_of(store: EventStore | None) -> PersonalData | None:
    """The pseudonymizer and subject keys of a crypto-shredding store (None otherwise)."""
    if isinstance(store, CryptoShreddingEventStore):
        return PersonalData(store.pseudonymizer, store.keys)
    return None


# --- applying batches ------------------------------------------------------------------


class Projector:
    """Applies batches of events to projections, each with its checkpoint, atomically."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        projections: Sequence[Projection],
        *,
        reader: EventReader | None = None,
        batch_size: int = DEFAULT_BATCH,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.pool = pool
        self.projections = {p.name: p for p in projections}
        self.read = reader or table_reader(pool)
        self.batch_size = batch_size
        self.concurrency = concurrency

    async def ensure_checkpoints(self) -> None:
        await _ensure(self.pool, self.projections.values())

    async def positions(self, names: Sequence[str] | None = None) -> dict[str, int]:
        names = list(names or self.projections)
        rows = await self.pool.fetch(_POSITIONS, names)
        return {r["name"]: r["position"] for r in rows}

    async def step(self, names: Sequence[str] | None = None) -> int:
        """Read one batch after the lowest checkpoint of ``names`` and apply it to each.

        A projection whose rows an older version wrote is rebuilt first. Returns how
        many events were read (0: every projection is caught up).
        """
        names = list(names or self.projections)
        rows = {r["name"]: r for r in await self.pool.fetch(_CHECKPOINTS, names)}
        if len(rows) < len(names):
            await self.ensure_checkpoints()
            rows = {r["name"]: r for r in await self.pool.fetch(_CHECKPOINTS, names)}
        checkpoints = {n: rows[n]["position"] for n in names}
        for name in names:
            projection = self.projections[name]
            if rows[name]["version"] != projection.version:
                log.info(
                    "rebuilding projection %s: version %s -> %s",
                    name,
                    rows[name]["version"],
                    projection.version,
                )
                done = await _rebuild(self.pool, projection, self.read, self.batch_size)
                checkpoints[name] = done["position"]
        events = await self.read(min(checkpoints.values()), self.batch_size)
        work = []
        for name in names:
            todo = [e for e in events if e.position > checkpoints[name]]
            if todo:
                work.append((self.projections[name], checkpoints[name], todo))
        await self._apply_each(work)
        return len(events)

    async def _apply_each(
        self, work: Sequence[tuple[Projection, int, list[ProjectedEvent]]]
    ) -> None:
        """``apply`` each projection's part of a batch, up to ``concurrency`` at a time.

        Projections are independent (own tables, own checkpoint, own transaction), so
        while one waits for PostgreSQL another folds its events. Every one is given its
        chance even when another fails; then the first failure is raised.
        """
        if self.concurrency == 1 or len(work) <= 1:
            for projection, expected, todo in work:
                await self.apply(projection, expected, todo)
            return
        gate = asyncio.Semaphore(self.concurrency)

        async def one(projection: Projection, expected: int, todo: list[ProjectedEvent]) -> None:
            async with gate:
                await self.apply(projection, expected, todo)

        results = await asyncio.gather(*(one(*w) for w in work), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def apply(
        self, projection: Projection, expected: int, events: Sequence[ProjectedEvent]
    ) -> bool:
        """Fold ``events`` and move the checkpoint from ``expected`` in one transaction.

        False (nothing written) when the checkpoint is no longer at ``expected``:
        another leader or a rebuild moved it, and the next step starts from there.
        """
        relevant = [e for e in events if e.type in projection.handles]
        last = events[-1]
        async with self.pool.acquire() as conn, conn.transaction():
            current = await conn.fetchval(_LOCK_CHECKPOINT, projection.name)
            if current != expected:
                return False
            if relevant:
                await projection.apply(conn, relevant)
            await conn.execute(
                _MOVE_CHECKPOINT, projection.name, last.position, last.recorded_at, len(relevant)
            )
        return True

    async def catch_up(self, names: Sequence[str] | None = None) -> int:
        """Step until the projections have reached the end of the log; events read."""
        total = 0
        while n := await self.step(names):
            total += n
        return total


# --- leadership and the run loop -------------------------------------------------------


class Leadership:
    """A dedicated connection holding the leader locks this process won, and LISTENing."""

    def __init__(self, conn: Conn, names: Sequence[str]) -> None:
        self.conn = conn
        self.names = list(names)
        self.led: list[str] = []
        self.wake = asyncio.Event()

    async def start(self) -> None:
        await self.conn.add_listener(WAKE_CHANNEL, self._on_notify)

    def _on_notify(self, *_: Any) -> None:
        self.wake.set()

    async def campaign(self) -> list[str]:
        """Try to win the projections not led yet; returns the ones led now."""
        for name in self.names:
            if name in self.led:
                continue
            won = await self.conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", *leader_key(name))
            if won:
                log.info("leading projection %s", name)
                self.led.append(name)
        return list(self.led)

    async def resign(self) -> None:
        if self.conn.is_closed():
            return
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            await self.conn.remove_listener(WAKE_CHANNEL, self._on_notify)
            for name in self.led:
                await self.conn.execute("SELECT pg_advisory_unlock($1, $2)", *leader_key(name))
        self.led = []

    async def wait(self, seconds: float, stop: asyncio.Event) -> None:
        """Until an append wakes us, ``stop`` is set or ``seconds`` pass."""
        waits = [asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        self.wake.clear()


async def run_projector(
    pool: asyncpg.Pool,
    stop_event: asyncio.Event,
    *,
    projections: Sequence[Projection | str] | None = None,
    store: EventStore | None = None,
    personal: PersonalData | None = None,
    batch_size: int = DEFAULT_BATCH,
    concurrency: int = DEFAULT_CONCURRENCY,
    poll_interval: float = 0.5,
    leader_interval: float = 2.0,
    lag_interval: float = 1.0,
    connect: Callable[[], Awaitable[asyncpg.Connection]] | None = None,
) -> None:
    """Run projections (all by default) until ``stop_event`` is set.

    ``projections`` are instances or names. Leads whichever of them no other process
    leads (re-campaigning every ``leader_interval`` s), applies batches as events
    arrive (woken by NOTIFY,
    polling every ``poll_interval`` s as a fallback) and reports lag every
    ``lag_interval`` s. Events are read through ``store`` when given (so wrappers
    such as crypto-shredding can open sealed fields), else from the table. Projections
    named (or all) are built with ``personal``, by default the pseudonymizer and keys
    of the crypto-shredding ``store``. The leader connection comes from ``connect``
    or, by default, is held from the pool; up to ``concurrency`` more pool connections
    apply a batch's projections side by side.
    """
    from adapters.projections import all_projections, get_projection

    personal = personal or personal_of(store)
    chosen = [
        get_projection(p, personal) if isinstance(p, str) else p
        for p in (projections or all_projections(personal))
    ]
    reader = store_reader(store) if store is not None else table_reader(pool)
    projector = Projector(
        pool, chosen, reader=reader, batch_size=batch_size, concurrency=concurrency
    )
    backoff = 0.5
    while not stop_event.is_set():
        try:
            await projector.ensure_checkpoints()
            await _lead_and_project(
                projector, stop_event, pool, connect, poll_interval, leader_interval, lag_interval
            )
            backoff = 0.5
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            log.warning("projector lost the database (%s); retrying in %.1fs", exc, backoff)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop_event.wait(), backoff)
            backoff = min(backoff * 2, 10.0)


async def _lead_and_project(
    projector: Projector,
    stop: asyncio.Event,
    pool: asyncpg.Pool,
    connect: Callable[[], Awaitable[asyncpg.Connection]] | None,
    poll_interval: float,
    leader_interval: float,
    lag_interval: float,
) -> None:
    conn: Conn = await connect() if connect is not None else await pool.acquire()
    leadership = Leadership(conn, list(projector.projections))
    try:
        await leadership.start()
        next_campaign = next_lag = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_campaign:
                await leadership.campaign()
                next_campaign = now + leader_interval
            if now >= next_lag and leadership.led:
                await report_lag(pool, leadership.led)
                next_lag = now + lag_interval
            if not leadership.led:
                await leadership.wait(min(leader_interval, poll_interval * 4), stop)
                continue
            if await _step_isolated(projector, leadership.led) == 0:
                await leadership.wait(poll_interval, stop)
    finally:
        await leadership.resign()
        if connect is not None:
            await conn.close()
        elif isinstance(conn, PoolConnectionProxy):
            await pool.release(conn)


async def _step_isolated(projector: Projector, names: list[str]) -> int:
    """One step; a projection whose fold fails is logged and retried, never skipped."""
    try:
        return await projector.step(names)
    except (asyncpg.InterfaceError, OSError, asyncpg.ConnectionDoesNotExistError):
        raise
    except Exception:
        log.exception("projection batch failed; it will be retried")
        await asyncio.sleep(1.0)
        return 0


async def report_lag(pool: asyncpg.Pool, names: Sequence[str]) -> list[dict[str, Any]]:
    """Each projection's lag (events behind, age of the oldest pending one), exported."""
    rows = [_lag_row(r) for r in await pool.fetch(_LAG, list(names))]
    for row in rows:
        set_projection_lag(row["name"], row["lag_events"], row["lag_seconds"])
    return rows


def _lag_row(r: asyncpg.Record) -> dict[str, Any]:
    oldest = r["oldest_pending_at"]
    seconds = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
    return {
        "name": r["name"],
        "position": r["position"],
        "version": r["version"],
        "lag_events": r["behind"],
        "lag_seconds": round(max(seconds, 0.0), 3),
        "last_event_at": r["last_event_at"],
        "events_applied": r["events_applied"],
        "updated_at": r["updated_at"],
        "rebuilt_at": r["rebuilt_at"],
    }


async def status(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Every projection: checkpoint, lag, and the leader (pid and application) if any."""
    from adapters.projections import PROJECTION_NAMES, PROJECTION_TYPES

    await _ensure(pool, PROJECTION_TYPES)
    rows = await report_lag(pool, PROJECTION_NAMES)
    leaders = {r["objid"]: r for r in await pool.fetch(_LEADERS, LEADER_LOCK_CLASS)}
    versions = {cls.name: cls.version for cls in PROJECTION_TYPES}
    for row in rows:
        row["outdated"] = row["version"] != versions[row["name"]]
        leader = leaders.get(leader_key(row["name"])[1])
        row["leader"] = (
            {"pid": leader["pid"], "application": leader["application_name"]} if leader else None
        )
    return rows


async def rebuild(
    pool: asyncpg.Pool,
    name: str,
    *,
    store: EventStore | None = None,
    personal: PersonalData | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> dict[str, Any]:
    """Rebuild one projection from the first event, in ONE transaction.

    Its tables are emptied for every clinic and refilled, and its checkpoint is set
    (with the projection's current version), before anything commits: readers keep
    seeing the old rows until the new ones are complete, and a running leader waits
    on the checkpoint row, then carries on from where the rebuild stopped. The open
    transaction holds the global read barrier, so other projections (and
    ``min_position`` queries) pause until it commits. Events are read through
    ``store`` when given; ``personal`` defaults to the store's (see ``run_projector``).
    """
    from adapters.projections import get_projection

    projection = get_projection(name, personal or personal_of(store))
    reader = store_reader(store) if store is not None else table_reader(pool)
    return await _rebuild(pool, projection, reader, batch_size)


async def _ensure(pool: asyncpg.Pool, projections: Iterable[Projection | type[Projection]]) -> None:
    """Checkpoint rows for projections that have none (new ones start at their version)."""
    chosen = list(projections)
    await pool.execute(_ENSURE, [p.name for p in chosen], [p.version for p in chosen])


async def _rebuild(
    pool: asyncpg.Pool, projection: Projection, reader: EventReader, batch_size: int
) -> dict[str, Any]:
    name = projection.name
    started = time.perf_counter()
    await _ensure(pool, [projection])
    applied = read = position = 0
    async with pool.acquire() as conn, conn.transaction():
        await conn.fetchval(_LOCK_CHECKPOINT, name)
        for table in projection.tables:
            await conn.execute(f"DELETE FROM {table}")
        last_at = None
        while events := await reader(position, batch_size):
            relevant = [e for e in events if e.type in projection.handles]
            if relevant:
                await projection.apply(conn, relevant)
            read += len(events)
            applied += len(relevant)
            position, last_at = events[-1].position, events[-1].recorded_at
        await conn.execute(_REBUILT, name, position, last_at, applied, projection.version)
    return {
        "name": name,
        "version": projection.version,
        "position": position,
        "events_read": read,
        "events_applied": applied,
        "seconds": round(time.perf_counter() - started, 3),
    }
