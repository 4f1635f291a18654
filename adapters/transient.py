"""Which failures are a dependency being briefly away, as opposed to a bug or bad input.

A PostgreSQL restart, a dropped connection or a Temporal server that does not answer
are transient: the caller should retry the same request (with the same
Idempotency-Key) and it will succeed once the dependency is back. Everything else is
a real error and is reported as one.
"""

from __future__ import annotations

import asyncpg
from temporalio.service import RPCError, RPCStatusCode

_TRANSIENT_RPC = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.ABORTED,
    }
)

_TRANSIENT_PG: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # CannotConnectNowError, ConnectionDoesNotExist, ...
    asyncpg.InterfaceError,  # the connection was closed under the query
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
)


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) means "a dependency is away, retry"."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (*_TRANSIENT_PG, ConnectionError, TimeoutError)):
            return True
        if isinstance(current, RPCError) and current.status in _TRANSIENT_RPC:
            return True
        if isinstance(current, OSError) and not isinstance(current, FileNotFoundError):
            return True
        current = current.__cause__ or current.__context__
    return False
