"""The outbox relay: every queued WhatsApp message gets exactly one delivery workflow.

Sending is "event first, then a workflow": ``send_whatsapp`` records
WhatsAppMessageQueued, then starts the message-delivery workflow
(``{clinic}:message-delivery:{message id}``). When Temporal is unreachable between the
two (down, hanging past the RPC timeout, the API killed in between), nothing would
ever deliver the message. The relay closes that gap.

What is pending: the relay tails the event log (a checkpoint of its own, below the
same visibility barrier projections use, so an event that commits late with a lower
position is never skipped) and keeps ``outbox_pending``: one row per message from
WhatsAppMessageQueued to its outcome (Sent, Delivered or a permanent Failed).

Who delivers it, and whether its delivery started. Temporal is the authority: a marker
of our own could not be written atomically with a workflow start, so it could claim a
start that never happened, or miss one that did.

* A message queued by an activity belongs to that activity's workflow (booking
  confirmations and reminders, nurture and journey messages, plan steps): the workflow
  delivers it, or starts its delivery, itself and retries through outages.
  ``DeliveryOwnerRecorder`` (a command-bus middleware) records the workflow in
  ``outbox_owners`` BEFORE the message is queued; while it runs, the relay waits.
* Otherwise, once the message has been queued for ``grace``, the relay describes its
  message-delivery workflow: running → in flight, look again later; absent → start it;
  closed while the message is still queued → nobody will ever deliver it (one delivery
  workflow per message id, ever), so the relay records WhatsAppMessageFailed
  (DELIVERY_ABANDONED). A message never handed to a delivery within ``max_age`` is
  failed too (OUTBOX_EXPIRED) rather than sent a day late.

The message's own events are re-read AFTER Temporal answered: an outcome recorded by
a deliverer before it closed is then visible, so a finished delivery is never taken
for a missing one.

Exactly once: the start is the gateway's own ``start_message_delivery`` (workflow id
per message, REJECT_DUPLICATE, USE_EXISTING), so however many relays, API retries or
replicas start a message's delivery, Temporal runs one delivery workflow for it, ever,
and the provider call inside it is keyed by the message id. The leader lock (a session
advisory lock, as the projector uses) spares duplicate work; correctness does not rest
on it. Each pass is bounded: ``batch`` messages, ``tail_batch`` events per read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from adapters.settings import Settings
from adapters.telemetry.metrics import record_outbox_relayed
from adapters.transient import is_transient
from domain.aggregates import Message
from domain.commands import MarkMessageFailed, QueueWhatsAppMessage
from domain.cqrs import Command, CommandContext, CommandExecutor, CommandResult
from domain.errors import DomainError

if TYPE_CHECKING:
    from adapters.cqrs import Next
    from adapters.temporal.gateway import TemporalWorkflowGateway

log = logging.getLogger("medicalcor.outbox_relay")

RELAY_NAME = "outbox-relay"
RELAY_ACTOR = "system:outbox-relay"
RELAY_LOCK = (0x4D434F52, 1)  # "MCOR": the relay's leader lock (session advisory lock)
QUEUED = "WhatsAppMessageQueued"
OUTCOMES = ("WhatsAppMessageSent", "WhatsAppMessageDelivered", "WhatsAppMessageFailed")
EXPIRED = "OUTBOX_EXPIRED"
_DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
ABANDONED = "DELIVERY_ABANDONED"


def delivery_workflow_id(clinic_id: str, message_id: str) -> str:
    """The id ``TemporalWorkflowGateway.start_message_delivery`` gives a message's delivery."""
    return f"{clinic_id}:message-delivery:{message_id}"


# --- SQL --------------------------------------------------------------------------------

_ENSURE_CHECKPOINT = """
INSERT INTO outbox_relay_checkpoint (name) VALUES ($1) ON CONFLICT (name) DO NOTHING
"""
_CHECKPOINT = "SELECT position FROM outbox_relay_checkpoint WHERE name = $1"
_LOCK_CHECKPOINT = "SELECT position FROM outbox_relay_checkpoint WHERE name = $1 FOR UPDATE"
_MOVE_CHECKPOINT = """
UPDATE outbox_relay_checkpoint SET position = $2, updated_at = now() WHERE name = $1
"""

