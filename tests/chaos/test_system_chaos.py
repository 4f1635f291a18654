"""Chaos on the whole system: mixed load through the API while every component is killed.

The real processes (``tests.chaos.cluster``): PostgreSQL, the Temporal dev server on a
SQLite file, the projector, the worker and the API. A bounded mixed load (bookings on
distinct patient/day pairs, lead scoring on distinct phones, WhatsApp templates to
consented patients), every request with an ``Idempotency-Key`` and client retries
(same key) on connection errors and 5xx, runs while faults hit: SIGKILL + restart of
the worker, the projector and the API, PostgreSQL stopped (fast) and SIGKILLed then
started on the same data, the Temporal dev server SIGKILLed and restarted.

Afterwards, from the event store, the sandbox outbox and Temporal:

* every accepted request has exactly its effects: one AppointmentScheduled per
  booking, one LeadCreated + one LeadScored per phone, one WhatsAppMessageQueued, one
  WhatsAppMessageSent and one sandbox outbox row per message (the booking
  confirmations included);
* a request without a definitive answer (in doubt) has its effects at most once;
* no duplicate anywhere (per stream, per message id, per doctor slot), no queued
  message left without an outcome, no sandbox row without its Sent event;
* no workflow stuck: each booking waits for its 24 h reminder, each delivery completed;
* each projection's tables equal a rebuild from the first event.

The last line printed is the summary: requests, accepted, retried, faults, losses,
duplicates.

Two single-fault scenarios pin defects this suite found (strict xfail, see each
reason): a message queued while Temporal hangs is never delivered, and a keyed request
cut by a PostgreSQL restart stays "still running" for the idempotency lease.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from tests.chaos.cluster import CLINIC, Client, Cluster, Outcome

pytestmark = pytest.mark.slow

BOOKINGS = LEADS = MESSAGES = 36
PACE_S = 0.5  # one request every PACE_S: the load lasts as long as the fault schedule
CONCURRENCY = 8
REQUEST_DEADLINE_S = 40.0
SETTLE_TIMEOUT_S = 120.0
MID_REQUEST_WAIT_S = 2.0
PATIENTS = {
    "pat-1001": ("Maria", "+40721234567"),
    "pat-1002": ("Andrei", "+40722345678"),
    "pat-1003": ("Ioana", "+40723456789"),
    "pat-1004": ("George", "+40724567890"),
    "pat-1005": ("Elena", "+40725678901"),
}
SERVICES = ("consultation", "cleaning", "whitening", "filling", "implant", "orthodontics")
LEAD_TEXTS = (
    "Bună, vreau All-on-4, cât costă?",
    "Aș dori un implant dentar, ce preț aveți?",
    "Vreau o albire, am nunta luna viitoare.",
    "Salut, ce program aveți?",
    "I would like veneers, how much in euro?",
    "Am durere de măsea, puteți azi?",
)


# --- the load -------------------------------------------------------------------------


def weekdays(start: date, count: int) -> list[date]:
    out: list[date] = []
    day = start
    while len(out) < count:
        if day.weekday() < 5:
            out.append(day)
        day += timedelta(days=1)
    return out


def mixed_requests(seed: int) -> list[tuple[str, dict[str, Any]]]:
    """Bookings on distinct (patient, day) pairs, leads on distinct phones, templates."""
    rng = random.Random(seed)
    patients = list(PATIENTS)
    days = weekdays(datetime.now(UTC).date() + timedelta(days=3), BOOKINGS)
    bookings = [
        (
            "schedule_appointment",
            {
                "patientId": patients[i % len(patients)],
                "serviceType": SERVICES[i % len(SERVICES)],
                "preferredDate": day.isoformat(),
                "preferredTimeSlot": "any",
            },
        )
        for i, day in enumerate(days)
    ]
    run = rng.randrange(10, 99)
    leads = [
        (
            "score_lead",
            {
                "phone": f"+4074{run}{i:05d}",
                "channel": rng.choice(["whatsapp", "web", "voice", "referral"]),
                "messages": [{"role": "user", "content": rng.choice(LEAD_TEXTS)}],
            },
        )
        for i in range(LEADS)
    ]
    messages = []
    for i in range(MESSAGES):
        patient = patients[i % len(patients)]
        name, phone = PATIENTS[patient]
        messages.append(
            (
                "send_whatsapp",
                {
                    "to": phone,
                    "templateName": "appointment_confirmation",
                    "templateParams": {
                        "name": name,
                        "date": f"{(i % 28) + 1:02d}.03.2031",
                        "time": f"{9 + i % 8:02d}:30",
                        "location": "Str. Victoriei 10, București",
                    },
                },
            )
        )
    mixed = bookings + leads + messages
    rng.shuffle(mixed)
    return mixed


async def run_load(client: Client, requests: list[tuple[str, dict[str, Any]]]) -> list[Outcome]:
    """Release one request every PACE_S, at most CONCURRENCY in flight."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int, function: str, arguments: dict[str, Any]) -> Outcome:
        await asyncio.sleep(i * PACE_S)
        async with gate:
            return await client.call(function, arguments, key=f"chaos-{i:04d}-{function}")

    return list(await asyncio.gather(*(one(i, f, a) for i, (f, a) in enumerate(requests))))


