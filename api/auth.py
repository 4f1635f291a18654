"""Who is calling: API keys (``Authorization: Bearer mc_...`` or ``X-API-Key``).

A valid key yields a :class:`Principal`: its clinic (the ONLY source of the clinic;
no header can choose it), its scopes and its rate limit. No or a bad key → 401;
a missing scope → 403 (``Forbidden``); too many requests for a key, or for all of a
clinic's keys together → 429 with ``Retry-After`` (token buckets per key and per
clinic, refilled at their rates; per API process).

``Authenticator`` is transport-independent (the MCP endpoint uses it on raw
headers); ``PrincipalDep`` is the FastAPI dependency, reading
``request.app.state.authenticator``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Protocol

from fastapi import Depends, Request
from opentelemetry import trace

from adapters.api_keys import ApiKey
from adapters.telemetry.span_buffer import CLINIC_ID_ATTR
from api.errors import AuthenticationFailed
from domain.errors import Forbidden, RateLimited


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: one API key of one clinic."""

    key_id: str
    clinic_id: str
    scopes: frozenset[str]
    name: str = ""

    @property
    def actor(self) -> str:
        return f"api_key:{self.key_id}"

    def require(self, *scopes: str) -> None:
        """``Forbidden`` unless the key has every scope (``admin`` has all)."""
        missing = [] if "admin" in self.scopes else sorted(set(scopes) - self.scopes)
        if missing:
            raise Forbidden(
                f"this API key lacks the scope(s) {', '.join(missing)}", missing=missing
            )


class KeyVerifier(Protocol):
    async def verify(self, plaintext: str) -> ApiKey | None: ...


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class TokenBuckets:
    """Per-key token buckets: ``rate`` tokens a second, at most ``burst`` saved up."""

    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def take(self, key: str, rate: float, burst: int, cost: float = 1.0) -> float:
        """0 when allowed (tokens taken), else the seconds until ``cost`` tokens are back."""
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(burst), now)
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / rate


class Authenticator:
    """API key → Principal, with the per-key rate limit applied."""

    def __init__(
        self,
        keys: KeyVerifier,
        *,
        rate_per_s: float,
        burst: int,
        clinic_rate_per_s: float | None = None,
        clinic_burst: int | None = None,
    ) -> None:
        self._keys = keys
        self._rate = rate_per_s
        self._burst = burst
        self._clinic_rate = clinic_rate_per_s
        self._clinic_burst = clinic_burst or burst
        self._buckets = TokenBuckets()
        self._clinics = TokenBuckets()

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The caller of a request with these headers (case-insensitive mapping)."""
        plaintext = presented_key(headers)
        if plaintext is None:
            raise AuthenticationFailed(
                "an API key is required: Authorization: Bearer mc_... or X-API-Key"
            )
        record = await self._keys.verify(plaintext)
        if record is None:
            raise AuthenticationFailed("the API key is not valid (unknown or revoked)")
        self._limit(record)
        # Tag the request's span: trace views are scoped to the caller's clinic.
        trace.get_current_span().set_attribute(CLINIC_ID_ATTR, record.clinic_id)
        return Principal(record.key_id, record.clinic_id, frozenset(record.scopes), record.name)

    def _limit(self, record: ApiKey) -> None:
        """The key's own bucket, then its clinic's (all the clinic's keys together)."""
        rate = record.rate_per_s or self._rate
        burst = record.burst or self._burst
        wait = self._buckets.take(record.key_id, rate, burst)
        if wait > 0:
            raise RateLimited(
                f"rate limit of {rate:g} requests/s exceeded for this API key",
                retryAfter=math.ceil(wait),
                limitPerSecond=rate,
                burst=burst,
                scope="key",
            )
        if self._clinic_rate is None:
            return
        wait = self._clinics.take(record.clinic_id, self._clinic_rate, self._clinic_burst)
        if wait > 0:
            raise RateLimited(
                f"rate limit of {self._clinic_rate:g} requests/s exceeded for this clinic",
                retryAfter=math.ceil(wait),
                limitPerSecond=self._clinic_rate,
                burst=self._clinic_burst,
                scope="clinic",
            )


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key in ``Authorization: Bearer`` or ``X-API-Key``, if any."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


async def current_principal(request: Request) -> Principal:
    """FastAPI dependency: the authenticated caller (once per request)."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    authenticator: Authenticator = request.app.state.authenticator
    principal = await authenticator.authenticate(request.headers)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]