# Message events after ``$1``, and the barrier: every position below it belongs to a
# finished transaction (``adapters.postgres.event_store``), so reading up to it is safe.
_TAIL = """
WITH barrier AS (
    SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint * 65536 AS position
)
SELECT b.position AS barrier, e.global_position, e.clinic_id, e.event_type,
       coalesce(e.data->>'message_id', substr(e.stream_id, 9)) AS message_id,
       coalesce((e.data->>'permanent')::boolean, true) AS permanent,
       e.metadata->>'correlation_id' AS correlation_id, e.recorded_at
  FROM barrier b
  LEFT JOIN LATERAL (
      SELECT * FROM events
       WHERE global_position > $1 AND global_position < b.position
         AND event_type = ANY($2::text[])
       ORDER BY global_position
       LIMIT $3
  ) e ON true
 ORDER BY e.global_position
"""

_PEND = """
INSERT INTO outbox_pending
       (clinic_id, message_id, queued_at, queued_position, correlation_id, check_at)
VALUES ($1, $2, $3::timestamptz, $4, $5, $3::timestamptz + $6::interval)
ON CONFLICT (clinic_id, message_id) DO NOTHING
"""
_FORGET = "DELETE FROM outbox_pending WHERE clinic_id = $1 AND message_id = $2"
_DISOWN = "DELETE FROM outbox_owners WHERE clinic_id = $1 AND message_id = $2"

_DUE = """
SELECT p.clinic_id, p.message_id, p.correlation_id, p.checks, o.workflow_id AS owner,
       extract(epoch FROM now() - p.queued_at)::float8 AS age_s
  FROM outbox_pending p
  LEFT JOIN outbox_owners o ON o.clinic_id = p.clinic_id AND o.message_id = p.message_id
 WHERE p.check_at <= now()
 ORDER BY p.check_at
 LIMIT $1
"""
_LATER = """
UPDATE outbox_pending
   SET check_at = now() + $3::interval, checks = checks + 1,
       relayed_at = CASE WHEN $4 THEN now() ELSE relayed_at END
 WHERE clinic_id = $1 AND message_id = $2
"""

# Settled: sent, delivered, or failed for good (a transient failure leaves it queued).
_SETTLED = """
SELECT coalesce(bool_or(event_type IN ('WhatsAppMessageSent', 'WhatsAppMessageDelivered')
                        OR (event_type = 'WhatsAppMessageFailed'
                            AND coalesce((data->>'permanent')::boolean, true))), false)
  FROM events WHERE clinic_id = $1 AND stream_id = $2
"""

_TRY_LOCK = "SELECT pg_try_advisory_lock($1, $2)"
_UNLOCK = "SELECT pg_advisory_unlock($1, $2)"

_OWN = """
INSERT INTO outbox_owners (clinic_id, message_id, workflow_id) VALUES ($1, $2, $3)
ON CONFLICT (clinic_id, message_id) DO NOTHING
"""
# Owners of messages that were never queued (refused) and are long past caring about.
_PURGE_OWNERS = """
DELETE FROM outbox_owners o
 WHERE o.ctid = ANY (ARRAY(
       SELECT x.ctid FROM outbox_owners x
        WHERE x.recorded_at < now() - $1::interval
          AND NOT EXISTS (SELECT 1 FROM outbox_pending p
                           WHERE p.clinic_id = x.clinic_id AND p.message_id = x.message_id)
        LIMIT $2))
"""


# --- who delivers a message -------------------------------------------------------------


