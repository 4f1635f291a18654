"""A LISTEN connection that tells a cache when to forget, and comes back after a restart.

Caches of revocable things (API keys, per-subject encryption keys) may only serve from
memory while a notification channel would tell them about a change. This holds one
pooled connection LISTENing on a channel; when that connection is lost (PostgreSQL
restarted) the cache is invalidated and switched off, and the listener reconnects in
the background with backoff, switching caching back on once it listens again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

RECONNECT_MAX_S = 5.0


class InvalidationListener:
    """``listening`` is true while notifications on ``channel`` reach ``on_change``."""

    def __init__(
        self, pool: asyncpg.Pool, channel: str, on_change: Callable[[], None], what: str
    ) -> None:
        self._pool = pool
        self._channel = channel
        self._on_change = on_change
        self._what = what
        self._held: Any = None
        self._closed = True
        self._reconnect: asyncio.Task[None] | None = None
        self.listening = False

    async def start(self) -> None:
        """LISTEN (idempotent); raises if the database cannot be reached now."""
        self._closed = False
        if self._held is None:
            await self._listen()

    async def close(self) -> None:
        """Stop listening and release the connection; safe on a dead connection."""
        self._closed = True
        self.listening = False
        self._on_change()
        if self._reconnect is not None:
            self._reconnect.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect
            self._reconnect = None
        conn, self._held = self._held, None
        if conn is None:
            return
        try:
            if not conn.is_closed():
                conn.remove_termination_listener(self._on_lost)
                await conn.remove_listener(self._channel, self._on_notify)
        except (asyncpg.InterfaceError, asyncpg.PostgresError, OSError):
            pass  # the connection died meanwhile: nothing left to undo
        finally:
            with contextlib.suppress(asyncpg.InterfaceError, OSError):
                await asyncio.shield(self._pool.release(conn))

    async def _listen(self) -> None:
        conn = await self._pool.acquire()
        try:
            await conn.add_listener(self._channel, self._on_notify)
            conn.add_termination_listener(self._on_lost)
        except BaseException:
            await self._pool.release(conn)
            raise
        self._held = conn
        self.listening = True

    def _on_notify(self, *_: object) -> None:
        self._on_change()

    def _on_lost(self, *_: object) -> None:
        log.warning("%s listener lost: reading from the table until it is back", self._what)
        self.listening = False
        self._on_change()
        lost, self._held = self._held, None
        if lost is not None:
            asyncio.get_running_loop().create_task(self._release_quietly(lost))
        if not self._closed and (self._reconnect is None or self._reconnect.done()):
            self._reconnect = asyncio.get_running_loop().create_task(self._come_back())

    async def _release_quietly(self, conn: Any) -> None:
        with contextlib.suppress(Exception):
            await self._pool.release(conn)

    async def _come_back(self) -> None:
        delay = 0.2
        while not self._closed and self._held is None:
            await asyncio.sleep(delay)
            try:
                await self._listen()
                log.info("%s listener is back: caching again", self._what)
                self._on_change()  # anything may have changed while we were deaf
                return
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
                delay = min(delay * 2, RECONNECT_MAX_S)
