"""The command bus and the query bus.

Command bus: a middleware chain (metrics → tracing span → structured log →
authorisation) around the core, which runs the handler in a fresh ``UnitOfWork``,
appends what the aggregates recorded in ONE atomic append (expected versions, the
command's idempotency key, and the handler's result stored with the events),
retries the whole handler a bounded number of times on ``ConcurrencyConflict``, and
snapshots aggregates that cross their boundary. A command repeated under the same
idempotency key answers the first run's result (``replayed=True``), across
restarts and replicas, because the key lives in PostgreSQL.

Aggregate cache (``domain.cqrs.AggregateCache``, on PostgreSQL-backed stores): a
command may start from the aggregates this process last committed or read instead of
reading their events. Nothing decided on a cached state stands unless PostgreSQL
confirms that state in the same statement: streams written are checked by the
append's expected versions, cached streams only read are passed as read guards
(migration 0080), and an attempt that appends nothing checks their versions before
answering. When the store says otherwise (a conflict, a moved version, a refusal by
the rules), the attempt is run again from the store, without the cache and without
counting against ``max_attempts``. With the crypto-shredding store, an entry also
remembers the subject keys that opened it and is dropped once any is destroyed.

Query bus: authorisation first, then a bounded, clinic-scoped LRU cache with a TTL
whose entries remember the projection position they were computed at; a caller
passing ``min_position`` never gets an older answer: the bus waits (bounded) for
the projections the query reads to reach it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import BaseModel, ValidationError

from adapters.crypto.keys import SubjectKeyStore
from adapters.postgres.event_store import (
    Executor,
    LazyConnection,
    PostgresEventStore,
    bind_command,
    guard_reads,
    record_command_result,
    stored_key,
    stream_versions,
    use_connection,
)
from adapters.queries import QUERY_HANDLERS, QuerySpec, ReadContext
from adapters.shredding_store import CryptoShreddingEventStore, track_subject_keys
from adapters.telemetry.metrics import record_cache, record_command, record_query
from domain import commands as cmds
from domain.cqrs import (
    AggregateCache,
    Command,
    CommandContext,
    CommandHandler,
    CommandResult,
    Query,
    TagCheck,
    UnitOfWork,
)
from domain.errors import (
    ConcurrencyConflict,
    DomainError,
    ExecutionError,
    Forbidden,
    FunctionNotFound,
    IdempotencyKeyReused,
    InvalidArguments,
)
from domain.handlers import COMMAND_HANDLERS
from domain.ports import EventStore, Pseudonymizer, Snapshot

__all__ = [
    "DEFAULT_COMMAND_SCOPES",
    "DEFAULT_QUERY_SCOPES",
    "CommandBus",
    "CommandResult",
    "Middleware",
    "ProjectionsBehind",
    "QueryBus",
    "validate",
]

log = logging.getLogger("medicalcor.cqrs")

M = TypeVar("M", bound=BaseModel)
Next = Callable[[Command, CommandContext], Awaitable[CommandResult]]
Middleware = Callable[[Command, CommandContext, Next], Awaitable[CommandResult]]
"""``async def mw(command, context, next) -> CommandResult``; call ``next`` to go on."""

SUPER_SCOPES = frozenset({"admin", "*"})

_ADMIN_COMMANDS = (cmds.ConfigureClinic, cmds.AddDoctor, cmds.ErasePatient)
_MESSAGING_COMMANDS = (
    cmds.QueueWhatsAppMessage,
    # recording a message's outcome is part of sending it: a key that may send (and
    # the delivery running on its behalf) may record what became of the message
    cmds.MarkMessageSent,
    cmds.MarkMessageDelivered,
    cmds.MarkMessageFailed,
)
DEFAULT_COMMAND_SCOPES: dict[type[Command], str] = {
    **{c: "write" for c in COMMAND_HANDLERS},
    **{c: "admin" for c in _ADMIN_COMMANDS},
    **{c: "messaging" for c in _MESSAGING_COMMANDS},
    cmds.RecordConsent: "consent",
}
"""Scope each command needs (the gateway's scope names; ``admin`` grants everything)."""

DEFAULT_QUERY_SCOPES: dict[type[Query], str] = {q: "read" for q in QUERY_HANDLERS}


def _utc_now() -> datetime:
    return datetime.now(UTC)


# --- validation ------------------------------------------------------------------------


def validate(model: type[M], arguments: Mapping[str, Any]) -> M:
    """Build ``model`` from raw arguments; ``InvalidArguments`` lists every problem.

    Each problem is ``{path, message, expected}`` with a JSON path such as
    ``updates.email`` or ``messages[2].content``.
    """
    try:
        return model.model_validate(arguments)
    except ValidationError as exc:
        errors = [
            {"path": json_path(e["loc"]), "message": e["msg"], "expected": _expected(e)}
            for e in exc.errors(include_url=False)
        ]
        raise InvalidArguments(
            f"invalid arguments for {model.__name__}: "
            + "; ".join(f"{e['path'] or '(root)'}: {e['message']}" for e in errors),
            errors=errors,
        ) from None


def json_path(loc: Sequence[int | str]) -> str:
    """``("messages", 2, "content")`` → ``messages[2].content``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


_EXPECTED = {
    "missing": "a value",
    "string_type": "a string",
    "int_parsing": "an integer",
    "int_type": "an integer",
    "float_parsing": "a number",
    "bool_parsing": "true or false",
    "date_from_datetime_parsing": "a date (YYYY-MM-DD)",
    "date_parsing": "a date (YYYY-MM-DD)",
    "datetime_from_date_parsing": "a date-time (ISO 8601)",
    "datetime_parsing": "a date-time (ISO 8601)",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "extra_forbidden": "no such field",
}


def _expected(error: Mapping[str, Any]) -> str:
    ctx = error.get("ctx") or {}
    if "expected" in ctx:
        return str(ctx["expected"])
    for bound, text in (("min_length", "at least {} long"), ("max_length", "at most {} long")):
        if bound in ctx:
            return text.format(ctx[bound])
    for bound, text in (("ge", "≥ {}"), ("gt", "> {}"), ("le", "≤ {}"), ("lt", "< {}")):
        if bound in ctx:
            return text.format(ctx[bound])
    return _EXPECTED.get(str(error["type"]), str(error["type"]))


def has_scope(granted: frozenset[str], needed: str) -> bool:
    return needed in granted or bool(granted & SUPER_SCOPES)


# --- command middlewares ---------------------------------------------------------------


_tracer: Tracer | None = None
_propagator = TraceContextTextMapPropagator()


def _get_tracer() -> Tracer:
    global _tracer
    if _tracer is None:
        _tracer = trace.get_tracer("medicalcor.cqrs")
    return _tracer


_NO_OP_PROVIDERS = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)


async def tracing_middleware(command: Command, context: CommandContext, nxt: Next) -> CommandResult:
    """One span per command; its W3C trace context goes into the events' metadata."""
    if _untraced(context):
        return await nxt(command, context)
    parent = None
    if context.traceparent and not trace.get_current_span().get_span_context().is_valid:
        carrier = {"traceparent": context.traceparent, "tracestate": context.tracestate or ""}
        parent = _propagator.extract(carrier)
    attributes = {
        "medicalcor.command": command.command_type,
        "medicalcor.clinic_id": context.clinic_id,
    }
    with _get_tracer().start_as_current_span(
        f"command {command.command_type}",
        context=parent,
        kind=SpanKind.INTERNAL,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            result = await nxt(command, _with_span_context(context, span))
        except DomainError as exc:
            span.set_attribute("medicalcor.error_code", exc.code)
            span.set_status(Status(StatusCode.ERROR, exc.code))
            raise
        except Exception as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        span.set_attribute("medicalcor.position", result.position)
        span.set_attribute("medicalcor.replayed", result.replayed)
        return result


def _untraced(context: CommandContext) -> bool:
    """Nobody traces and there is no trace to continue: a span would be a no-op and the
    context would pass unchanged, so the tracing middleware need not make one."""
    return (
        context.traceparent is None
        and not trace.get_current_span().get_span_context().is_valid
        and isinstance(trace.get_tracer_provider(), _NO_OP_PROVIDERS)
    )


def _with_span_context(context: CommandContext, span: Span) -> CommandContext:
    if not span.get_span_context().is_valid:
        return context
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    if "traceparent" not in carrier:
        return context
    return context.model_copy(
        update={"traceparent": carrier["traceparent"], "tracestate": carrier.get("tracestate")}
    )


def _log_fields(command: Command, context: CommandContext, **more: Any) -> dict[str, Any]:
    return {
        "command": command.command_type,
        "clinic_id": context.clinic_id,
        "actor": context.actor,
        "correlation_id": context.correlation_id,
        **more,
    }


def _log_refused(
    command: Command, context: CommandContext, exc: DomainError, started: float
) -> None:
    if log.isEnabledFor(logging.INFO):
        fields = _log_fields(command, context, error_code=exc.code, duration_ms=_ms(started))
        log.info("command %s refused: %s", command.command_type, exc.code, extra=fields)


def _log_failed(command: Command, context: CommandContext, started: float) -> None:
    fields = _log_fields(command, context, duration_ms=_ms(started))
    log.exception("command %s failed", command.command_type, extra=fields)


def _log_done(
    command: Command, context: CommandContext, result: CommandResult, started: float
) -> None:
    if log.isEnabledFor(logging.INFO):
        fields = _log_fields(
            command,
            context,
            duration_ms=_ms(started),
            position=result.position,
            replayed=result.replayed,
        )
        log.info("command %s done", command.command_type, extra=fields)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _check_scope(
    required: Mapping[type[Command], str], command: Command, context: CommandContext
) -> None:
    needed = required.get(type(command))
    if needed and context.scopes and not has_scope(context.scopes, needed):
        raise Forbidden(
            f"{command.command_type} needs the {needed!r} scope",
            required=needed,
            granted=sorted(context.scopes),
        )


def default_pipeline(required: Mapping[type[Command], str], inner: Next) -> Next:
    """metrics → tracing span → structured log → authorisation → ``inner``.

    The four default middlewares written as two coroutines instead of a chain of eight
    calls (the chain's own calls cost about as much as a cached command's handler).
    Scopes are checked when the caller states them; a context without scopes is a
    trusted internal caller (a delegated workflow, the CLI).
    """

    async def logged(command: Command, context: CommandContext) -> CommandResult:
        started = time.perf_counter()
        try:
            _check_scope(required, command, context)
            result = await inner(command, context)
        except DomainError as exc:
            _log_refused(command, context, exc, started)
            raise
        except Exception:
            _log_failed(command, context, started)
            raise
        _log_done(command, context, result, started)
        return result

    async def observed(command: Command, context: CommandContext) -> CommandResult:
        started = time.perf_counter()
        status = "success"
        try:
            if _untraced(context):
                return await logged(command, context)
            return await tracing_middleware(command, context, logged)
        except DomainError as exc:
            status = exc.code
            raise
        except Exception:
            status = "EXECUTION_ERROR"
            raise
        finally:
            record_command(command.command_type, status, time.perf_counter() - started)

    return observed


def _chain(middlewares: Sequence[Middleware], core: Next) -> Next:
    handler = core
    for middleware in reversed(middlewares):
        handler = _link(middleware, handler)
    return handler


def _link(middleware: Middleware, nxt: Next) -> Next:
    async def call(command: Command, context: CommandContext) -> CommandResult:
        return await middleware(command, context, nxt)

    return call


# --- command bus -----------------------------------------------------------------------


def command_fingerprint(command: Command) -> str:
    """What a command's idempotency key is bound to: its type and its arguments."""
    payload = f"{command.command_type}\x1f{command.model_dump_json()}"
    return hashlib.sha256(payload.encode()).hexdigest()


DEFAULT_AGGREGATE_CACHE = 10_000
"""Aggregates a command bus keeps in memory by default (0 turns the cache off)."""


class _CacheStale(Exception):
    """An attempt that used cached aggregates was refused by the store: run it again
    from the store (internal to the bus)."""


class CommandBus:
    """Validates, authorises, runs and records commands (``domain.cqrs.CommandExecutor``)."""

    def __init__(
        self,
        store: EventStore,
        *,
        pool: asyncpg.Pool,
        pseudonymizer: Pseudonymizer,
        handlers: Mapping[type[Command], CommandHandler] = COMMAND_HANDLERS,
        required_scopes: Mapping[type[Command], str] | None = None,
        middlewares: Sequence[Middleware] = (),
        clock: Callable[[], datetime] = _utc_now,
        max_attempts: int = 5,
        aggregate_cache: int | AggregateCache = DEFAULT_AGGREGATE_CACHE,
    ) -> None:
        """``middlewares`` run inside the default chain, just around the core.

        ``aggregate_cache``: how many aggregates to keep in memory (or the cache to
        use); used only over the PostgreSQL store, alone or under crypto-shredding,
        whose appends can confirm cached versions.
        """
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._store = store
        self._pool = pool
        # One connection for a command's reads when every statement of them goes through
        # our own store; a wrapping store may take connections of its own from the same
        # pool, and holding one here while it waits for another could exhaust the pool.
        # Never held over the append: the store's group commit takes one of its own.
        self._hold_connection = isinstance(store, PostgresEventStore) and store.pool is pool
        self._keeps_results = _wraps_postgres(store)
        self._cache, self._check, self._track = _cache_plan(store, aggregate_cache)
        self._pseudonymizer = pseudonymizer
        self._handlers = dict(handlers)
        self._by_name = {c.__name__: c for c in self._handlers}
        self._clock = clock
        self._max_attempts = max_attempts
        scopes = DEFAULT_COMMAND_SCOPES if required_scopes is None else required_scopes
        self._pipeline = default_pipeline(scopes, _chain(middlewares, self._run))

    @property
    def aggregate_cache(self) -> AggregateCache | None:
        """The aggregate cache in use (None when off or the store cannot confirm it)."""
        return self._cache

    async def execute(self, command: Command, context: CommandContext) -> CommandResult:
        """Run a validated command as ``context``'s caller."""
        if type(command) not in self._handlers:
            raise FunctionNotFound(f"no handler for command {type(command).__name__}")
        return await self._pipeline(command, context)

    async def dispatch(
        self,
        command_type: type[Command] | str,
        arguments: Mapping[str, Any],
        context: CommandContext,
    ) -> CommandResult:
        """Validate raw arguments into the command, then execute it.

        Invalid arguments raise ``InvalidArguments`` (with JSON paths) and change nothing.
        """
        cls = self._by_name.get(command_type) if isinstance(command_type, str) else command_type
        if cls is None or cls not in self._handlers:
            raise FunctionNotFound(f"no command named {command_type!r}")
        started = time.perf_counter()
        try:
            command = validate(cls, arguments)
        except InvalidArguments:
            record_command(cls.__name__, InvalidArguments.code, time.perf_counter() - started)
            raise
        return await self.execute(command, context)

    async def _run(self, command: Command, context: CommandContext) -> CommandResult:
        handler = self._handlers[type(command)]
        key = context.idempotency_key
        if key is not None and not self._keeps_results:
            raise ExecutionError(
                "the event store cannot keep command results under idempotency keys",
                store=type(self._store).__name__,
            )
        fingerprint = command_fingerprint(command) if key is not None else ""
        attempt = 0
        reuse = True
        while True:
            attempt += 1
            try:
                return await self._attempt(handler, command, context, key, fingerprint, reuse)
            except _CacheStale:
                # Cached state the store did not confirm: once more from the store, as
                # if the cache had not been there (not an attempt of the caller's).
                assert self._cache is not None
                self._cache.stale += 1
                attempt -= 1
                reuse = False
            except ConcurrencyConflict:
                if attempt >= self._max_attempts:
                    raise
                await asyncio.sleep(random.uniform(0, 0.002 * attempt))

    async def _attempt(
        self,
        handler: CommandHandler,
        command: Command,
        context: CommandContext,
        key: str | None,
        fingerprint: str,
        reuse: bool = True,
    ) -> CommandResult:
        """One run of the handler in a fresh unit of work, then its append.

        The handler's reads share one connection, taken at the first read (none when
        the cache has everything) and given back before the append, which the store
        may group-commit with other commands' appends on a connection of its own.
        """
        uow = UnitOfWork(
            self._store,
            context,
            self._clock(),
            self._pseudonymizer,
            cache=self._cache,
            reuse=reuse,
            check=self._check,
        )
        conn = self._pool
        with self._tracking() as tags:
            held = LazyConnection(self._pool) if self._hold_connection else None
            try:
                with use_connection(held) if held is not None else nullcontext():
                    result = await handler(command, uow)
            except DomainError as exc:
                if uow.cached_versions():  # maybe refused on state that moved on
                    raise _CacheStale from exc
                # A repeat of an applied command may no longer pass the rules
                # ("already exists"): answer the first run's result instead.
                replay = await self._replay(conn, context.clinic_id, key, fingerprint)
                if replay is not None:
                    return replay
                raise
            finally:
                if held is not None:
                    await held.release()
            try:
                return await self._commit(conn, context, uow, result, key, fingerprint, tags)
            except ConcurrencyConflict as exc:  # refused: nothing was written
                if uow.cached_versions():
                    raise _CacheStale from exc
                raise

    def _tracking(self) -> AbstractContextManager[dict[str, set[str]] | None]:
        return self._track() if self._track is not None else nullcontext()

    async def _commit(
        self,
        conn: Executor,
        context: CommandContext,
        uow: UnitOfWork,
        result: dict[str, Any],
        key: str | None,
        fingerprint: str,
        tags: Mapping[str, set[str]] | None = None,
    ) -> CommandResult:
        appends = uow.pending_appends()
        clinic_id = context.clinic_id
        if not appends:
            await self._confirm_cached(conn, clinic_id, uow)
            self._remember(clinic_id, uow, tags)
            if key is None:
                return CommandResult(result=result)
            stored = await record_command_result(conn, clinic_id, key, fingerprint, result)
            return (
                CommandResult(result=result)
                if stored is None
                else _replayed(stored, key, fingerprint)
            )
        metadata = context.metadata()
        guards = uow.read_guards()
        with guard_reads(guards) if guards else nullcontext() as guarded:
            if key is None:
                appended = await self._store.append(clinic_id, appends, metadata=metadata)
            else:
                with bind_command(key, fingerprint, result) as binding:
                    appended = await self._store.append(
                        clinic_id, appends, metadata=metadata, idempotency_key=key
                    )
                if not binding.honoured:  # a wrapper that changed the key: the events are in
                    raise ExecutionError(
                        "the event store did not keep the command's result under its key",
                        store=type(self._store).__name__,
                        position=appended.last_position,
                    )
                if appended.replayed:
                    return CommandResult(
                        result=binding.stored_result or {},
                        stream_versions=appended.stream_versions,
                        position=appended.last_position,
                        replayed=True,
                    )
        if guarded is not None and not guarded.honoured:  # cannot happen: see _cache_plan
            raise ExecutionError(
                "the event store did not check the cached aggregates' versions",
                store=type(self._store).__name__,
                position=appended.last_position,
            )
        self._remember(clinic_id, uow, tags)
        await self._save_snapshots(clinic_id, uow)
        return CommandResult(
            result=result, stream_versions=appended.stream_versions, position=appended.last_position
        )

    async def _confirm_cached(self, conn: Executor, clinic_id: str, uow: UnitOfWork) -> None:
        """Nothing to append: the cached aggregates the answer rests on must be current."""
        cached = uow.cached_versions()
        if cached and await stream_versions(conn, clinic_id, list(cached)) != cached:
            raise _CacheStale

    def _remember(
        self, clinic_id: str, uow: UnitOfWork, tags: Mapping[str, set[str]] | None
    ) -> None:
        """Cache the attempt's aggregates as stored now (called once its outcome stands)."""
        if self._cache is not None:
            for entry in uow.cache_entries(tags):
                self._cache.put(clinic_id, entry)

    async def _replay(
        self, conn: Executor, clinic_id: str, key: str | None, fingerprint: str
    ) -> CommandResult | None:
        if key is None:
            return None
        stored = await stored_key(conn, clinic_id, key)
        return None if stored is None else _replayed(stored, key, fingerprint)

    async def _save_snapshots(self, clinic_id: str, uow: UnitOfWork) -> None:
        for agg in uow.snapshot_candidates():
            snapshot = Snapshot(
                stream_id=agg.stream_id,
                version=agg.version + len(agg.pending_events),
                state=agg.snapshot_state(),
            )
            try:
                await self._store.save_snapshot(clinic_id, snapshot)
            except (asyncpg.PostgresError, OSError) as exc:  # the events are committed
                log.warning("snapshot of %s not saved: %s", agg.stream_id, exc)


def _cache_plan(
    store: object, cache: int | AggregateCache
) -> tuple[
    AggregateCache | None,
    TagCheck | None,
    Callable[[], AbstractContextManager[dict[str, set[str]]]] | None,
]:
    """The aggregate cache for ``store``, how entries' tags are checked and collected.

    Only stores whose appends confirm cached versions (read guards, expected versions
    checked in the append's statement) get one: PostgreSQL, alone or under the
    crypto-shredding store (whose entries carry the subject keys that opened them).
    """
    if isinstance(cache, int):
        if cache <= 0:
            return None, None, None
        cache = AggregateCache(cache)
    if isinstance(store, PostgresEventStore):
        return cache, None, None
    if isinstance(store, CryptoShreddingEventStore) and isinstance(store.inner, PostgresEventStore):
        return cache, store.keys_live, track_subject_keys
    return None, None, None


def _wraps_postgres(store: object, depth: int = 5) -> bool:
    """True when ``store`` is, or wraps (``.inner``), the PostgreSQL event store, which
    keeps a command's result with its events under the idempotency key."""
    for _ in range(depth):
        if isinstance(store, PostgresEventStore):
            return True
        store = getattr(store, "inner", None)
    return False


def _replayed(stored: Any, key: str, fingerprint: str) -> CommandResult:
    if stored.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            "idempotency key was already used for a different command", idempotencyKey=key
        )
    return CommandResult(
        result=stored.result or {},
        stream_versions=stored.stream_versions,
        position=stored.last_position,
        replayed=True,
    )


# --- query bus -------------------------------------------------------------------------


class ProjectionsBehind(ExecutionError):
    """The projections a query reads did not reach the caller's position in time."""


@dataclass(frozen=True)
class _Entry:
    value: Any
    position: int
    expires: float


class QueryCache:
    """Bounded LRU of answers keyed by (clinic, query type, arguments), with a TTL."""

    def __init__(self, size: int, ttl: float) -> None:
        self._size = size
        self._ttl = ttl
        self._entries: OrderedDict[tuple[str, str, str], _Entry] = OrderedDict()

    def get(self, key: tuple[str, str, str], now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: tuple[str, str, str], value: Any, position: int, now: float) -> None:
        if self._size <= 0 or self._ttl <= 0:
            return
        current = self._entries.get(key)
        if current is not None and current.position > position and current.expires > now:
            return  # never replace a newer answer with an older one
        self._entries[key] = _Entry(value, position, now + self._ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every answer (keys were destroyed: answers may hold erased data)."""
        self._entries.clear()


_CHECKPOINTS = "SELECT name, position FROM projection_checkpoints WHERE name = ANY($1::text[])"


class QueryBus:
    """Answers queries from the read models (``domain.cqrs.QueryExecutor``)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        handlers: Mapping[type[Query], QuerySpec] = QUERY_HANDLERS,
        pseudonymizer: Pseudonymizer | None = None,
        keys: SubjectKeyStore | None = None,
        required_scopes: Mapping[type[Query], str] | None = None,
        cache_size: int = 2048,
        cache_ttl: float = 5.0,
        wait_timeout: float = 2.0,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._pool = pool
        self._handlers = dict(handlers)
        self._pseudonymizer = pseudonymizer
        self._keys = keys  # opens the personal values the read models keep sealed
        self._scopes = DEFAULT_QUERY_SCOPES if required_scopes is None else required_scopes
        self._cache = QueryCache(cache_size, cache_ttl)
        self._wait_timeout = wait_timeout
        self._clock = clock

    @property
    def cache(self) -> QueryCache:
        return self._cache

    async def ask(
        self, query: Query, context: CommandContext, *, min_position: int | None = None
    ) -> Any:
        """The answer, computed at or after ``min_position`` when one is given."""
        started = time.perf_counter()
        spec = self._handlers.get(type(query))
        if spec is None:
            raise FunctionNotFound(f"no handler for query {type(query).__name__}")
        self._authorize(query, context)
        key = (context.clinic_id, query.query_type, query.model_dump_json())
        entry = self._cache.get(key, time.monotonic())
        if entry is not None and (min_position is None or entry.position >= min_position):
            record_cache(query.query_type, "hit")
            record_query(query.query_type, True, time.perf_counter() - started)
            return entry.value
        record_cache(query.query_type, "miss" if entry is None else "stale")
        position = await self._reached(spec.projections, min_position)
        read = ReadContext(
            self._pool, context.clinic_id, self._clock(), self._pseudonymizer, self._keys
        )
        value = await spec.handler(query, read)
        self._cache.put(key, value, position, time.monotonic())
        record_query(query.query_type, False, time.perf_counter() - started)
        return value

    async def dispatch(
        self,
        query_type: type[Query] | str,
        arguments: Mapping[str, Any],
        context: CommandContext,
        *,
        min_position: int | None = None,
    ) -> Any:
        """Validate raw arguments into the query (``InvalidArguments``), then ask it."""
        by_name = {q.__name__: q for q in self._handlers}
        cls = by_name.get(query_type) if isinstance(query_type, str) else query_type
        if cls is None or cls not in self._handlers:
            raise FunctionNotFound(f"no query named {query_type!r}")
        return await self.ask(validate(cls, arguments), context, min_position=min_position)

    def _authorize(self, query: Query, context: CommandContext) -> None:
        needed = self._scopes.get(type(query))
        if needed and context.scopes and not has_scope(context.scopes, needed):
            raise Forbidden(
                f"{query.query_type} needs the {needed!r} scope",
                required=needed,
                granted=sorted(context.scopes),
            )

    async def positions(self, names: Sequence[str]) -> dict[str, int]:
        """Each named projection's checkpoint (0 when it never ran)."""
        rows = await self._pool.fetch(_CHECKPOINTS, list(names))
        found = {r["name"]: r["position"] for r in rows}
        return {n: found.get(n, 0) for n in names}

    async def _reached(self, names: Sequence[str], min_position: int | None) -> int:
        """The position the projections have all reached, waiting for ``min_position``."""
        if not names:
            return 0
        deadline = time.monotonic() + self._wait_timeout
        delay = 0.002
        while True:
            positions = await self.positions(names)
            reached = min(positions.values())
            if min_position is None or reached >= min_position:
                return reached
            if time.monotonic() >= deadline:
                behind = {n: p for n, p in positions.items() if p < min_position}
                raise ProjectionsBehind(
                    "the read models have not caught up with the requested position yet",
                    minPosition=min_position,
                    projections=behind,
                    waitedSeconds=self._wait_timeout,
                )
            await asyncio.sleep(min(delay, max(deadline - time.monotonic(), 0)))
            delay = min(delay * 2, 0.05)
