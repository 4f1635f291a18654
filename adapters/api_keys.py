"""Gateway API keys in PostgreSQL (table ``api_keys``, migration 0030).

A key is ``mc_<random>``, shown once when created; only its HMAC-SHA256 under the
server secret is stored, so a database dump reveals no usable key. Each key is bound
to ONE clinic and a set of scopes (read, write, messaging, consent, admin) and may
carry its own rate limit.

``verify`` answers from a small in-process cache only while this process LISTENs on
``api_keys_changed``: ``revoke`` notifies in its own transaction, every replica
drops its cache when the notification arrives (milliseconds), and a lost listener
connection disables the cache until it is back. Without the listener every verify
reads the table, so a revocation is always effective at once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from adapters.postgres.listener import InvalidationListener
from domain.functions.registry import SCOPES

log = logging.getLogger(__name__)

KEY_PREFIX = "mc_"
CHANNEL = "api_keys_changed"
VALID_SCOPES = frozenset(SCOPES)
_COLUMNS = "key_id, prefix, clinic_id, name, scopes, rate_per_s, burst, created_at, revoked_at"


@dataclass(frozen=True)
class ApiKey:
    """A key's record (never its secret)."""

    key_id: str
    prefix: str
    clinic_id: str
    name: str
    scopes: frozenset[str]
    rate_per_s: float | None
    burst: int | None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ApiKey:
        return cls(
            key_id=row["key_id"],
            prefix=row["prefix"],
            clinic_id=row["clinic_id"],
            name=row["name"],
            scopes=frozenset(row["scopes"]),
            rate_per_s=row["rate_per_s"],
            burst=row["burst"],
            created_at=row["created_at"],
            revoked_at=row["revoked_at"],
        )


class ApiKeyStore:
    """Create, list, revoke and verify API keys."""

    def __init__(
        self, pool: asyncpg.Pool, secret: str | bytes, *, cache_ttl_s: float = 60.0
    ) -> None:
        self._pool = pool
        self._secret = secret.encode() if isinstance(secret, str) else secret
        self._cache_ttl = cache_ttl_s
        self._cache: dict[bytes, tuple[ApiKey, float]] = {}
        self._generation = 0
        self._listener = InvalidationListener(pool, CHANNEL, self._invalidate, "api key")

    def digest(self, plaintext: str) -> bytes:
        """The stored form of a key: HMAC-SHA256 under the server secret."""
        return hmac.new(self._secret, plaintext.encode(), hashlib.sha256).digest()

    async def create(
        self,
        clinic_id: str,
        scopes: Iterable[str],
        name: str = "",
        *,
        rate_per_s: float | None = None,
        burst: int | None = None,
        plaintext: str | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key for ``clinic_id``: its record and the plaintext (shown only now).

        ``plaintext`` fixes the key (the dev stack's ``MEDICALCOR_DEV_API_KEY``); it must
        carry the ``mc_`` prefix and at least 16 more characters.
        """
        wanted = frozenset(scopes)
        unknown = wanted - VALID_SCOPES
        if not wanted or unknown:
            raise ValueError(f"scopes must be a non-empty subset of {sorted(VALID_SCOPES)}")
        if plaintext is None:
            plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
        elif not plaintext.startswith(KEY_PREFIX) or len(plaintext) < len(KEY_PREFIX) + 16:
            raise ValueError(f"a fixed key must start with {KEY_PREFIX!r} and be long enough")
        row = await self._pool.fetchrow(
            f"""INSERT INTO api_keys
                    (key_id, key_hash, prefix, clinic_id, name, scopes, rate_per_s, burst)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                RETURNING {_COLUMNS}""",
            "key_" + secrets.token_hex(8),
            self.digest(plaintext),
            plaintext[:7],
            clinic_id,
            name,
            sorted(wanted),
            rate_per_s,
            burst,
        )
        assert row is not None  # INSERT ... RETURNING yields the row
        return ApiKey.from_row(row), plaintext

    async def list(self, clinic_id: str, *, include_revoked: bool = False) -> list[ApiKey]:
        """The clinic's keys, oldest first."""
        rows = await self._pool.fetch(
            f"""SELECT {_COLUMNS} FROM api_keys
                WHERE clinic_id = $1 AND ($2 OR revoked_at IS NULL)
                ORDER BY created_at, key_id""",
            clinic_id,
            include_revoked,
        )
        return [ApiKey.from_row(r) for r in rows]

    async def revoke(self, key_id: str, *, clinic_id: str | None = None) -> bool:
        """Revoke a key (of ``clinic_id`` when given); False when unknown or already revoked."""
        async with self._pool.acquire() as conn, conn.transaction():
            done = await conn.fetchval(
                """UPDATE api_keys SET revoked_at = now()
                   WHERE key_id = $1 AND revoked_at IS NULL
                     AND ($2::text IS NULL OR clinic_id = $2)
                   RETURNING true""",
                key_id,
                clinic_id,
            )
            if done:
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, key_id)
        if done:
            self._invalidate()
        return bool(done)

    async def verify(self, plaintext: str) -> ApiKey | None:
        """The active key ``plaintext`` is, or None (unknown, malformed or revoked)."""
        if not plaintext.startswith(KEY_PREFIX) or len(plaintext) > 200:
            return None
        digest = self.digest(plaintext)
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        generation = self._generation
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", digest
        )
        key = ApiKey.from_row(row) if row is not None else None
        # Cache only what no change notified meanwhile could have made stale.
        if key is not None and self._listener.listening and generation == self._generation:
            self._cache[digest] = (key, time.monotonic() + self._cache_ttl)
        return key

    async def start(self) -> None:
        """LISTEN for changes so lookups may be cached (call from the app's lifespan)."""
        await self._listener.start()

    async def close(self) -> None:
        """Stop listening and release the connection (the cache is off again)."""
        await self._listener.close()

    @property
    def caching(self) -> bool:
        return self._listener.listening

    def _invalidate(self) -> None:
        self._generation += 1
        self._cache.clear()