async def inject_faults(cluster: Cluster, client: Client) -> list[tuple[str, float]]:
    """The fault schedule: each fault when requests are in flight (waiting at most
    MID_REQUEST_WAIT_S for one), then wait until the component serves again."""
    schedule: list[tuple[float, str, Callable[[], Awaitable[float]]]] = [
        (4, "SIGKILL worker", lambda: cluster.restart("worker")),
        (10, "SIGKILL projector", lambda: cluster.restart("projector")),
        (16, "SIGKILL api", lambda: cluster.restart("api")),
        (23, "PostgreSQL stop -m fast", lambda: cluster.restart_postgres("fast", down_for=1.5)),
        (31, "Temporal SIGKILL", lambda: cluster.restart_temporal(down_for=1.5)),
        (39, "PostgreSQL SIGKILL", lambda: cluster.restart_postgres("kill", down_for=1.0)),
        (46, "SIGKILL worker", lambda: cluster.restart("worker")),
        (52, "SIGKILL api", lambda: cluster.restart("api")),
    ]
    started = time.monotonic()
    done: list[tuple[str, float]] = []
    for at, what, fault in schedule:
        await asyncio.sleep(max(0.0, at - (time.monotonic() - started)))
        for _ in range(int(MID_REQUEST_WAIT_S / 0.005)):
            if client.in_flight:
                break
            await asyncio.sleep(0.005)
        done.append((what, await fault()))
    for name in ("api", "worker", "projector"):  # after a PostgreSQL restart too
        await cluster.wait_ready(name, within=60)
    return done


# --- what must hold afterwards ----------------------------------------------------------


@dataclass
class Findings:
    losses: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    phantoms: list[str] = field(default_factory=list)
    in_doubt: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    projections: list[str] = field(default_factory=list)

    def problems(self) -> dict[str, list[str]]:
        return {k: v for k, v in vars(self).items() if v and k not in ("phantoms", "in_doubt")}


def derived_id(clinic: str, key: str, kind: str) -> str:
    """The id a gateway call derives from its request's Idempotency-Key (call ``c1``)."""
    from domain.cqrs import CommandContext
    from domain.functions.context import FunctionContext

    ctx = FunctionContext(
        command=CommandContext(clinic_id=clinic, actor="chaos", idempotency_key=f"http:{key}"),
        commands=None,  # type: ignore[arg-type]  # only the id derivation is used
        queries=None,  # type: ignore[arg-type]
        workflows=None,  # type: ignore[arg-type]
        now=datetime.now(UTC),
    )
    return ctx.for_call("c1").new_id(kind)


async def event_counts(conn: asyncpg.Connection) -> Counter[tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT stream_id, event_type, count(*) AS n FROM events WHERE clinic_id = $1"
        " GROUP BY stream_id, event_type",
        CLINIC,
    )
    return Counter({(r["stream_id"], r["event_type"]): r["n"] for r in rows})


def expect(
    findings: Findings, outcome: Outcome, counts: Counter[tuple[str, str]],
    effects: list[tuple[str, str]],
) -> None:  # fmt: skip
    """Accepted: each effect exactly once; otherwise at most once (more is a duplicate)."""
    for stream, kind in effects:
        n = counts[(stream, kind)]
        label = f"{outcome.key} {kind} on {stream}: {n}"
        if n > 1:
            findings.duplicates.append(label)
        elif outcome.accepted and n == 0:
            findings.losses.append(label)
        elif outcome.in_doubt:
            findings.in_doubt.append(f"{label} (took effect: {'yes' if n else 'no'})")
        elif not outcome.accepted and n == 1:
            findings.phantoms.append(f"{label} (answered {outcome.error_code})")


