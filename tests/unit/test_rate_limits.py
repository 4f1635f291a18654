"""Per-key and per-clinic request limits (token buckets) in the authenticator."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.api_keys import ApiKey
from api.auth import Authenticator
from domain.errors import RateLimited


class Keys:
    """Every presented string is a key of the clinic before the colon."""

    async def verify(self, plaintext: str) -> ApiKey:
        clinic, _, name = plaintext.partition(":")
        return ApiKey(
            key_id=plaintext, prefix="mc_", clinic_id=clinic, name=name,
            scopes=frozenset({"read"}), rate_per_s=None, burst=None,
            created_at=datetime.now(UTC), revoked_at=None,
        )  # fmt: skip


def auth(clinic_rate: float | None) -> Authenticator:
    return Authenticator(
        Keys(),
        rate_per_s=0.001,
        burst=3,
        clinic_rate_per_s=clinic_rate,
        clinic_burst=5,
    )


async def call(authenticator: Authenticator, key: str) -> None:
    await authenticator.authenticate({"x-api-key": key})


async def test_many_keys_of_one_clinic_share_the_clinic_limit() -> None:
    limiter = auth(clinic_rate=0.001)
    for i in range(5):  # five keys, one request each: the clinic's burst
        await call(limiter, f"clinic-a:k{i}")
    with pytest.raises(RateLimited) as refused:
        await call(limiter, "clinic-a:k9")  # a fresh key, but the clinic is spent
    assert refused.value.details["scope"] == "clinic"
    assert refused.value.details["retryAfter"] >= 1
    await call(limiter, "clinic-b:k0")  # another clinic is not affected


async def test_a_key_meets_its_own_limit_first() -> None:
    limiter = auth(clinic_rate=None)  # no clinic limit configured
    for _ in range(3):
        await call(limiter, "clinic-a:k0")
    with pytest.raises(RateLimited) as refused:
        await call(limiter, "clinic-a:k0")
    assert refused.value.details["scope"] == "key"
    for i in range(1, 10):  # without a clinic limit, other keys go on
        await call(limiter, f"clinic-a:k{i}")
