"""Outbound limits on real PostgreSQL: template cooldowns and the per-person daily limit."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from adapters.cooldowns import OutboundLimits, Reservation, recipient_key
from domain.errors import RateLimited
from domain.memory import HmacPseudonymizer
from domain.messaging import cooldown_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

NOW = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
MARKETING = "hot_lead_acknowledgment"  # 7-day cooldown
UTILITY = "appointment_confirmation"  # no cooldown


def clinic() -> str:
    return f"clinic-{uuid.uuid4().hex[:8]}"


def person() -> str:
    return f"r-{uuid.uuid4().hex}"


async def outcomes(tasks: list[asyncio.Task[Reservation]]) -> tuple[int, list[RateLimited]]:
    """How many reservations won, and the refusals (anything else fails the test)."""
    results = await asyncio.gather(*tasks, return_exceptions=True)
    won = [r for r in results if isinstance(r, Reservation)]
    refused = [r for r in results if isinstance(r, RateLimited)]
    assert len(won) + len(refused) == len(results), results
    assert len({r.reservation_id for r in won}) == len(won)
    return len(won), refused


async def test_concurrent_reservations_of_one_template_exactly_one_wins(
    pg_pool: asyncpg.Pool,
) -> None:
    limits = OutboundLimits(pg_pool, daily_limit=None)
    c, r = clinic(), person()
    tasks = [asyncio.create_task(limits.check_and_reserve(c, r, MARKETING, NOW)) for _ in range(25)]
    won, refused = await outcomes(tasks)
    assert won == 1
    assert len(refused) == 24
    week = int(cooldown_for(MARKETING).total_seconds())
    for error in refused:
        assert error.code == "RATE_LIMITED"
        assert error.details["template"] == MARKETING
        assert error.details["limit"] == "template_cooldown"
        assert error.details["retryAfterSeconds"] == week
        assert error.details["retryAfter"] == week


async def test_concurrent_reservations_at_different_moments_still_one_winner(
    pg_pool: asyncpg.Pool,
) -> None:
    """Callers with slightly different clocks, all inside one cooldown: one wins."""
    limits = OutboundLimits(pg_pool, daily_limit=None)
    c, r = clinic(), person()
    moments = [NOW + timedelta(seconds=i) for i in range(15)]
    tasks = [asyncio.create_task(limits.check_and_reserve(c, r, MARKETING, m)) for m in moments]
    won, refused = await outcomes(tasks)
    assert (won, len(refused)) == (1, 14)


async def test_cooldown_expires_and_retry_after_counts_down(pg_pool: asyncpg.Pool) -> None:
    limits = OutboundLimits(pg_pool, daily_limit=None)
    c, r = clinic(), person()
    await limits.check_and_reserve(c, r, MARKETING, NOW)
    almost = NOW + cooldown_for(MARKETING) - timedelta(hours=1)
    with pytest.raises(RateLimited) as refused:
        await limits.check_and_reserve(c, r, MARKETING, almost)
    assert refused.value.details["retryAfterSeconds"] == 3600
    assert refused.value.details["availableAt"] == (NOW + cooldown_for(MARKETING)).isoformat()
    await limits.check_and_reserve(c, r, MARKETING, NOW + cooldown_for(MARKETING))
    with pytest.raises(RateLimited):
        await limits.check_and_reserve(c, r, MARKETING, NOW + cooldown_for(MARKETING))


async def test_cooldowns_are_per_clinic_recipient_and_template(pg_pool: asyncpg.Pool) -> None:
    limits = OutboundLimits(pg_pool, daily_limit=None)
    c, r = clinic(), person()
    await limits.check_and_reserve(c, r, MARKETING, NOW)
    await limits.check_and_reserve(c, person(), MARKETING, NOW)
    await limits.check_and_reserve(clinic(), r, MARKETING, NOW)
    await limits.check_and_reserve(c, r, "consultation_offer", NOW)
    with pytest.raises(RateLimited):
        await limits.check_and_reserve(c, r, MARKETING, NOW)


async def test_templates_without_cooldown_are_never_blocked_by_one(pg_pool: asyncpg.Pool) -> None:
    limits = OutboundLimits(pg_pool, daily_limit=None)
    c, r = clinic(), person()
    for _ in range(5):
        await limits.check_and_reserve(c, r, UTILITY, NOW)
        await limits.check_and_reserve(c, r, None, NOW)


async def test_unknown_template_is_invalid_not_silently_allowed(pg_pool: asyncpg.Pool) -> None:
    limits = OutboundLimits(pg_pool)
    with pytest.raises(Exception) as raised:
        await limits.check_and_reserve(clinic(), person(), "no_such_template", NOW)
    assert getattr(raised.value, "code", None) == "INVALID_ARGUMENTS"


async def test_daily_limit_under_concurrency(pg_pool: asyncpg.Pool) -> None:
    limits = OutboundLimits(pg_pool, daily_limit=3)
    c, r = clinic(), person()
    tasks = [asyncio.create_task(limits.check_and_reserve(c, r, None, NOW)) for _ in range(12)]
    won, refused = await outcomes(tasks)
    assert (won, len(refused)) == (3, 9)
    # 10:00 UTC is 12:00 in Bucharest (UTC+2 in March): 12 hours to local midnight.
    assert {e.details["retryAfterSeconds"] for e in refused} == {12 * 3600}
    assert {e.details["limit"] for e in refused} == {"daily_messages"}
    assert {e.details["dailyLimit"] for e in refused} == {3}
    await limits.check_and_reserve(c, r, None, NOW + timedelta(hours=12))


async def test_daily_limit_follows_the_clinic_local_day(pg_pool: asyncpg.Pool) -> None:
    limits = OutboundLimits(pg_pool, daily_limit=1)
    c, r = clinic(), person()
    before_midnight = datetime(2025, 3, 4, 21, 59, tzinfo=UTC)  # 23:59 in Bucharest
    after_midnight = datetime(2025, 3, 4, 22, 1, tzinfo=UTC)  # 00:01 the next day
    await limits.check_and_reserve(c, r, None, before_midnight)
    with pytest.raises(RateLimited) as refused:
        await limits.check_and_reserve(c, r, None, before_midnight + timedelta(seconds=30))
    assert refused.value.details["retryAfterSeconds"] == 30
    await limits.check_and_reserve(c, r, None, after_midnight)


async def test_a_refused_cooldown_does_not_use_up_the_daily_limit(pg_pool: asyncpg.Pool) -> None:
    limits = OutboundLimits(pg_pool, daily_limit=2)
    c, r = clinic(), person()
    await limits.check_and_reserve(c, r, MARKETING, NOW)
    for _ in range(3):
        with pytest.raises(RateLimited) as refused:
            await limits.check_and_reserve(c, r, MARKETING, NOW)
        assert refused.value.details["limit"] == "template_cooldown"
    await limits.check_and_reserve(c, r, UTILITY, NOW)
    with pytest.raises(RateLimited) as refused:
        await limits.check_and_reserve(c, r, UTILITY, NOW)
    assert refused.value.details["limit"] == "daily_messages"


async def test_a_daily_refusal_reserves_no_cooldown(pg_pool: asyncpg.Pool) -> None:
    limits = OutboundLimits(pg_pool, daily_limit=1)
    c, r = clinic(), person()
    await limits.check_and_reserve(c, r, None, NOW)
    with pytest.raises(RateLimited):
        await limits.check_and_reserve(c, r, MARKETING, NOW)
    # The next day the template is free: the refused attempt left no cooldown behind.
    await limits.check_and_reserve(c, r, MARKETING, NOW + timedelta(days=1))


async def test_release_gives_back_the_reservation_once(pg_pool: asyncpg.Pool) -> None:
    limits = OutboundLimits(pg_pool, daily_limit=2)
    c, r = clinic(), person()
    first = await limits.check_and_reserve(c, r, MARKETING, NOW)
    assert await limits.release(first) is True
    later = NOW + timedelta(minutes=5)
    second = await limits.check_and_reserve(c, r, MARKETING, later)
    # Releasing the old reservation again changes nothing: not the newer cooldown,
    # not the daily count.
    assert await limits.release(first) is False
    with pytest.raises(RateLimited) as refused:
        await limits.check_and_reserve(c, r, MARKETING, later + timedelta(minutes=1))
    assert refused.value.details["limit"] == "template_cooldown"
    await limits.check_and_reserve(c, r, None, later)
    with pytest.raises(RateLimited) as refused:
        await limits.check_and_reserve(c, r, None, later)
    assert refused.value.details["limit"] == "daily_messages"
    assert await limits.release(second) is True
    await limits.check_and_reserve(c, r, MARKETING, later + timedelta(minutes=1))


async def test_released_free_text_gives_back_its_daily_slot(pg_pool: asyncpg.Pool) -> None:
    limits = OutboundLimits(pg_pool, daily_limit=1)
    c, r = clinic(), person()
    reservation = await limits.check_and_reserve(c, r, None, NOW)
    with pytest.raises(RateLimited):
        await limits.check_and_reserve(c, r, None, NOW)
    assert await limits.release(reservation)
    await limits.check_and_reserve(c, r, None, NOW)


async def test_purge_removes_only_expired_rows(pg_pool: asyncpg.Pool) -> None:
    limits = OutboundLimits(pg_pool, daily_limit=5)
    c, r = clinic(), person()
    await limits.check_and_reserve(c, r, MARKETING, NOW)
    far = NOW + timedelta(days=30)
    await limits.purge(NOW + timedelta(days=1))
    with pytest.raises(RateLimited):  # still in its cooldown: kept
        await limits.check_and_reserve(c, r, MARKETING, NOW + timedelta(days=2))
    assert await limits.purge(far) >= 3
    for table in ("template_cooldowns", "outbound_message_counts", "outbound_reservations"):
        left = await pg_pool.fetchval(f"SELECT count(*) FROM {table} WHERE clinic_id = $1", c)
        assert left == 0, table


async def test_naive_times_are_refused(pg_pool: asyncpg.Pool) -> None:
    limits = OutboundLimits(pg_pool)
    with pytest.raises(ValueError):
        await limits.check_and_reserve(clinic(), person(), None, datetime(2025, 3, 4, 10))


async def test_recipient_keys_are_pseudonyms_of_the_normalised_phone() -> None:
    pseudonyms = HmacPseudonymizer(b"k" * 32)
    key = recipient_key(pseudonyms, "clinic-a", "0721 234 567")
    assert key == recipient_key(pseudonyms, "clinic-a", "+40721234567")
    assert key != recipient_key(pseudonyms, "clinic-b", "+40721234567")
    assert "721" not in key
