"""Chaos: a worker SIGKILLed mid-booking and mid-plan, and a dev-server restart mid-plan.

Each workflow completes on a new worker, and the event store holds each effect
exactly once (one appointment, one message, one score per step): activities are
idempotent by workflow id + activity id, deliveries by the message id.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import Client

from adapters.temporal.client import data_converter
from adapters.temporal.gateway import TemporalWorkflowGateway
from adapters.temporal.search_attributes import ALL_KEYS, ensure_search_attributes
from domain.functions.registry import REGISTRY
from domain.workflow_port import WorkflowStatus
from tests.fakes import Fake360Dialog
from tests.fixtures.temporal import (
    TEMPLATE_COUNTS,
    World,
    binary,
    next_weekday,
    seed_clinic,
    settings_for_test,
    world_context,
)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
HOT = [{"role": "user", "content": "Vreau implant, cat costa? urgent"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DevServer:
    """``temporal server start-dev`` persisted to a SQLite file, restartable on one port."""

    def __init__(self, db: Path) -> None:
        self.db, self.port = db, free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [binary("temporal"), "server", "start-dev", "--headless", "--port", str(self.port),
                "--db-filename", str(self.db), "--log-level", "error"]  # fmt: skip
        for key in ALL_KEYS:
            args += ["--search-attribute", f"{key.name}=Keyword"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def client(self) -> Client:
        for _ in range(150):
            try:
                return await Client.connect(
                    self.address, data_converter=data_converter(settings_for_test())
                )
            except Exception:
                await asyncio.sleep(0.2)
        raise AssertionError("the dev server did not come up")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


class WorkerProcess:
    def __init__(self, address: str, dsn: str, prefix: str, fake: Fake360Dialog) -> None:
        self.args = [sys.executable, "-m", "tests.chaos.worker_process", address, dsn, prefix,
                     fake.url, fake.api_key]  # fmt: skip
        self.proc: subprocess.Popen[str] | None = None

    async def start(self) -> WorkerProcess:
        self.proc = subprocess.Popen(  # noqa: ASYNC220 - starting a process does not block
            self.args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.proc.stdout is not None
        line = await asyncio.to_thread(self.proc.stdout.readline)
        assert line.strip() == "ready", "the worker process did not start"
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[DevServer]:
    server = DevServer(tmp_path / "temporal.db")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture
async def chaos_world(pg_dsn: str) -> AsyncIterator[World]:
    with Fake360Dialog(templates=TEMPLATE_COUNTS) as fake:
        async with world_context(pg_dsn, fake) as world:
            yield world


async def wait_until(gateway: TemporalWorkflowGateway, clinic: str, wid: str, done: Any,
                     within: float = 120) -> WorkflowStatus:  # fmt: skip
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            status = await gateway.status(clinic, wid)
            if done(status):
                return status
        except Exception:  # the server may be restarting
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{wid} did not get there in {within}s")
        await asyncio.sleep(0.05)


def step(status: WorkflowStatus, name: str) -> str:
    return {s.step_id: s.status for s in status.steps}.get(name, "absent")


async def test_worker_killed_mid_booking_books_once_and_messages_once(
    dev_server: DevServer, chaos_world: World, pg_dsn: str
) -> None:
    client = await dev_server.client()
    await ensure_search_attributes(client, "default")
    prefix = f"chaos-{uuid.uuid4().hex[:8]}"
    settings = settings_for_test(task_queue_prefix=prefix)
    gateway = TemporalWorkflowGateway(client, settings, registry=REGISTRY)
    clinic = await seed_clinic(chaos_world.commands)
    chaos_world.whatsapp.fail_next(500, delay_s=1.0)  # the first send is slow, then fails
    first = await WorkerProcess(dev_server.address, pg_dsn, prefix, chaos_world.whatsapp).start()
    try:
        started = await gateway.start_booking(
            clinic.context,
            {
                "patientId": clinic.patient_id,
                "serviceType": "implant",
                "preferredDate": next_weekday().isoformat(),
            },
        )
        wid = started.workflow_id
        await wait_until(gateway, clinic.clinic_id, wid,
                         lambda s: step(s, "confirmation") == "running")  # fmt: skip
        await asyncio.sleep(0.3)  # the send is in flight at the provider
        first.kill()
        second = await WorkerProcess(
            dev_server.address, pg_dsn, prefix, chaos_world.whatsapp
        ).start()
        try:
            status = await wait_until(gateway, clinic.clinic_id, wid,
                                      lambda s: step(s, "confirmation") == "completed")  # fmt: skip
        finally:
            second.stop()
    finally:
        first.stop()
    appointment = wid.rsplit(":", 1)[1]
    assert await chaos_world.events(clinic.clinic_id, f"appointment-{appointment}") == [
        "AppointmentRequested",
        "AppointmentScheduled",
    ]
    kinds = Counter(e.event_type for e in await chaos_world.all_events(clinic.clinic_id))
    assert kinds["SlotHeld"] == kinds["SlotBooked"] == 1
    assert kinds["WhatsAppMessageQueued"] == kinds["WhatsAppMessageSent"] == 1
    assert kinds["WhatsAppMessageFailed"] == 0
    assert status.result["status"] == "scheduled"
    await client.get_workflow_handle(wid).terminate("test over")


async def test_worker_killed_mid_plan_runs_each_step_once(
    dev_server: DevServer, chaos_world: World, pg_dsn: str
) -> None:
    client = await dev_server.client()
    await ensure_search_attributes(client, "default")
    prefix = f"chaos-{uuid.uuid4().hex[:8]}"
    gateway = TemporalWorkflowGateway(client, settings_for_test(task_queue_prefix=prefix),
                                      registry=REGISTRY)  # fmt: skip
    clinic = await seed_clinic(chaos_world.commands)
    phones = [f"+4072333000{i}" for i in range(6)]
    steps: list[dict[str, Any]] = [
        {
            "stepId": f"s{i}",
            "function": "score_lead",
            "dependsOn": [f"s{i - 1}"] if i else [],
            "arguments": {"phone": phone, "channel": "web", "messages": HOT},
        }
        for i, phone in enumerate(phones)
    ]
    first = await WorkerProcess(dev_server.address, pg_dsn, prefix, chaos_world.whatsapp).start()
    try:
        started = await gateway.start_plan(clinic.context, {"steps": steps})
        wid = started.workflow_id
        await wait_until(gateway, clinic.clinic_id, wid, lambda s: step(s, "s2") == "completed")
        first.kill()
        second = await WorkerProcess(
            dev_server.address, pg_dsn, prefix, chaos_world.whatsapp
        ).start()
        try:
            status = await wait_until(gateway, clinic.clinic_id, wid,
                                      lambda s: s.status != "running")  # fmt: skip
        finally:
            second.stop()
    finally:
        first.stop()
    assert status.status == "completed"
    assert all(s.status == "completed" for s in status.steps)
    kinds = Counter(e.event_type for e in await chaos_world.all_events(clinic.clinic_id))
    assert kinds["LeadCreated"] == kinds["LeadScored"] == 6


async def test_dev_server_restart_mid_plan_loses_nothing(
    dev_server: DevServer, chaos_world: World, pg_dsn: str
) -> None:
    client = await dev_server.client()
    await ensure_search_attributes(client, "default")
    prefix = f"chaos-{uuid.uuid4().hex[:8]}"
    gateway = TemporalWorkflowGateway(client, settings_for_test(task_queue_prefix=prefix))
    clinic = await seed_clinic(chaos_world.commands)
    plan = {
        "policy": {"requireApproval": True},
        "steps": [
            {"stepId": "a", "function": "score_lead", "sideEffect": "write",
             "arguments": {"phone": "+40724440001", "channel": "web", "messages": HOT}},
            {"stepId": "b", "function": "score_lead", "sideEffect": "outbound", "dependsOn": ["a"],
             "arguments": {"phone": "+40724440002", "channel": "web", "messages": HOT}},
        ],
    }  # fmt: skip
    worker = await WorkerProcess(dev_server.address, pg_dsn, prefix, chaos_world.whatsapp).start()
    try:
        started = await gateway.start_plan(clinic.context, plan)
        wid = started.workflow_id
        await wait_until(gateway, clinic.clinic_id, wid,
                         lambda s: step(s, "b") == "waiting_approval")  # fmt: skip
        dev_server.stop()
        dev_server.start()
        client = await dev_server.client()
        gateway = TemporalWorkflowGateway(client, settings_for_test(task_queue_prefix=prefix))
        await wait_until(gateway, clinic.clinic_id, wid,
                         lambda s: step(s, "b") == "waiting_approval")  # fmt: skip
        decided = await gateway.decide_step(clinic.clinic_id, wid, "b", approve=True, reason=None)
        assert decided.status == "completed"
        status = await wait_until(gateway, clinic.clinic_id, wid, lambda s: s.status != "running")
    finally:
        worker.stop()
    assert status.status == "completed"
    kinds = Counter(e.event_type for e in await chaos_world.all_events(clinic.clinic_id))
    assert kinds["LeadScored"] == 2
