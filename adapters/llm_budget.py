"""The daily LLM token cap per clinic, kept in PostgreSQL (migration 0050).

What counts: the input and output tokens the Anthropic API reports in each
answer's ``usage``, per clinic and per clinic-local day. The day is the calendar
day in Europe/Bucharest (``domain.dates.clinic_today``), like every other daily
figure of a clinic (daily metrics, messages per person per day): the budget resets
at the clinic's midnight, not at UTC midnight. The cap is
``MEDICALCOR_LLM_DAILY_TOKENS`` (``Settings.llm_daily_token_cap``); 0 or less
means Claude is never called.

How a call is admitted: ``reserve`` takes an upper bound of the call's usage (the
planner computes it from the request's size and ``max_tokens``) and, in one
statement, admits the call while the day's usage plus the reservations of calls in
flight is below the cap. Concurrent callers of one clinic decide one after the
other (a row lock), on any replica, so the cap is overshot by at most the last
admitted call's own usage, as long as no call uses more than its reservation.
``settle`` replaces the reservation by the reported usage. A reservation whose
caller died (process killed mid-call) expires after ``reservation_ttl_s``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol

import asyncpg

from domain.dates import clinic_today

DAY_TIME_ZONE = "Europe/Bucharest"
"""The time zone whose calendar day the budget counts (see ``domain.dates``)."""


@dataclass(frozen=True)
class Reservation:
    """The answer of ``reserve``: admitted (an id) or refused, and what was seen."""

    clinic_id: str
    day: date
    reservation_id: int | None
    used: int
    """Tokens the clinic's calls of ``day`` used before this reservation."""
    reserved: int
    """Tokens reserved by other calls still in flight."""
    cap: int

    @property
    def admitted(self) -> bool:
        return self.reservation_id is not None

    @property
    def exhausted(self) -> bool:
        """True when recorded usage alone reached the cap (not only calls in flight)."""
        return self.used >= self.cap


@dataclass(frozen=True)
class DailyUsage:
    """One clinic's recorded LLM usage of one day."""

    clinic_id: str
    day: date
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    refused: int = 0
    """Calls not made because the cap was reached."""

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class TokenBudget(Protocol):
    """What the Claude planner needs of a budget."""

    async def reserve(self, clinic_id: str, estimate: int) -> Reservation:
        """Admit a call expected to use at most ``estimate`` tokens, or refuse it."""
        ...

    async def settle(self, reservation: Reservation, input_tokens: int, output_tokens: int) -> None:
        """Record the usage of an admitted call and release its reservation."""
        ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


class PostgresLlmBudget:
    """The per-clinic daily token cap in ``llm_token_usage`` (see module doc)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        daily_cap: int,
        *,
        reservation_ttl_s: float = 120.0,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if reservation_ttl_s <= 0:
            raise ValueError("reservation_ttl_s must be positive")
        self._pool = pool
        self.daily_cap = daily_cap
        self._ttl_s = reservation_ttl_s
        self._clock = clock

    def today(self) -> date:
        """The clinic-local day calls are counted against now."""
        return clinic_today(self._clock())

    async def reserve(self, clinic_id: str, estimate: int) -> Reservation:
        """Admit a call expected to use at most ``estimate`` tokens, or refuse it."""
        day = self.today()
        row = await self._pool.fetchrow(
            "SELECT * FROM mc_llm_reserve($1, $2, $3, $4, $5)",
            clinic_id,
            day,
            max(int(estimate), 0),
            self.daily_cap,
            self._ttl_s,
        )
        assert row is not None  # the function always returns one row
        return Reservation(
            clinic_id=clinic_id,
            day=day,
            reservation_id=row["reservation_id"],
            used=int(row["used"]),
            reserved=int(row["reserved"]),
            cap=self.daily_cap,
        )

    async def settle(self, reservation: Reservation, input_tokens: int, output_tokens: int) -> None:
        """Record what an admitted call used (on the day it was admitted) and release it."""
        if reservation.reservation_id is None:
            raise ValueError("only an admitted reservation can be settled")
        await self._pool.execute(
            "SELECT mc_llm_settle($1, $2, $3, $4, $5)",
            reservation.reservation_id,
            reservation.clinic_id,
            reservation.day,
            max(int(input_tokens), 0),
            max(int(output_tokens), 0),
        )

    async def usage(self, clinic_id: str, day: date | None = None) -> DailyUsage:
        """The clinic's recorded usage of ``day`` (default: today)."""
        day = day or self.today()
        row = await self._pool.fetchrow(
            """SELECT input_tokens, output_tokens, calls, refused FROM llm_token_usage
               WHERE clinic_id = $1 AND day = $2""",
            clinic_id,
            day,
        )
        if row is None:
            return DailyUsage(clinic_id, day)
        return DailyUsage(
            clinic_id,
            day,
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            calls=row["calls"],
            refused=row["refused"],
        )
