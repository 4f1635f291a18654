"""Outbound WhatsApp limits in PostgreSQL: template cooldowns and messages per person per day.

The send path (the gateway's ``send_whatsapp``, the messaging activity) calls
``check_and_reserve`` right before a message goes out. In ONE transaction it

1. counts the message against the recipient's daily limit (clinic-local day), and
2. reserves the template's cooldown (``domain.messaging.cooldown_for``): the row of
   (clinic, recipient, template) moves forward only if its cooldown has passed.

Each step is a single ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` statement, so
concurrent sends to one person are decided by PostgreSQL's row lock: of two
reservations of one template, exactly one wins; the other gets ``RateLimited``
with ``retryAfterSeconds``. A refused step rolls the whole reservation back.

A send that does not happen after all (consent refused, provider error) should
``release`` the returned ``Reservation``, so the person is not blocked for a
message they never got; releasing twice changes nothing the second time.
Recipients are keyed by ``recipient_key`` (a keyed hash of the phone): the tables
hold no phone numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from domain.errors import RateLimited
from domain.messaging import cooldown_for
from domain.phones import normalize_phone
from domain.ports import Pseudonymizer
from domain.scheduling import DEFAULT_TIMEZONE

DEFAULT_DAILY_LIMIT = 10
"""Outbound messages a person may receive from a clinic per local day (all kinds)."""
RECIPIENT_KIND = "whatsapp_recipient"

_COUNT = """
INSERT INTO outbound_message_counts AS c (clinic_id, recipient_key, day, sent)
VALUES ($1, $2, $3, 1)
ON CONFLICT (clinic_id, recipient_key, day) DO UPDATE
   SET sent = c.sent + 1
 WHERE c.sent < $4