async def check_effects(
    conn: asyncpg.Connection, outcomes: list[Outcome], secret: str,
    confirmations: dict[str, str | None],
) -> Findings:  # fmt: skip
    from adapters.pseudonym import HmacPseudonymizer

    findings = Findings()
    counts = await event_counts(conn)
    pseudonyms = HmacPseudonymizer(secret.encode())
    for o in outcomes:
        if o.function == "schedule_appointment":
            appointment = derived_id(CLINIC, o.key, "apt")
            if o.accepted:
                assert o.result is not None and o.result["appointmentId"] == appointment
            expect(findings, o, counts, [(f"appointment-{appointment}", "AppointmentScheduled")])
            message = confirmations.get(appointment)
            if o.accepted and message is None:
                findings.losses.append(f"{o.key}: booking {appointment} sent no confirmation")
        elif o.function == "score_lead":
            lead = pseudonyms.pseudonym(CLINIC, "lead", o.arguments["phone"])
            if o.accepted:
                assert o.result is not None and o.result["leadId"] == lead
            expect(findings, o, counts,
                   [(f"lead-{lead}", "LeadCreated"), (f"lead-{lead}", "LeadScored")])  # fmt: skip
        else:
            message = derived_id(CLINIC, o.key, "msg")
            if o.accepted:
                assert o.result is not None and o.result["messageId"] == message
            expect(findings, o, counts,
                   [(f"message-{message}", "WhatsAppMessageQueued"),
                    (f"message-{message}", "WhatsAppMessageSent")])  # fmt: skip
    for message in filter(None, confirmations.values()):
        for kind in ("WhatsAppMessageQueued", "WhatsAppMessageSent"):
            n = counts[(f"message-{message}", kind)]
            if n != 1:
                (findings.losses if n == 0 else findings.duplicates).append(
                    f"confirmation {message} {kind}: {n}"
                )
    await check_messages(conn, counts, findings)
    await check_slots(conn, findings)
    return findings


async def check_messages(
    conn: asyncpg.Connection, counts: Counter[tuple[str, str]], findings: Findings
) -> None:
    """Every message: queued once, one outcome, one sandbox row per Sent (same provider id)."""
    streams = {s for s, kind in counts if kind == "WhatsAppMessageQueued"}
    for stream in sorted(streams):
        queued = counts[(stream, "WhatsAppMessageQueued")]
        sent = counts[(stream, "WhatsAppMessageSent")]
        failed = counts[(stream, "WhatsAppMessageFailed")]
        if queued > 1 or sent > 1:
            findings.duplicates.append(f"{stream}: queued {queued}, sent {sent}")
        if sent + failed == 0:
            findings.orphans.append(f"{stream}: queued, never sent nor failed")
        if failed:
            findings.losses.append(f"{stream}: WhatsAppMessageFailed x{failed}")
    sent_rows = await conn.fetch(
        "SELECT data->>'message_id' AS message, data->>'provider_message_id' AS provider"
        " FROM events WHERE event_type = 'WhatsAppMessageSent'"
    )
    sent_by_message = {r["message"]: r["provider"] for r in sent_rows}
    outbox = await conn.fetch("SELECT idempotency_key, message_id FROM whatsapp_sandbox_outbox")
    for row in outbox:
        provider = sent_by_message.get(row["idempotency_key"])
        if provider is None:
            findings.orphans.append(f"sandbox row {row['idempotency_key']}: no Sent event")
        elif provider != row["message_id"]:
            findings.duplicates.append(
                f"message {row['idempotency_key']}: Sent {provider}, outbox {row['message_id']}"
            )
    if len(outbox) != len(sent_by_message):
        findings.duplicates.append(f"{len(outbox)} sandbox rows vs {len(sent_by_message)} Sent")


async def check_slots(conn: asyncpg.Connection, findings: Findings) -> None:
    """No doctor booked twice for one start time."""
    rows = await conn.fetch(
        "SELECT data->>'doctor_id' AS doctor, data->>'start' AS start, count(*) AS n"
        " FROM events WHERE event_type = 'AppointmentScheduled'"
        " GROUP BY 1, 2 HAVING count(*) > 1"
    )
    findings.duplicates += [f"doctor {r['doctor']} double-booked at {r['start']}" for r in rows]


# --- workflows --------------------------------------------------------------------------