class DeliveryOwnerRecorder:
    """Command-bus middleware: a message queued inside an activity belongs to its workflow.

    Recorded before the command runs (a row for a message that is then refused is
    harmless: the relay only looks at queued messages), so the relay never sees an
    activity's message without knowing who delivers it.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def __call__(self, command: Command, context: CommandContext, nxt: Next) -> CommandResult:
        if isinstance(command, QueueWhatsAppMessage) and activity.in_activity():
            workflow_id = activity.info().workflow_id
            if workflow_id:
                await self._pool.execute(_OWN, context.clinic_id, command.message_id, workflow_id)
        return await nxt(command, context)


# --- Temporal ---------------------------------------------------------------------------


class TemporalUnavailable(Exception):
    """Temporal did not answer (or refused) a relay call; the pass stops here."""


class TemporalDeliveries:
    """The relay's side of Temporal: describe a workflow, start a message's delivery.

    Connects lazily, and afresh after a failure (a new connection rather than waiting
    out a channel's reconnect back-off); every call is bounded by ``timeout`` seconds,
    so a Temporal that hangs costs one timeout per pass, never a stuck relay.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        timeout: float = 5.0,
        connect: Callable[[], Awaitable[Client]] | None = None,
    ) -> None:
        self._settings = settings
        self._timeout = timeout
        self._connect = connect or self._default_connect
        self._gateway: TemporalWorkflowGateway | None = None
        self._client: Client | None = None

    async def _default_connect(self) -> Client:
        from adapters.temporal.client import connect_client

        return await connect_client(self._settings)

    async def _connected(self) -> tuple[Client, TemporalWorkflowGateway]:
        if self._client is None or self._gateway is None:
            from adapters.temporal.gateway import TemporalWorkflowGateway

            client = await asyncio.wait_for(self._connect(), self._timeout)
            self._client = client
            self._gateway = TemporalWorkflowGateway(client, self._settings)
        return self._client, self._gateway

    async def status(self, workflow_id: str) -> WorkflowExecutionStatus | None:
        """The workflow's status; None when Temporal does not know it."""
        try:
            client, _ = await self._connected()
            handle = client.get_workflow_handle(workflow_id)
            rpc_timeout = timedelta(seconds=self._timeout)
            description = await asyncio.wait_for(
                handle.describe(rpc_timeout=rpc_timeout), self._timeout + 1
            )
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise self._unavailable("describe", exc) from exc
        except Exception as exc:
            raise self._unavailable("describe", exc) from exc
        return description.status

    async def start_delivery(
        self, clinic_id: str, message_id: str, correlation_id: str | None
    ) -> str:
        """Start (or find) the message's delivery workflow; its id."""
        context = CommandContext(
            clinic_id=clinic_id,
            actor=RELAY_ACTOR,
            correlation_id=correlation_id or f"{RELAY_NAME}:{message_id}",
        )
        try:
            _, gateway = await self._connected()
            started = await asyncio.wait_for(
                gateway.start_message_delivery(context, message_id), self._timeout
            )
        except Exception as exc:
            raise self._unavailable("start", exc) from exc
        return started.workflow_id

    def _unavailable(self, call: str, exc: BaseException) -> TemporalUnavailable:
        self._client = self._gateway = None  # connect afresh next time
        if isinstance(exc, RPCError) and not is_transient(exc):  # refused, not unreachable
            log.error("outbox relay: Temporal %s failed unexpectedly", call, exc_info=exc)
        if isinstance(exc, TimeoutError):
            return TemporalUnavailable(f"Temporal {call}: no answer within {self._timeout:g}s")
        return TemporalUnavailable(f"Temporal {call} failed: {type(exc).__name__}: {exc}")


# --- the relay --------------------------------------------------------------------------


@dataclass(frozen=True)
class RelayConfig:
    """How the relay paces itself."""

    grace: timedelta = timedelta(seconds=5)
    """How long a message may wait for its own sender to start its delivery."""
    recheck: timedelta = timedelta(seconds=15)
    """First wait before looking again at a message someone is delivering; doubles."""
    max_recheck: timedelta = timedelta(minutes=10)
    max_age: timedelta = timedelta(hours=24)
    """A message never handed to a delivery this long after it was queued is failed."""
    batch: int = 100
    tail_batch: int = 2000
    interval: float = 1.0
    """Seconds between passes when there is nothing left to do."""
    owner_retention: timedelta = timedelta(days=7)


@dataclass
class PassReport:
    """What one pass did: events read, and per message how it was settled."""

    tailed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    temporal_error: str | None = None
    more: bool = False
    """The pass stopped at its bound with more due: run the next one at once."""


@dataclass(frozen=True)
class _Due:
    clinic_id: str
    message_id: str
    correlation_id: str | None
    checks: int
    owner: str | None
    age: timedelta


