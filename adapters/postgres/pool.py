"""asyncpg pools with the codecs every MedicalCor connection needs.

``json``/``jsonb`` values travel as Python objects encoded with the standard
library's ``json`` (compact separators), so callers pass dicts and lists and get
them back. JIT is switched off: the store's statements are short, planned once and
executed thousands of times, where JIT compilation only adds latency.

Released connections are NOT reset on the server by default (asyncpg's default
reset is one more round trip per acquire, ~a third of a command's cost). A release
still rolls back an open transaction and drops Python-side listeners, but code that
changes session state on a pooled connection (``SET``, session advisory locks,
``LISTEN``) must undo it before releasing it, or use :func:`connect`, or create the
pool with ``reset_session=True``.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

DEFAULT_SERVER_SETTINGS = {"jit": "off"}


def dumps(value: Any) -> str:
    """JSON text for a ``json``/``jsonb`` parameter."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def init_connection(conn: asyncpg.Connection) -> None:
    """Install the JSON codecs on a new connection (the pool's ``init`` hook)."""
    for type_name in ("jsonb", "json"):
        await conn.set_type_codec(
            type_name, encoder=dumps, decoder=json.loads, schema="pg_catalog", format="text"
        )


async def _client_side_reset(conn: asyncpg.Connection) -> None:
    """Nothing more than asyncpg's client-side reset (rollback, listeners dropped)."""


async def create_pool(
    dsn: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    application_name: str = "medicalcor",
    server_settings: dict[str, str] | None = None,
    reset_session: bool = False,
    **kwargs: Any,
) -> asyncpg.Pool:
    """A connection pool on ``dsn`` whose connections decode JSON to Python objects.

    ``reset_session=True`` restores asyncpg's full reset on release (UNLISTEN, RESET
    ALL, advisory locks released), at one round trip per acquire.
    """
    settings = {**DEFAULT_SERVER_SETTINGS, "application_name": application_name}
    settings.update(server_settings or {})
    if not reset_session:
        kwargs.setdefault("reset", _client_side_reset)
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        server_settings=settings,
        **kwargs,
    )
    assert pool is not None  # create_pool returns None only when awaited lazily
    return pool


async def connect(dsn: str, *, application_name: str = "medicalcor") -> asyncpg.Connection:
    """A single connection with the same codecs (for LISTEN and leader locks)."""
    conn = await asyncpg.connect(
        dsn, server_settings={**DEFAULT_SERVER_SETTINGS, "application_name": application_name}
    )
    await init_connection(conn)
    return conn