def booking_settled(status: dict[str, Any]) -> bool:
    """Booked, confirmed, confirmation sent, now waiting for the 24 h reminder (or done)."""
    steps = {s["stepId"]: s["status"] for s in status.get("steps", [])}
    if status["status"] == "completed":
        return True
    return (
        status["status"] == "running"
        and status.get("currentStep") == "reminder_24h"
        and steps.get("confirmation") == "completed"
    )


async def settle_workflows(
    cluster: Cluster, client: Client, findings: Findings, expected: set[str]
) -> tuple[int, dict[str, str | None]]:
    """Wait (bounded) until no workflow is in flight; (workflows seen, confirmations by
    appointment id). Bookings not settled in time, failed ones and deliveries not
    completed are reported. ``expected``: workflow ids that must be listed (visibility
    is eventually consistent: one not listed yet counts as in flight)."""
    from temporalio.client import Client as TemporalClient
    from temporalio.client import WorkflowExecutionStatus

    temporal = await TemporalClient.connect(cluster.temporal.address)
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        pending: list[str] = []
        failed: list[str] = []
        confirmations: dict[str, str | None] = {}
        executions = [e async for e in temporal.list_workflows(f"ClinicId = '{CLINIC}'")]
        pending += sorted(expected - {e.id for e in executions})
        for e in executions:
            if e.workflow_type == "BookingWorkflow":
                status = await workflow_status(client, e.id)
                appointment = e.id.rsplit(":", 1)[1]
                step = {s["stepId"]: s for s in status.get("steps", [])}.get("confirmation")
                result = (step or {}).get("result") or {}
                confirmations[appointment] = result.get("message_id")
                if status["status"] in ("failed", "terminated", "timed_out", "cancelled"):
                    failed.append(f"{e.id}: {status['status']} {status.get('error')}")
                elif not booking_settled(status):
                    pending.append(f"{e.id}: {status['status']} at {status.get('currentStep')}")
            elif e.status == WorkflowExecutionStatus.RUNNING:
                pending.append(f"{e.id} ({e.workflow_type}) running")
            elif e.status != WorkflowExecutionStatus.COMPLETED:
                failed.append(f"{e.id} ({e.workflow_type}): {e.status}")
        if not pending or time.monotonic() > deadline:
            findings.stuck += pending
            findings.losses += failed
            return len(executions), confirmations
        await asyncio.sleep(1.0)


async def workflow_status(client: Client, workflow_id: str) -> dict[str, Any]:
    outcome = await client.call("get_workflow_status", {"taskId": workflow_id})
    if outcome.result is None:
        raise AssertionError(f"get_workflow_status({workflow_id}): {outcome.status} {outcome.body}")
    return outcome.result


# --- projections ------------------------------------------------------------------------