class OutboxRelay:
    """Finds queued messages nobody delivers and starts their delivery (see the module)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        commands: CommandExecutor,
        temporal: TemporalDeliveries,
        config: RelayConfig | None = None,
    ) -> None:
        self._pool = pool
        self._commands = commands
        self._temporal = temporal
        self._config = config or RelayConfig()
        self._checkpoint_ready = False
        self._passes = 0

    # --- one pass ---------------------------------------------------------------------

    async def run_once(self) -> PassReport:
        """Read new message events, then settle the messages that are due (bounded)."""
        report = PassReport()
        report.tailed = await self.catch_up()
        due = await self._due()
        for item in due:
            try:
                outcome = await self._settle(item)
            except TemporalUnavailable as exc:
                report.temporal_error = str(exc)
                break  # the others stay due: no point timing out once per message
            report.outcomes[outcome] += 1
        report.more = len(due) == self._config.batch and report.temporal_error is None
        await self._pool.execute(_PURGE_OWNERS, self._config.owner_retention, 500)
        return report

    async def catch_up(self, max_batches: int = 10) -> int:
        """Apply message events up to the barrier (at most ``max_batches`` reads)."""
        if not self._checkpoint_ready:
            await self._pool.execute(_ENSURE_CHECKPOINT, RELAY_NAME)
            self._checkpoint_ready = True
        total = 0
        for _ in range(max_batches):
            applied, done = await self._tail()
            total += applied
            if done:
                break
        return total

    async def _tail(self) -> tuple[int, bool]:
        start = await self._pool.fetchval(_CHECKPOINT, RELAY_NAME)
        rows = await self._pool.fetch(_TAIL, start, [QUEUED, *OUTCOMES], self._config.tail_batch)
        events = [r for r in rows if r["global_position"] is not None]
        full = len(events) == self._config.tail_batch
        # A full batch ends at its last event; otherwise everything below the barrier
        # has been seen, and the checkpoint may jump to just below it.
        end = events[-1]["global_position"] if full else max(start, rows[0]["barrier"] - 1)
        if end == start:
            return 0, True
        async with self._pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(_LOCK_CHECKPOINT, RELAY_NAME) != start:
                return 0, True  # another relay moved it meanwhile: read again next pass
            await self._apply(conn, events)
            await conn.execute(_MOVE_CHECKPOINT, RELAY_NAME, end)
        return len(events), not full

    async def _apply(self, conn: Any, events: Sequence[asyncpg.Record]) -> None:
        grace = self._config.grace
        queued = [
            (
                e["clinic_id"],
                e["message_id"],
                e["recorded_at"],
                e["global_position"],
                e["correlation_id"],
                grace,
            )
            for e in events
            if e["event_type"] == QUEUED
        ]
        settled = [
            (e["clinic_id"], e["message_id"])
            for e in events
            if e["event_type"] != QUEUED
            and (e["event_type"] != "WhatsAppMessageFailed" or e["permanent"])
        ]
        # A message queued and settled within one batch nets out: insert, then delete.
        if queued:
            await conn.executemany(_PEND, queued)
        if settled:
            await conn.executemany(_FORGET, settled)
            await conn.executemany(_DISOWN, settled)

    async def _due(self) -> list[_Due]:
        rows = await self._pool.fetch(_DUE, self._config.batch)
        return [
            _Due(
                r["clinic_id"],
                r["message_id"],
                r["correlation_id"],
                r["checks"],
                r["owner"],
                timedelta(seconds=r["age_s"]),
            )
            for r in rows
        ]

    async def _settle(self, item: _Due) -> str:
        """Decide and act for one due message; the outcome's name (see the module)."""
        delivery_id = delivery_workflow_id(item.clinic_id, item.message_id)
        running = WorkflowExecutionStatus.RUNNING
        owned = item.owner is not None and item.owner != delivery_id
        if owned and await self._temporal.status(item.owner or "") == running:
            return await self._later(item, "owned")
        delivery = await self._temporal.status(delivery_id)
        if delivery == running:
            return await self._later(item, "in_flight")
        if await self._settled(item):  # read after Temporal answered (see the module)
            await self._forget(item)
            return "settled"
        if delivery is None and item.age <= self._config.max_age:
            return await self._start(item, delivery_id)
        code = EXPIRED if delivery is None else ABANDONED
        return await self._fail(item, code)

    async def _start(self, item: _Due, delivery_id: str) -> str:
        started = await self._temporal.start_delivery(
            item.clinic_id, item.message_id, item.correlation_id
        )
        if started != delivery_id:  # the gateway's naming moved: this module must follow
            log.error("delivery workflow id %s, expected %s", started, delivery_id)
        record_outbox_relayed("started")
        # A warning: the message's own sender did not start its delivery (an outage).
        log.warning(
            "outbox relay started the delivery of message %s (clinic %s, queued %.1fs ago%s)",
            item.message_id,
            item.clinic_id,
            item.age.total_seconds(),
            f", its workflow {item.owner} has ended" if item.owner else "",
            extra={"clinic_id": item.clinic_id, "message_id": item.message_id},
        )
        return await self._later(item, "started", relayed=True)

    async def _fail(self, item: _Due, code: str) -> str:
        """Record that nobody will deliver the message (once: keyed by the message)."""
        reason = (
            "its delivery workflow ended without sending it"
            if code == ABANDONED
            else f"never handed to a delivery within {self._config.max_age}"
        )
        command = MarkMessageFailed(
            message_id=item.message_id, error_code=code, error_message=reason, permanent=True
        )
        context = CommandContext(
            clinic_id=item.clinic_id,
            actor=RELAY_ACTOR,
            idempotency_key=f"{RELAY_NAME}:{code}:{item.message_id}",
            correlation_id=item.correlation_id,
        )
        try:
            await self._commands.execute(command, context)
        except DomainError as exc:  # e.g. sent meanwhile: look again later
            log.warning("outbox relay could not fail message %s: %s", item.message_id, exc)
            return await self._later(item, "refused")
        outcome = "expired" if code == EXPIRED else "abandoned"
        record_outbox_relayed(outcome)
        log.warning(
            "outbox relay failed message %s (clinic %s): %s",
            item.message_id,
            item.clinic_id,
            reason,
            extra={"clinic_id": item.clinic_id, "message_id": item.message_id},
        )
        await self._forget(item)
        return outcome

    async def _settled(self, item: _Due) -> bool:
        stream_id = Message.stream_id_for(item.message_id)
        return bool(await self._pool.fetchval(_SETTLED, item.clinic_id, stream_id))

    async def _later(self, item: _Due, outcome: str, *, relayed: bool = False) -> str:
        wait = min(self._config.recheck * 2 ** min(item.checks, 16), self._config.max_recheck)
        await self._pool.execute(_LATER, item.clinic_id, item.message_id, wait, relayed)
        return outcome

    async def _forget(self, item: _Due) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_FORGET, item.clinic_id, item.message_id)
            await conn.execute(_DISOWN, item.clinic_id, item.message_id)

    # --- the loop ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, leader_interval: float = 2.0) -> None:
        """Relay until ``stop``: one leader across processes; survives database loss."""
        backoff = 0.5
        while not stop.is_set():
            passes = self._passes
            try:
                await self._lead(stop, leader_interval)
            except _DATABASE_ERRORS as exc:
                if self._passes > passes:  # it had recovered since the last loss
                    backoff = 0.5
                log.warning("outbox relay lost the database (%s); retrying in %.1fs", exc, backoff)
                await _pause(stop, backoff)
                backoff = min(backoff * 2, 10.0)
            except Exception:
                log.exception("outbox relay pass failed; retrying")
                await _pause(stop, 5.0)

    async def _lead(self, stop: asyncio.Event, leader_interval: float) -> None:
        async with self._pool.acquire() as session:
            leading = False
            try:
                while not stop.is_set():
                    if not leading:
                        leading = bool(await session.fetchval(_TRY_LOCK, *RELAY_LOCK))
                        if not leading:
                            await _pause(stop, leader_interval)
                            continue
                        log.info("outbox relay leading")
                    await self._lead_once(stop, session)
            finally:
                # A lost connection takes the lock with it (and may already be detached).
                with contextlib.suppress(*_DATABASE_ERRORS):
                    if leading and not session.is_closed():
                        await session.execute(_UNLOCK, *RELAY_LOCK)

    async def _lead_once(self, stop: asyncio.Event, session: Any) -> None:
        """One pass as the leader, then the pause its outcome calls for."""
        report = await self.run_once()
        self._passes += 1
        if report.temporal_error:
            log.warning("outbox relay: %s; trying again shortly", report.temporal_error)
            await _pause(stop, min(self._config.interval * 3, 5.0))
        elif not report.more:
            await _pause(stop, self._config.interval)
        await session.fetchval("SELECT 1")  # the lock lives with this session: still there?


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


# --- a process's relay ------------------------------------------------------------------


async def run_outbox_relay(
    settings: Settings, database_url: str | None, stop: asyncio.Event
) -> None:
    """The relay of one process (the projector's) until ``stop``: its own pool and client.

    Starts even while PostgreSQL or Temporal is away, and keeps trying.
    """
    from adapters.container import build_services

    backoff = 1.0
    while not stop.is_set():
        try:
            services = await build_services(
                settings, database_url=database_url, pool_min=1, pool_max=4
            )
        except Exception as exc:
            log.warning("outbox relay cannot start yet (%s); retrying in %.0fs", exc, backoff)
            await _pause(stop, backoff)
            backoff = min(backoff * 2, 10.0)
            continue
        try:
            relay = OutboxRelay(services.pool, services.command_bus, TemporalDeliveries(settings))
            await relay.run(stop)
        finally:
            await services.aclose()
