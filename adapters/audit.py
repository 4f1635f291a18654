"""The gateway's audit trail in PostgreSQL (table ``audit_log``, migration 0031).

One row per gateway function call: actor, API key id, clinic, function, the
authorisation decision (allowed/denied) and its reason, the surface (http, mcp),
request and trace ids, idempotency key. A person's decision on an AI-plan step that
waited for approval is a row too (approved/rejected; migration 0034), its function
the step's. Never arguments or results: no personal data.

``submit`` queues an entry and answers a future that completes once the row is
committed (``record`` waits for it). Concurrent calls are written together: while
one batch is being inserted the next accumulates, so the table costs one round trip
per batch, not per call. The gateway waits for the row before a call changes
anything; a read's answer may leave while its row is in flight, but only while the
log is ``healthy`` (its last batch was written and the backlog is bounded). An entry
a failed batch could not store is written to the error log, never dropped silently.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg
from opentelemetry import context as otel_context

log = logging.getLogger(__name__)

Decision = Literal["allowed", "denied", "approved", "rejected"]
"""allowed/denied: may the key run the function; approved/rejected: a held plan step."""
MAX_FUNCTION_NAME = 100
MAX_BACKLOG = 5000

# One statement per batch. Its commit does not wait for the WAL flush: a change the
# gateway makes after the row is written commits synchronously, and flushing that
# commit flushes this earlier one too, so a recorded decision is never lost while
# the change it allowed survives.
_INSERT = """
INSERT INTO audit_log (clinic_id, actor, key_id, function, decision, reason,
                       surface, request_id, trace_id, idempotency_key)
SELECT rows.* FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                          $6::text[], $7::text[], $8::text[], $9::text[], $10::text[]) AS rows
CROSS JOIN (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
"""


@dataclass(frozen=True)
class AuditEntry:
    """One authorisation decision (field order = the INSERT's columns)."""

    clinic_id: str
    actor: str
    key_id: str | None
    function: str
    decision: Decision
    reason: str | None = None
    surface: str = "http"
    request_id: str | None = None
    trace_id: str | None = None
    idempotency_key: str | None = None

    def row(self) -> tuple[Any, ...]:
        return (
            self.clinic_id,
            self.actor,
            self.key_id,
            self.function[:MAX_FUNCTION_NAME],  # a caller-typed name: bounded
            self.decision,
            self.reason,
            self.surface,
            self.request_id,
            self.trace_id,
            self.idempotency_key,
        )


@dataclass(frozen=True)
class AuditRecord:
    """A stored entry with its id and time (what ``recent`` returns)."""

    id: int
    recorded_at: datetime
    entry: AuditEntry


_Pending = tuple[AuditEntry, "asyncio.Future[None]", otel_context.Context]
"""An entry waiting for its batch, its caller's future and trace context."""


class AuditLog:
    """Group-committed writer and reader of ``audit_log``."""

    def __init__(
        self, pool: asyncpg.Pool, *, max_batch: int = 500, max_backlog: int = MAX_BACKLOG
    ) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._max_backlog = max_backlog
        self._pending: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None
        self._failing = False

    @property
    def healthy(self) -> bool:
        """The last batch was written and the backlog is below its bound."""
        return not self._failing and len(self._pending) < self._max_backlog

    def submit(self, entry: AuditEntry) -> asyncio.Future[None]:
        """Queue ``entry`` for the next batch; the future completes once it is committed."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(_retrieved)
        self._pending.append((entry, done, otel_context.get_current()))
        if self._writer is None or self._writer.done():
            # An empty context: the writer outlives this request and writes other
            # requests' entries too; each batch is traced under its first entry's caller.
            self._writer = asyncio.get_running_loop().create_task(
                self._drain(), context=contextvars.Context()
            )
        return done

    async def record(self, entry: AuditEntry) -> None:
        """Write ``entry``; returns when it is committed (raises if it could not be)."""
        await asyncio.shield(self.submit(entry))

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            token = otel_context.attach(batch[0][2])
            try:
                columns = zip(*(entry.row() for entry, _, _ in batch), strict=True)
                await self._pool.execute(_INSERT, *columns)
            except Exception as exc:
                self._failing = True
                _log_unstored(batch, exc)
                _settle(batch, exc)
            else:
                self._failing = False
                _settle(batch, None)
            finally:
                otel_context.detach(token)

    async def flush(self) -> None:
        """Wait until everything recorded so far is written (shutdown, tests)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def recent(self, clinic_id: str, limit: int = 100) -> list[AuditRecord]:
        """The clinic's latest entries, newest first."""
        rows = await self._pool.fetch(
            """SELECT id, recorded_at, clinic_id, actor, key_id, function, decision, reason,
                      surface, request_id, trace_id, idempotency_key
               FROM audit_log WHERE clinic_id = $1 ORDER BY id DESC LIMIT $2""",
            clinic_id,
            limit,
        )
        return [_record(r) for r in rows]


def _settle(batch: list[_Pending], exc: Exception | None) -> None:
    for _, done, _ in batch:
        if done.done():
            continue
        if exc is None:
            done.set_result(None)
        else:
            done.set_exception(exc)


def _retrieved(done: asyncio.Future[None]) -> None:
    # A read answered while its entry was in flight has no one awaiting the outcome.
    if not done.cancelled():
        done.exception()


def _log_unstored(batch: list[_Pending], exc: Exception) -> None:
    log.error("audit batch of %d entries not stored: %s", len(batch), exc)
    for entry, _, _ in batch:
        log.error("audit entry not stored: %s", asdict(entry), extra={"audit": asdict(entry)})


def _record(row: asyncpg.Record) -> AuditRecord:
    fields = {k: row[k] for k in AuditEntry.__dataclass_fields__}
    return AuditRecord(id=row["id"], recorded_at=row["recorded_at"], entry=AuditEntry(**fields))