async def wait_projections_caught_up(conn: asyncpg.Connection, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while True:
        behind = await conn.fetchval(
            "SELECT count(*) FROM projection_checkpoints c"
            " WHERE EXISTS (SELECT 1 FROM events e WHERE e.global_position > c.position)"
        )
        if behind == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{behind} projection(s) still behind after {within:.0f} s")
        await asyncio.sleep(0.5)


async def snapshot(conn: asyncpg.Connection, tables: list[str]) -> dict[str, list[str]]:
    return {
        t: [r[0] for r in await conn.fetch(f"SELECT to_jsonb(x)::text FROM {t} x ORDER BY 1")]
        for t in tables
    }


async def compare_with_rebuild(cluster: Cluster, findings: Findings) -> int:
    """Each projection's rows vs a rebuild from the first event; rows compared."""
    from adapters.projections import PROJECTION_TYPES, rebuild
    from api.dev_setup import services_for

    async with services_for(cluster.settings, cluster.database_url) as services:
        conn = await asyncpg.connect(cluster.database_url)
        try:
            await wait_projections_caught_up(conn)
            for projection in PROJECTION_TYPES:
                tables = list(projection.tables)
                head = await conn.fetchval("SELECT max(global_position) FROM events")
                before = await snapshot(conn, tables)
                await rebuild(services.pool, projection.name, store=services.store)
                after = await snapshot(conn, tables)
                if await conn.fetchval("SELECT max(global_position) FROM events") != head:
                    findings.projections.append(f"{projection.name}: events arrived meanwhile")
                for table in tables:
                    if before[table] != after[table]:
                        gone = sorted(set(before[table]) - set(after[table]))[:3]
                        new = sorted(set(after[table]) - set(before[table]))[:3]
                        findings.projections.append(
                            f"{table}: {len(before[table])} rows live, {len(after[table])} "
                            f"rebuilt; live only {gone}; rebuilt only {new}"
                        )
            return sum(len(v) for v in (await snapshot(conn, all_tables())).values())
        finally:
            await conn.close()


def all_tables() -> list[str]:
    from adapters.projections import PROJECTION_TYPES

    return [t for p in PROJECTION_TYPES for t in p.tables]


# --- the test ---------------------------------------------------------------------------


@dataclass
class Run:
    outcomes: list[Outcome]
    faults: list[tuple[str, float]]
    findings: Findings
    workflows: int
    projection_rows: int
    startup_s: float
    load_s: float


async def run_chaos(cluster: Cluster, started: float) -> Run:
    """Load + faults, then settle and check everything; the run's figures and findings."""
    up = time.monotonic() - started
    client = Client(cluster.api_url, cluster.api_key, deadline_s=REQUEST_DEADLINE_S)
    try:
        load = asyncio.create_task(run_load(client, mixed_requests(seed=20250314)))
        try:
            faults = await inject_faults(cluster, client)
        except BaseException:
            load.cancel()
            raise
        outcomes = await load
        load_s = time.monotonic() - started - up
        findings = Findings()
        bookings = {
            f"{CLINIC}:booking:{derived_id(CLINIC, o.key, 'apt')}"
            for o in outcomes
            if o.function == "schedule_appointment" and o.accepted
        }
        workflows, confirmations = await settle_workflows(cluster, client, findings, bookings)
        conn = await asyncpg.connect(cluster.database_url)
        try:
            effects = await check_effects(conn, outcomes, cluster.secret_key, confirmations)
        finally:
            await conn.close()
        for name, items in vars(effects).items():
            getattr(findings, name).extend(items)
        rows = await compare_with_rebuild(cluster, findings)
    finally:
        await client.aclose()
    return Run(outcomes, faults, findings, workflows, rows, up, load_s)


def report(run: Run, total_s: float) -> list[str]:
    """What happened, ending with the one-line summary."""
    outcomes, findings = run.outcomes, run.findings
    in_doubt = [o for o in outcomes if o.in_doubt]
    refused = Counter(o.error_code for o in outcomes if not o.accepted and not o.in_doubt)
    reasons = Counter(r for o in outcomes for r in o.retry_reasons)
    p95 = sorted(o.latency_s for o in outcomes)[int(0.95 * (len(outcomes) - 1))]
    lines = [f"fault: {what:<26} back in {seconds:5.1f} s" for what, seconds in run.faults]
    lines.append(f"retry reasons: {dict(reasons)}; refused: {dict(refused)}")
    lines += [
        f"not accepted: {o.key} {o.status} {o.error_code} after {o.attempts} attempts"
        for o in outcomes
        if not o.accepted
    ]
    lines += [f"in doubt: {effect}" for effect in findings.in_doubt]
    lines += [f"phantom effect (refused, yet done): {p}" for p in findings.phantoms]
    for name, items in findings.problems().items():
        lines += [f"{name}: {item}" for item in items]
    lines.append(
        f"chaos summary: requests={len(outcomes)} accepted={sum(o.accepted for o in outcomes)} "
        f"refused={sum(refused.values())} in_doubt={len(in_doubt)} "
        f"retried={sum(o.attempts > 1 for o in outcomes)} "
        f"attempts={sum(o.attempts for o in outcomes)} faults={len(run.faults)} "
        f"losses={len(findings.losses)} duplicates={len(findings.duplicates)} "
        f"orphans={len(findings.orphans)} stuck={len(findings.stuck)} "
        f"phantoms={len(findings.phantoms)} workflows={run.workflows} "
        f"projection_rows={run.projection_rows} projection_diffs={len(findings.projections)} "
        f"p95_latency_s={p95:.2f} startup_s={run.startup_s:.1f} load_s={run.load_s:.1f} "
        f"total_s={total_s:.1f}"
    )
    return lines


async def test_mixed_load_survives_every_component_failing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    async with Cluster(tmp_path / "cluster") as cluster:
        try:
            run = await run_chaos(cluster, started)
        except BaseException:
            print(cluster.logs())
            raise
        problems = run.findings.problems()
        if problems:
            print(cluster.logs())
    with capsys.disabled():  # the figures belong in the CI log, pass or fail
        print("\n" + "\n".join(report(run, time.monotonic() - started)))
    assert not problems, problems
    accepted = sum(o.accepted for o in run.outcomes)
    assert accepted >= 0.8 * len(run.outcomes), "most requests must get through the faults"


# --- defects found by this suite, pinned -------------------------------------------------
# (The keyed-request-cut-by-a-restart defect is fixed: api/ai.py keeps recording the
# answer in the background, and its test below now guards the fix.)
# Strict xfail: each test states what must hold and fails today because of the named
# defect; once it is fixed the test passes, strict xfail turns that into a failure, and
# the mark must go.

MESSAGE = {
    "to": PATIENTS["pat-1002"][1],
    "templateName": "appointment_confirmation",
    "templateParams": {
        "name": "Andrei",
        "date": "14.03.2031",
        "time": "10:30",
        "location": "Str. Victoriei 10, București",
    },
}


@pytest_asyncio.fixture(scope="module")
async def quiet_cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    """A cluster for the single-fault scenarios below (each leaves it serving)."""
    async with Cluster(tmp_path_factory.mktemp("pinned") / "cluster") as cluster:
        yield cluster


async def message_events(cluster: Cluster, message_id: str, within: float) -> list[str]:
    """The message's events once it has an outcome (Sent/Failed), or after ``within`` s."""
    conn = await asyncpg.connect(cluster.database_url)
    try:
        for _ in range(int(within / 0.5)):
            kinds = [
                r[0]
                for r in await conn.fetch(
                    "SELECT event_type FROM events WHERE stream_id = $1 ORDER BY version",
                    f"message-{message_id}",
                )
            ]
            if {"WhatsAppMessageSent", "WhatsAppMessageFailed"} & set(kinds):
                break
            await asyncio.sleep(0.5)
        return kinds
    finally:
        await conn.close()


async def test_a_message_queued_during_a_temporal_outage_is_delivered_or_failed(
    quiet_cluster: Cluster,
) -> None:
    cluster = quiet_cluster
    client = Client(cluster.api_url, cluster.api_key, deadline_s=60)
    key = f"pinned-outage-{uuid.uuid4().hex[:8]}"
    try:
        async with cluster.temporal_paused():  # hangs past the API's RPC timeout
            first = await client.call("send_whatsapp", MESSAGE, key=key)
        await cluster.wait_ready("worker", within=60)
        retry = await client.call("send_whatsapp", MESSAGE, key=key)
    finally:
        await client.aclose()
    kinds = await message_events(cluster, derived_id(CLINIC, key, "msg"), within=20)
    print(f"first answer {first.error_code or 'ok'}, retry {retry.error_code or 'ok'}: {kinds}")
    if "WhatsAppMessageQueued" in kinds:  # queued: it must get an outcome
        assert {"WhatsAppMessageSent", "WhatsAppMessageFailed"} & set(kinds), kinds


async def test_a_keyed_request_cut_by_a_postgres_restart_answers_once_it_is_back(
    quiet_cluster: Cluster,
) -> None:
    cluster = quiet_cluster
    client = Client(cluster.api_url, cluster.api_key, deadline_s=30)
    key = f"pinned-pg-{uuid.uuid4().hex[:8]}"
    day = weekdays(datetime.now(UTC).date() + timedelta(days=60), 1)[0]
    booking = {"patientId": "pat-1003", "serviceType": "consultation",
               "preferredDate": day.isoformat(), "preferredTimeSlot": "any"}  # fmt: skip
    try:
        async with cluster.temporal_paused():  # holds the request in start_workflow
            call = asyncio.create_task(client.call("schedule_appointment", booking, key=key))
            await asyncio.sleep(1.5)  # consent checked, claim taken, waiting on Temporal
            if client.in_flight != 1:
                raise RuntimeError("the request should be waiting on Temporal by now")
            await asyncio.to_thread(cluster.postgres.stop, "fast")
        await asyncio.sleep(2.0)  # the workflow starts; finish() finds no database
        await asyncio.to_thread(cluster.postgres.start)
        outcome = await call
    finally:
        await client.aclose()
    conn = await asyncpg.connect(cluster.database_url)
    try:
        appointment = f"appointment-{derived_id(CLINIC, key, 'apt')}"
        done = await conn.fetchval(
            "SELECT count(*) FROM events WHERE stream_id = $1 AND event_type = $2",
            appointment,
            "AppointmentRequested",
        )
    finally:
        await conn.close()
    print(f"{outcome.attempts} attempts {Counter(outcome.retry_reasons)}; booked: {done}")
    assert outcome.accepted, (outcome.status, outcome.body)
