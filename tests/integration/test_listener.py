"""The invalidation listener survives a lost connection (a PostgreSQL restart)."""

from __future__ import annotations

import asyncio

import asyncpg

from adapters.postgres.listener import InvalidationListener


async def _eventually(check: object, within: float = 10.0) -> bool:
    for _ in range(int(within / 0.05)):
        if check():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_notification_invalidates_and_a_lost_connection_comes_back(
    pg_pool: asyncpg.Pool,
) -> None:
    changes: list[int] = []
    listener = InvalidationListener(pg_pool, "test_listener", lambda: changes.append(1), "test")
    await listener.start()
    try:
        assert listener.listening
        await pg_pool.execute("SELECT pg_notify('test_listener', 'x')")
        assert await _eventually(lambda: len(changes) >= 1)

        before = len(changes)
        pid = listener._held.get_server_pid()
        await pg_pool.execute("SELECT pg_terminate_backend($1)", pid)
        assert await _eventually(lambda: not listener.listening or len(changes) > before)
        assert await _eventually(lambda: listener.listening), "the listener did not come back"
        assert len(changes) > before  # forgotten when lost (and again when back)

        seen = len(changes)
        await pg_pool.execute("SELECT pg_notify('test_listener', 'y')")
        assert await _eventually(lambda: len(changes) > seen), "no notifications after coming back"
    finally:
        await listener.close()
    assert not listener.listening
