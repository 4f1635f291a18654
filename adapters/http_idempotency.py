"""``Idempotency-Key`` of ``POST /ai/execute`` in PostgreSQL (table ``http_idempotency``).

Per clinic and key: the fingerprint of the first request's body and, once it is
done, the response it got. ``begin`` claims a key atomically: the first request
runs; a retry with the same body gets the stored response back and runs nothing;
the same key with another body, or while the first is still running, is a
conflict. Keys expire after ``ttl``; a claim left ``running`` by a crashed process
is taken over after ``lease``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import asyncpg

Outcome = Literal["new", "replay", "mismatch", "running"]
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Claim:
    """What ``begin`` found: run it (new), replay a response, or a conflict."""

    outcome: Outcome
    status_code: int | None = None
    response: bytes | None = None


def fingerprint(body: bytes) -> str:
    """What a key is bound to: the SHA-256 of the request body."""
    return hashlib.sha256(body).hexdigest()


class HttpIdempotencyStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        ttl: timedelta = timedelta(hours=24),
        lease: timedelta = timedelta(minutes=5),
    ) -> None:
        self._pool = pool
        self._ttl = ttl
        self._lease = lease

    async def begin(self, clinic_id: str, key: str, body_fingerprint: str) -> Claim:
        """Claim ``key`` for a request whose body has ``body_fingerprint``."""
        claimed = await self._pool.fetchval(
            """INSERT INTO http_idempotency (clinic_id, idempotency_key, fingerprint, state)
               VALUES ($1, $2, $3, 'running')
               ON CONFLICT (clinic_id, idempotency_key) DO UPDATE
                  SET fingerprint = EXCLUDED.fingerprint, state = 'running',
                      status_code = NULL, response = NULL, created_at = now(),
                      completed_at = NULL
                  WHERE http_idempotency.created_at < now() - $4::interval
                     OR (http_idempotency.state = 'running'
                         AND http_idempotency.created_at < now() - $5::interval)
               RETURNING true""",
            clinic_id,
            key,
            body_fingerprint,
            self._ttl,
            self._lease,
        )
        if claimed:
            return Claim("new")
        row = await self._pool.fetchrow(
            """SELECT fingerprint, state, status_code, response FROM http_idempotency
               WHERE clinic_id = $1 AND idempotency_key = $2""",
            clinic_id,
            key,
        )
        if row is None:  # expired and deleted between the two statements: claim again
            return await self.begin(clinic_id, key, body_fingerprint)
        if row["fingerprint"] != body_fingerprint:
            return Claim("mismatch")
        if row["state"] == "running":
            return Claim("running")
        return Claim("replay", row["status_code"], bytes(row["response"]))

    async def finish(self, clinic_id: str, key: str, status_code: int, response: bytes) -> None:
        """Store the response of a claimed key; retries will get exactly this."""
        await self._pool.execute(
            """UPDATE http_idempotency
               SET state = 'done', status_code = $3, response = $4, completed_at = now()
               WHERE clinic_id = $1 AND idempotency_key = $2""",
            clinic_id,
            key,
            status_code,
            response,
        )

    async def abandon(self, clinic_id: str, key: str) -> None:
        """Release a claim whose request failed before it had a response (a retry may run)."""
        await self._pool.execute(
            """DELETE FROM http_idempotency
               WHERE clinic_id = $1 AND idempotency_key = $2 AND state = 'running'""",
            clinic_id,
            key,
        )

    async def purge_expired(self) -> int:
        """Delete expired keys; returns how many."""
        status = await self._pool.execute(
            "DELETE FROM http_idempotency WHERE created_at < now() - $1::interval", self._ttl
        )
        return int(status.split()[-1])