RETURNING sent
"""

_RESERVE = """
INSERT INTO template_cooldowns AS t
       (clinic_id, recipient_key, template_name, reserved_at, available_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (clinic_id, recipient_key, template_name) DO UPDATE
   SET reserved_at = EXCLUDED.reserved_at, available_at = EXCLUDED.available_at
 WHERE t.available_at <= EXCLUDED.reserved_at
RETURNING available_at
"""

_AVAILABLE_AT = """
SELECT available_at FROM template_cooldowns
 WHERE clinic_id = $1 AND recipient_key = $2 AND template_name = $3
"""

_LOG = """
INSERT INTO outbound_reservations (clinic_id, recipient_key, template_name, day, reserved_at)
VALUES ($1, $2, $3, $4, $5)
RETURNING id
"""

_UNLOG = "DELETE FROM outbound_reservations WHERE id = $1 RETURNING id"

_UNCOUNT = """
UPDATE outbound_message_counts SET sent = sent - 1
 WHERE clinic_id = $1 AND recipient_key = $2 AND day = $3 AND sent > 0
"""

# Only the cooldown reserved at ``reserved_at`` is undone: a later reservation stays.
_UNRESERVE = """
UPDATE template_cooldowns SET available_at = reserved_at
 WHERE clinic_id = $1 AND recipient_key = $2 AND template_name = $3 AND reserved_at = $4
"""


def recipient_key(pseudonymizer: Pseudonymizer, clinic_id: str, phone: str) -> str:
    """The key of a recipient in the limit tables: a pseudonym of the E.164 phone."""
    return pseudonymizer.pseudonym(clinic_id, RECIPIENT_KIND, normalize_phone(phone))


@dataclass(frozen=True)
class Reservation:
    """One message counted (and its template's cooldown reserved); see ``release``."""

    reservation_id: int
    clinic_id: str
    recipient_key: str
    template_name: str | None
    day: date
    reserved_at: datetime


class OutboundLimits:
    """Template cooldowns and the per-person daily message limit, per clinic."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        daily_limit: int | None = DEFAULT_DAILY_LIMIT,
        timezone: str = DEFAULT_TIMEZONE,
    ) -> None:
        """``daily_limit=None`` switches the daily limit off; cooldowns always apply."""
        if daily_limit is not None and daily_limit < 1:
            raise ValueError("daily_limit must be at least 1 (or None for no limit)")
        self._pool = pool
        self._daily_limit = daily_limit
        self._tz = ZoneInfo(timezone)

    async def check_and_reserve(
        self, clinic_id: str, recipient_key: str, template_name: str | None, now: datetime
    ) -> Reservation:
        """Count one message to the recipient and reserve the template's cooldown.

        ``template_name=None`` is free text: it counts towards the daily limit and
        has no cooldown. Raises ``RateLimited`` (details ``retryAfterSeconds``,
        ``template``, ``limit``: ``template_cooldown`` or ``daily_messages``) and
        reserves nothing when either limit says no. Callers that only need the
        check may ignore the returned ``Reservation``.
        """
        _require_aware(now)
        cooldown = cooldown_for(template_name) if template_name else timedelta(0)
        day = self._day(now)
        async with self._pool.acquire() as conn, conn.transaction():
            if self._daily_limit is not None:
                await self._count(conn, clinic_id, recipient_key, template_name, now)
            if template_name and cooldown > timedelta(0):
                await self._reserve(conn, clinic_id, recipient_key, template_name, now, cooldown)
            reservation_id = await conn.fetchval(
                _LOG, clinic_id, recipient_key, template_name, day, now
            )
        return Reservation(reservation_id, clinic_id, recipient_key, template_name, day, now)

    async def release(self, reservation: Reservation) -> bool:
        """Undo a reservation whose message was not sent; False when already released."""
        r = reservation
        async with self._pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(_UNLOG, r.reservation_id) is None:
                return False
            await conn.execute(_UNCOUNT, r.clinic_id, r.recipient_key, r.day)
            if r.template_name:
                await conn.execute(
                    _UNRESERVE, r.clinic_id, r.recipient_key, r.template_name, r.reserved_at
                )
        return True

    async def purge(self, before: datetime) -> int:
        """Delete cooldowns expired and days ended before ``before``; returns how many rows."""
        _require_aware(before)
        day = self._day(before)
        async with self._pool.acquire() as conn, conn.transaction():
            statuses = [
                await conn.execute(
                    "DELETE FROM template_cooldowns WHERE available_at < $1", before
                ),
                await conn.execute("DELETE FROM outbound_message_counts WHERE day < $1", day),
                await conn.execute("DELETE FROM outbound_reservations WHERE day < $1", day),
            ]
        return sum(int(status.split()[-1]) for status in statuses)

    async def _count(
        self,
        conn: PoolConnectionProxy[Any],
        clinic_id: str,
        recipient_key: str,
        template_name: str | None,
        now: datetime,
    ) -> None:
        sent = await conn.fetchval(
            _COUNT, clinic_id, recipient_key, self._day(now), self._daily_limit
        )
        if sent is None:
            raise _rate_limited(
                f"this person already got {self._daily_limit} WhatsApp messages today",
                self._next_day_start(now) - now,
                template_name,
                "daily_messages",
                dailyLimit=self._daily_limit,
            )

    async def _reserve(
        self,
        conn: PoolConnectionProxy[Any],
        clinic_id: str,
        recipient_key: str,
        template_name: str,
        now: datetime,
        cooldown: timedelta,
    ) -> None:
        args = (clinic_id, recipient_key, template_name)
        if await conn.fetchval(_RESERVE, *args, now, now + cooldown) is not None:
            return
        # Lost to a reservation still in its cooldown; read when it ends, for the caller.
        available_at: datetime | None = await conn.fetchval(_AVAILABLE_AT, *args)
        raise _rate_limited(
            f"template {template_name!r} was sent to this person less than {_human(cooldown)} ago",
            (available_at - now) if available_at is not None else cooldown,
            template_name,
            "template_cooldown",
            cooldownSeconds=int(cooldown.total_seconds()),
            availableAt=available_at.isoformat() if available_at else None,
        )

    def _day(self, now: datetime) -> date:
        return now.astimezone(self._tz).date()

    def _next_day_start(self, now: datetime) -> datetime:
        tomorrow = self._day(now) + timedelta(days=1)
        return datetime.combine(tomorrow, time(0), tzinfo=self._tz)


def _rate_limited(
    message: str, wait: timedelta, template_name: str | None, limit: str, **details: object
) -> RateLimited:
    seconds = max(1, math.ceil(wait.total_seconds()))
    # ``retryAfter`` is the detail the HTTP layer turns into a Retry-After header.
    return RateLimited(
        message,
        retryAfterSeconds=seconds,
        retryAfter=seconds,
        template=template_name,
        limit=limit,
        **details,
    )


def _human(delta: timedelta) -> str:
    if delta >= timedelta(days=1) and delta % timedelta(days=1) == timedelta(0):
        return f"{delta.days} day{'s' if delta.days != 1 else ''}"
    return f"{delta.total_seconds() / 3600:g} hours"


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("time must carry a time zone offset")
