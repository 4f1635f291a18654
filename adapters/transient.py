"""Which failures are a dependency being briefly away, as opposed to a bug or bad input.

A PostgreSQL restart, a dropped connection or a Temporal server that does not answer
are transient: the caller should retry the same request (with the same
Idempotency-Key) and it will succeed once the dependency is back. Everything else is
a real error and is reported as one.
"""

from __future__ import annotations

import errno
import socket

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


_NOT_TRANSIENT_PG: tuple[type[BaseException], ...] = (
    asyncpg.DataError,  # a value the client cannot encode: bad input, retrying won't help
    asyncpg.ClientConfigurationError,
    asyncpg.UnsupportedClientFeatureError,
)

_NETWORK_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNREFUSED",
        "ECONNRESET",
        "ECONNABORTED",
        "EPIPE",
        "ETIMEDOUT",
        "EHOSTUNREACH",
        "EHOSTDOWN",
        "ENETUNREACH",
        "ENETDOWN",
        "ENETRESET",
        "EADDRNOTAVAIL",
        "EAGAIN",
    )
    if hasattr(errno, name)
)
"""Socket errors of a peer or a network being away (not a missing file or a permission)."""


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) means "a dependency is away, retry"."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _is_outage(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _is_outage(exc: BaseException) -> bool:
    if isinstance(exc, _NOT_TRANSIENT_PG):
        return False
    if isinstance(exc, (*_TRANSIENT_PG, ConnectionError, TimeoutError, socket.gaierror)):
        return True
    if isinstance(exc, RPCError):
        return exc.status in _TRANSIENT_RPC
    return isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS
