"""The worker process: one Temporal Worker per task queue, graceful shutdown.

Queues isolate kinds of work (``settings.task_queue(kind)``): ``bookings``
(BookingWorkflow, BookingAgentWorkflow), ``ai`` (AIPlanWorkflow), ``messaging``
(MessageDeliveryWorkflow and every delivery), ``default`` (the lead and patient
catalogue). Every worker registers every activity, so a workflow may route an
activity to any queue. The client carries the interceptors (tracing, metrics);
workers inherit them and are never given them again. Each worker keeps at most
``settings.worker_cached_workflows`` workflows in memory (``MEDICALCOR_WORKER_CACHED_WORKFLOWS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.appointments import AppointmentActivities
from activities.functions import FunctionActivities
from activities.leads import HubSpotActivities, LeadActivities
from activities.messaging import MessagingActivities
from activities.support import AggregateReader
from adapters.hubspot import HubSpotClient
from adapters.settings import Settings
from adapters.temporal.client import connect_client
from adapters.temporal.gateway import TemporalWorkflowGateway
from adapters.temporal.search_attributes import ensure_search_attributes
from adapters.whatsapp import WhatsAppTransport
from domain.cqrs import CommandExecutor, QueryExecutor
from domain.functions.registry import Registry
from domain.ports import EventStore, Pseudonymizer
from workflows.ai_plan import AIPlanWorkflow
from workflows.booking import BookingWorkflow
from workflows.catalogue import (
    BookingAgentWorkflow,
    LeadScoringWorkflow,
    NurtureSequenceWorkflow,
    PatientJourneyWorkflow,
)
from workflows.message_delivery import MessageDeliveryWorkflow

log = logging.getLogger(__name__)

WORKFLOWS_BY_QUEUE: dict[str, list[type]] = {
    "bookings": [BookingWorkflow, BookingAgentWorkflow],
    "ai": [AIPlanWorkflow],
    "messaging": [MessageDeliveryWorkflow],
    "default": [LeadScoringWorkflow, NurtureSequenceWorkflow, PatientJourneyWorkflow],
}
ALL_WORKFLOWS: list[type] = [w for ws in WORKFLOWS_BY_QUEUE.values() for w in ws]


@dataclass
class WorkerResources:
    """What the activities need; the composition root (or a test) provides it."""

    commands: CommandExecutor
    queries: QueryExecutor
    store: EventStore
    pseudonymizer: Pseudonymizer
    whatsapp: WhatsAppTransport
    hubspot: HubSpotClient | None
    registry: Registry


def activities(client: Client, settings: Settings, r: WorkerResources) -> list[Callable[..., Any]]:
    """Every activity method, bound to its resources."""
    reader = AggregateReader(r.store, r.pseudonymizer)
    gateway = TemporalWorkflowGateway(client, settings, registry=r.registry)
    appointments = AppointmentActivities(r.commands, reader)
    messaging = MessagingActivities(r.commands, reader, r.whatsapp)
    leads = LeadActivities(r.commands, reader)
    hubspot = HubSpotActivities(reader, r.hubspot)
    functions = FunctionActivities(r.registry, r.commands, r.queries, gateway)
    return [
        appointments.request_appointment,
        appointments.confirm_appointment,
        appointments.release_hold,
        appointments.cancel_appointment,
        appointments.reschedule_appointment,
        appointments.complete_appointment,
        appointments.appointment_snapshot,
        appointments.queue_appointment_message,
        appointments.record_reminder_sent,
        messaging.queue_message,
        messaging.deliver_message,
        messaging.record_delivery_failure,
        leads.score_lead,
        leads.assign_lead,
        leads.lead_snapshot,
        hubspot.upsert_contact,
        functions.execute_step,
    ]


def build_workers(
    client: Client,
    settings: Settings,
    resources: WorkerResources,
    *,
    queues: Sequence[str] = tuple(WORKFLOWS_BY_QUEUE),
) -> list[Worker]:
    """One Worker per task queue (inheriting the client's interceptors)."""
    bound = activities(client, settings, resources)
    return [
        Worker(
            client,
            task_queue=settings.task_queue(kind),
            workflows=WORKFLOWS_BY_QUEUE[kind],
            activities=bound,
            max_concurrent_activities=200,
            # A booking waits days for its reminders: with the SDK's default (1,000 per
            # queue) the worker grew by ~0.15 MiB per idle booking for the first thousand
            # (measured while bookings still ran in the sandbox, which keeps a copy of the
            # workflow modules per instance). Evicted (least recently used first), a
            # workflow is replayed from its short history when its next timer fires.
            max_cached_workflows=settings.worker_cached_workflows,
            graceful_shutdown_timeout=timedelta(seconds=10),
        )
        for kind in queues
    ]


@contextlib.asynccontextmanager
async def running(workers: Sequence[Worker]) -> AsyncIterator[None]:
    """Run the workers for the duration of the block; shut them down cleanly after."""
    async with contextlib.AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        yield


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Connect, register search attributes and run every queue until SIGTERM/SIGINT or ``stop``."""
    from adapters.gc_tuning import freeze_startup_heap
    from adapters.telemetry.metrics import start_metrics_server
    from adapters.telemetry.temporal import temporal_runtime_with_prometheus

    stop = stop or asyncio.Event()
    _on_signals(stop)
    runtime = temporal_runtime_with_prometheus(f"0.0.0.0:{settings.temporal_metrics_port}")
    start_metrics_server(settings.worker_metrics_port)
    async with _resources(settings) as resources:
        client = await connect_client(settings, runtime=runtime)
        await ensure_search_attributes(client, settings.temporal_namespace)
        async with running(build_workers(client, settings, resources)):
            freeze_startup_heap("worker")  # start-up done: full collections skip its objects
            log.info("worker running on %s", [settings.task_queue(k) for k in WORKFLOWS_BY_QUEUE])
            await stop.wait()
        log.info("worker stopped")


def _on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


@contextlib.asynccontextmanager
async def _resources(settings: Settings) -> AsyncIterator[WorkerResources]:
    """The worker's resources from the application's container."""
    from adapters.container import build_services  # the one composition root
    from domain.functions import REGISTRY

    services = await build_services(settings)
    try:
        yield WorkerResources(
            commands=services.command_bus,
            queries=services.query_bus,
            store=services.store,
            pseudonymizer=services.pseudonymizer,
            whatsapp=services.whatsapp,
            hubspot=services.hubspot,
            registry=REGISTRY,
        )
    finally:
        await services.aclose()
