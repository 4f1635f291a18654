"""The outbox relay on PostgreSQL and the Temporal dev server, through a cuttable link.

The "API side" (``send_whatsapp`` on the production container) and the relay reach
Temporal through a loopback TCP proxy the test cuts and restores; the worker talks to
the dev server directly. A message queued while the link is cut gets no delivery
workflow; once the link is back, the relay starts one, and the message reaches the
sandbox outbox exactly once, with one WhatsAppMessageSent and one delivery workflow,
even with two relays running and the original request retried afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client import REGISTRY
from temporalio import workflow
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RetryConfig, RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.messaging import MessagingActivities
from activities.payloads import QueueMessagePayload
from adapters.container import Services, build_services
from adapters.outbox_relay import (
    RELAY_LOCK,
    OutboxRelay,
    RelayConfig,
    TemporalDeliveries,
    delivery_workflow_id,
)
from adapters.settings import Settings
from adapters.temporal.client import data_converter
from adapters.temporal.gateway import TemporalWorkflowGateway
from adapters.temporal.payloads import Caller
from adapters.transient import is_transient
from domain.cqrs import CommandContext
from domain.functions.context import FunctionContext
from domain.functions.registry import REGISTRY as FUNCTIONS
from tests.fixtures.stack import free_port, temporal_address
from tests.fixtures.temporal import ALL_SCOPES, Clinic, seed_clinic, settings_for_test
from workflows.worker import WorkerResources, activities, build_workers, running

TEMPLATE = "appointment_confirmation"  # a booking message: no cooldown, never limited
PARAMS = {"name": "Ana", "date": "14.03.2031", "time": "10:30", "location": "Str. Lunii 3"}
FAST = RelayConfig(
    grace=timedelta(seconds=0.3),
    recheck=timedelta(seconds=0.3),
    max_recheck=timedelta(seconds=1),
    interval=0.1,
)
API_TIMEOUT_S = 3.0  # the API's wait for Temporal, as its RPC timeout would cut it


class TcpProxy:
    """A loopback TCP proxy in front of Temporal that the test can cut and restore."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self._target = (host, int(port))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def down(self) -> None:
        """Refuse new connections and break every open one."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._links |= {writer, upstream_writer}
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )
        self._links -= {writer, upstream_writer}

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()


@dataclass
class Outbox:
    """The production container, a cuttable link to Temporal, and a worker behind it."""

    services: Services
    settings: Settings
    proxy: TcpProxy
    temporal: Client
    """Straight to the dev server (the test's own view; never through the proxy)."""
    api_gateway: TemporalWorkflowGateway
    """The API's workflow gateway, through the proxy."""
    clinic: Clinic

    async def send(self, key: str | None = None) -> dict[str, Any]:
        """``send_whatsapp`` (a booking confirmation) as the API runs it."""
        spec = FUNCTIONS.specs["send_whatsapp"]
        command = CommandContext(
            clinic_id=self.clinic.clinic_id,
            actor="test:agent",
            idempotency_key=key,
            scopes=frozenset(ALL_SCOPES),
        )
        ctx = FunctionContext(
            command=command,
            commands=self.services.command_bus,
            queries=self.services.query_bus,
            workflows=self.api_gateway,
            now=datetime.now(UTC),
        )
        arguments = {
            "to": self.clinic.phone,
            "patientId": self.clinic.patient_id,
            "templateName": TEMPLATE,
            "templateParams": PARAMS,
        }
        call = spec.run(spec.validate(arguments), ctx)
        return (await asyncio.wait_for(call, API_TIMEOUT_S)).wire()

    def message_id(self, key: str) -> str:
        """The message id ``send_whatsapp`` derives from an idempotency key."""
        command = CommandContext(
            clinic_id=self.clinic.clinic_id, actor="test:agent", idempotency_key=key
        )
        ctx = FunctionContext(command, None, None, None, datetime.now(UTC))  # type: ignore[arg-type]
        return ctx.new_id("msg")

    async def events(self, message_id: str) -> list[str]:
        rows = await self.services.pool.fetch(
            "SELECT event_type FROM events WHERE clinic_id = $1 AND stream_id = $2"
            " ORDER BY version",
            self.clinic.clinic_id,
            f"message-{message_id}",
        )
        return [r["event_type"] for r in rows]

    async def sandbox_rows(self, message_id: str) -> int:
        count = await self.services.pool.fetchval(
            "SELECT count(*) FROM whatsapp_sandbox_outbox WHERE idempotency_key = $1", message_id
        )
        return int(count)

    async def deliveries(self, message_id: str) -> list[WorkflowExecutionStatus | None]:
        """Every execution of the message's delivery workflow id, as Temporal lists them."""
        wid = delivery_workflow_id(self.clinic.clinic_id, message_id)
        return [e.status async for e in self.temporal.list_workflows(f"WorkflowId = '{wid}'")]

    async def delivery_status(self, message_id: str) -> WorkflowExecutionStatus | None:
        wid = delivery_workflow_id(self.clinic.clinic_id, message_id)
        try:
            return (await self.temporal.get_workflow_handle(wid).describe()).status
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise

    async def pending(self, message_id: str) -> bool:
        row = await self.services.pool.fetchval(
            "SELECT 1 FROM outbox_pending WHERE clinic_id = $1 AND message_id = $2",
            self.clinic.clinic_id,
            message_id,
        )
        return row is not None

    def relay(self, config: RelayConfig = FAST) -> OutboxRelay:
        """A relay reaching Temporal through the proxy, as the API does."""
        temporal = TemporalDeliveries(self.settings, timeout=2.0)
        return OutboxRelay(self.services.pool, self.services.command_bus, temporal, config)


def relayed(outcome: str) -> float:
    value = REGISTRY.get_sample_value("medicalcor_outbox_relayed_total", {"outcome": outcome})
    return value or 0.0


async def until(what: str, check: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not within {within:.0f} s")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def relays_running(*relays: OutboxRelay) -> AsyncIterator[None]:
    """The relays' loops (leader election included) for the duration of the block."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop, leader_interval=0.2)) for r in relays]
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 15)


@pytest_asyncio.fixture(scope="module")
async def outbox(pg_dsn: str, temporal_env: WorkflowEnvironment) -> AsyncIterator[Outbox]:
    proxy = TcpProxy(temporal_address(temporal_env))
    await proxy.up()
    settings = settings_for_test(database_url=pg_dsn, temporal_address=proxy.address)
    services = await build_services(settings, pool_min=1, pool_max=10)
    try:
        clinic = await seed_clinic(services.command_bus)
        # No client-side retries: a start that failed must not land later on its own
        # (which is harmless, one workflow per message, but would race the assertions).
        api_client = await Client.connect(
            proxy.address,
            data_converter=data_converter(settings),
            retry_config=RetryConfig(max_retries=0),
        )
        resources = WorkerResources(
            commands=services.command_bus,
            queries=services.query_bus,
            store=services.store,
            pseudonymizer=services.pseudonymizer,
            whatsapp=services.whatsapp,  # the sandbox transport: rows in PostgreSQL
            hubspot=None,
            registry=FUNCTIONS,
        )
        workers = build_workers(temporal_env.client, settings, resources, queues=["messaging"])
        async with running(workers):
            yield Outbox(
                services,
                settings,
                proxy,
                temporal_env.client,
                TemporalWorkflowGateway(api_client, settings, registry=FUNCTIONS),
                clinic,
            )
    finally:
        await proxy.down()
        await services.aclose()


async def queue_during_outage(outbox: Outbox, key: str) -> str:
    """``send_whatsapp`` while Temporal is unreachable: queued, no delivery started."""
    await outbox.proxy.down()
    with pytest.raises(Exception) as failed:
        await outbox.send(key)
    assert is_transient(failed.value), repr(failed.value)
    message_id = outbox.message_id(key)
    assert await outbox.events(message_id) == ["WhatsAppMessageQueued"]
    assert await outbox.delivery_status(message_id) is None
    return message_id


async def test_a_message_queued_while_temporal_is_unreachable_is_delivered_once(
    outbox: Outbox,
) -> None:
    key = f"outage-{uuid.uuid4().hex}"
    message_id = await queue_during_outage(outbox, key)
    first, second = outbox.relay(), outbox.relay()

    # Temporal still unreachable: the relay tries, reports it, starts nothing.
    await asyncio.sleep(FAST.grace.total_seconds())
    report = await first.run_once()
    assert report.tailed >= 1
    assert report.temporal_error is not None
    assert report.outcomes["started"] == 0
    assert await outbox.pending(message_id)
    assert await outbox.delivery_status(message_id) is None

    started_before = relayed("started")
    await outbox.proxy.up()
    async with relays_running(first, second):  # two processes' relays: one leads
        await until("the message is sent", lambda: _sent(outbox, message_id))
        await until("the relay forgets it", lambda: _not_pending(outbox, message_id))
        leaders = await outbox.services.pool.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 2",
            *RELAY_LOCK,
        )
        assert leaders == 1
        await asyncio.sleep(1.0)  # several more passes: nothing more to do

    assert relayed("started") - started_before == 1
    assert await outbox.events(message_id) == ["WhatsAppMessageQueued", "WhatsAppMessageSent"]
    assert await outbox.sandbox_rows(message_id) == 1
    assert await outbox.deliveries(message_id) == [WorkflowExecutionStatus.COMPLETED]

    # The client retries its request (same key) now that Temporal answers: the same
    # message and the same delivery workflow; nothing is sent twice.
    retried = await outbox.send(key)
    assert retried["messageId"] == message_id
    assert retried["deliveryWorkflowId"] == delivery_workflow_id(
        outbox.clinic.clinic_id, message_id
    )
    assert await outbox.events(message_id) == ["WhatsAppMessageQueued", "WhatsAppMessageSent"]
    assert await outbox.sandbox_rows(message_id) == 1
    assert await outbox.deliveries(message_id) == [WorkflowExecutionStatus.COMPLETED]


async def _sent(outbox: Outbox, message_id: str) -> bool:
    return "WhatsAppMessageSent" in await outbox.events(message_id)


async def _not_pending(outbox: Outbox, message_id: str) -> bool:
    return not await outbox.pending(message_id)


async def test_a_message_whose_delivery_started_is_left_to_it(outbox: Outbox) -> None:
    """The normal path: the API started the delivery; the relay never starts another."""
    await outbox.proxy.up()
    started_before = relayed("started")
    sent = await outbox.send()
    message_id = sent["messageId"]
    await until("the message is sent", lambda: _sent(outbox, message_id))
    relay = outbox.relay()
    await asyncio.sleep(FAST.grace.total_seconds())
    for _ in range(3):
        await relay.run_once()
    assert relayed("started") == started_before
    assert not await outbox.pending(message_id)
    assert await outbox.deliveries(message_id) == [WorkflowExecutionStatus.COMPLETED]


@workflow.defn(name="OutboxRelayTestHolder", sandboxed=False)
class QueueThenHold:
    """Queues a message through the messaging activity, then holds it undelivered."""

    @workflow.run
    async def run(self, payload: QueueMessagePayload) -> None:
        await workflow.execute_activity_method(
            MessagingActivities.queue_message,
            payload,
            start_to_close_timeout=timedelta(seconds=30),
        )
        await workflow.wait_condition(lambda: False)


async def test_a_workflows_own_message_is_left_to_it_until_it_ends(
    outbox: Outbox, temporal_env: WorkflowEnvironment
) -> None:
    await outbox.proxy.up()
    message_id = f"msg-{uuid.uuid4().hex}"
    queue = f"{outbox.settings.task_queue_prefix}-holder"
    holder_id = f"{outbox.clinic.clinic_id}:holder:{uuid.uuid4().hex[:8]}"
    resources = WorkerResources(
        commands=outbox.services.command_bus,
        queries=outbox.services.query_bus,
        store=outbox.services.store,
        pseudonymizer=outbox.services.pseudonymizer,
        whatsapp=outbox.services.whatsapp,
        hubspot=None,
        registry=FUNCTIONS,
    )
    bound = activities(temporal_env.client, outbox.settings, resources)
    payload = QueueMessagePayload(
        caller=Caller(clinic_id=outbox.clinic.clinic_id, actor="test:workflow"),
        message_id=message_id,
        to=outbox.clinic.phone,
        patient_id=outbox.clinic.patient_id,
        template_name=TEMPLATE,
        template_params=PARAMS,
    )
    relay = outbox.relay()
    started_before = relayed("started")
    worker = Worker(
        temporal_env.client, task_queue=queue, workflows=[QueueThenHold], activities=bound
    )
    async with worker:
        handle = await temporal_env.client.start_workflow(
            QueueThenHold.run, payload, id=holder_id, task_queue=queue
        )
        await until("queued", lambda: _queued(outbox, message_id))
        owner = await outbox.services.pool.fetchval(
            "SELECT workflow_id FROM outbox_owners WHERE clinic_id = $1 AND message_id = $2",
            outbox.clinic.clinic_id,
            message_id,
        )
        assert owner == holder_id
        await asyncio.sleep(FAST.grace.total_seconds() + 0.2)
        report = await relay.run_once()
        assert report.outcomes == {"owned": 1}
        assert await outbox.delivery_status(message_id) is None

        await handle.terminate("the test ends it before it delivers")
        await asyncio.sleep(FAST.max_recheck.total_seconds())
        report = await relay.run_once()

    assert report.outcomes == {"started": 1}
    assert relayed("started") - started_before == 1
    await until("the message is sent", lambda: _sent(outbox, message_id))
    assert await outbox.events(message_id) == ["WhatsAppMessageQueued", "WhatsAppMessageSent"]
    assert await outbox.sandbox_rows(message_id) == 1
    await until("the relay forgets it", lambda: _forgotten(relay, outbox, message_id))


async def _queued(outbox: Outbox, message_id: str) -> bool:
    return bool(await outbox.events(message_id))


async def _forgotten(relay: OutboxRelay, outbox: Outbox, message_id: str) -> bool:
    await relay.catch_up()
    return not await outbox.pending(message_id)


async def test_a_delivery_that_ended_without_sending_is_recorded_failed(
    outbox: Outbox, temporal_env: WorkflowEnvironment
) -> None:
    await outbox.proxy.up()
    sent = await _send_to_nobody(outbox, temporal_env)
    message_id = sent["messageId"]
    wid = delivery_workflow_id(outbox.clinic.clinic_id, message_id)
    await temporal_env.client.get_workflow_handle(wid).terminate("lost")
    abandoned_before = relayed("abandoned")
    relay = outbox.relay()
    await asyncio.sleep(FAST.grace.total_seconds())

    report = await relay.run_once()

    assert report.outcomes == {"abandoned": 1}
    assert relayed("abandoned") - abandoned_before == 1
    assert await outbox.events(message_id) == ["WhatsAppMessageQueued", "WhatsAppMessageFailed"]
    failure = await outbox.services.pool.fetchval(
        "SELECT data->>'error_code' FROM events WHERE clinic_id = $1 AND stream_id = $2"
        " AND event_type = 'WhatsAppMessageFailed'",
        outbox.clinic.clinic_id,
        f"message-{message_id}",
    )
    assert failure == "DELIVERY_ABANDONED"
    assert await outbox.sandbox_rows(message_id) == 0
    assert await outbox.deliveries(message_id) == [WorkflowExecutionStatus.TERMINATED]


async def _send_to_nobody(outbox: Outbox, temporal_env: WorkflowEnvironment) -> dict[str, Any]:
    """A send whose delivery workflow waits on a task queue no worker polls."""
    elsewhere = settings_for_test(
        database_url=outbox.settings.database_url, temporal_address=outbox.proxy.address
    )
    nobody = TemporalWorkflowGateway(temporal_env.client, elsewhere, registry=FUNCTIONS)
    saved, outbox.api_gateway = outbox.api_gateway, nobody
    try:
        return await outbox.send()
    finally:
        outbox.api_gateway = saved


async def test_a_message_too_old_to_send_is_failed_not_sent_late(outbox: Outbox) -> None:
    key = f"stale-{uuid.uuid4().hex}"
    message_id = await queue_during_outage(outbox, key)
    await outbox.proxy.up()
    stale = RelayConfig(grace=timedelta(seconds=0.1), max_age=timedelta(seconds=0.2))
    expired_before, started_before = relayed("expired"), relayed("started")
    await asyncio.sleep(0.5)

    report = await outbox.relay(stale).run_once()

    assert report.outcomes == {"expired": 1}
    assert relayed("expired") - expired_before == 1
    assert relayed("started") == started_before
    assert await outbox.events(message_id) == ["WhatsAppMessageQueued", "WhatsAppMessageFailed"]
    assert await outbox.delivery_status(message_id) is None
    assert await outbox.sandbox_rows(message_id) == 0
