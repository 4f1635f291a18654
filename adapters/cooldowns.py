"""Outbound WhatsApp limits in PostgreSQL: template cooldowns and messages per person per day.

Every ``QueueWhatsAppMessage`` passes ``OutboundLimitGuard``, a command-bus middleware
(wired by ``adapters.container``), so the gateway's ``send_whatsapp``, the messaging
activities, the booking workflow's messages and plan steps are all limited in one
place, before anything is recorded. The guard calls ``check_and_reserve``, which in
ONE transaction

1. counts the message against the recipient's daily limit (clinic-local day), and
2. reserves the template's cooldown (``domain.messaging.cooldown_for``): the row of
   (clinic, recipient, template) moves forward only if its cooldown has passed.

Each step is a single ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` statement, so
concurrent sends to one person are decided by PostgreSQL's row lock: of two
reservations of one template, exactly one wins; the other gets ``RateLimited``
with ``retryAfterSeconds``. A refused step rolls the whole reservation back.

A reservation made for a message id is made once: a retry of the same message (same
idempotency key, same id) finds it and is neither counted again nor refused by the
cooldown its first attempt reserved. ``essential`` templates (booking confirmation,
reminders, payment receipt, see ``domain.messaging.daily_limit_applies``) are
counted but never refused by the daily limit.

A send that does not happen after all (consent refused, provider error) should
``release`` the returned ``Reservation``, so the person is not blocked for a
message they never got; releasing twice changes nothing the second time.
Recipients are keyed by ``recipient_key`` (a keyed hash of the phone): the tables
hold no phone numbers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from domain.aggregates import Message
from domain.commands import QueueWhatsAppMessage
from domain.cqrs import Command, CommandContext, CommandResult
from domain.errors import RateLimited
from domain.messaging import cooldown_for, daily_limit_applies
from domain.phones import normalize_phone
from domain.ports import Pseudonymizer
from domain.scheduling import DEFAULT_TIMEZONE

if TYPE_CHECKING:
    from adapters.cqrs import Next

log = logging.getLogger("medicalcor.cooldowns")

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

# An essential message is counted whatever the count already is.
_COUNT_ALWAYS = """
INSERT INTO outbound_message_counts AS c (clinic_id, recipient_key, day, sent)
VALUES ($1, $2, $3, 1)
ON CONFLICT (clinic_id, recipient_key, day) DO UPDATE SET sent = c.sent + 1
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

# First statement of a reservation: a message id already reserved returns no row (the
# unique index makes a concurrent reservation of the same id wait for the first).
_LOG = """
INSERT INTO outbound_reservations
       (clinic_id, recipient_key, template_name, day, reserved_at, message_id)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (clinic_id, message_id) WHERE message_id IS NOT NULL DO NOTHING
RETURNING id
"""

_RESERVED = """
SELECT id, recipient_key, template_name, day, reserved_at FROM outbound_reservations
 WHERE clinic_id = $1 AND message_id = $2
"""

_QUEUED = "SELECT EXISTS (SELECT 1 FROM events WHERE clinic_id = $1 AND stream_id = $2)"

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
    message_id: str | None = None
    fresh: bool = True
    """False when an earlier attempt of the same message made this reservation."""


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
        self,
        clinic_id: str,
        recipient_key: str,
        template_name: str | None,
        now: datetime,
        *,
        message_id: str | None = None,
        enforce_daily: bool = True,
    ) -> Reservation:
        """Count one message to the recipient and reserve the template's cooldown.

        ``template_name=None`` is free text: it counts towards the daily limit and
        has no cooldown. Raises ``RateLimited`` (details ``retryAfterSeconds``,
        ``retryAfter``, ``template``, ``limit``: ``template_cooldown`` or
        ``daily_messages``) and reserves nothing when either limit says no. With a
        ``message_id``, a second call for the same message returns the first
        reservation (``fresh=False``) and checks nothing. ``enforce_daily=False``
        counts the message without letting the daily limit refuse it. Callers that
        only need the check may ignore the returned ``Reservation``.
        """
        _require_aware(now)
        cooldown = cooldown_for(template_name) if template_name else timedelta(0)
        day = self._day(now)
        async with self._pool.acquire() as conn, conn.transaction():
            logged = await self._log(conn, clinic_id, recipient_key, template_name, now, message_id)
            if isinstance(logged, Reservation):
                return logged
            if self._daily_limit is not None:
                await self._count(conn, clinic_id, recipient_key, template_name, now, enforce_daily)
            if template_name and cooldown > timedelta(0):
                await self._reserve(conn, clinic_id, recipient_key, template_name, now, cooldown)
        return Reservation(logged, clinic_id, recipient_key, template_name, day, now, message_id)

    async def message_queued(self, clinic_id: str, message_id: str) -> bool:
        """Whether the outbox already holds this message (its stream exists)."""
        queued = await self._pool.fetchval(_QUEUED, clinic_id, Message.stream_id_for(message_id))
        return bool(queued)

    async def release(self, reservation: Reservation, *, unless_queued: bool = False) -> bool:
        """Undo a reservation whose message was not sent; False when already released.

        ``unless_queued``: keep it when the outbox holds the message after all (a
        command that failed after its events were committed, e.g. a lost connection).
        """
        r = reservation
        async with self._pool.acquire() as conn, conn.transaction():
            if unless_queued and r.message_id is not None:
                stream_id = Message.stream_id_for(r.message_id)
                if await conn.fetchval(_QUEUED, r.clinic_id, stream_id):
                    return False
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

    async def _log(
        self,
        conn: PoolConnectionProxy[Any],
        clinic_id: str,
        recipient_key: str,
        template_name: str | None,
        now: datetime,
        message_id: str | None,
    ) -> int | Reservation:
        """The new reservation's id, or the reservation an earlier attempt of the same
        message made (then nothing more is checked or counted)."""
        args = (clinic_id, recipient_key, template_name, self._day(now), now, message_id)
        for _ in range(3):
            reservation_id: int | None = await conn.fetchval(_LOG, *args)
            if reservation_id is not None:
                return reservation_id
            row = await conn.fetchrow(_RESERVED, clinic_id, message_id)
            if row is not None:
                return Reservation(
                    row["id"],
                    clinic_id,
                    row["recipient_key"],
                    row["template_name"],
                    row["day"],
                    row["reserved_at"],
                    message_id,
                    fresh=False,
                )
            # Released between the two statements (that attempt failed): try again.
        raise RuntimeError(f"could not reserve message {message_id!r}: it keeps changing")

    async def _count(
        self,
        conn: PoolConnectionProxy[Any],
        clinic_id: str,
        recipient_key: str,
        template_name: str | None,
        now: datetime,
        enforce: bool = True,
    ) -> None:
        if not enforce:
            await conn.execute(_COUNT_ALWAYS, clinic_id, recipient_key, self._day(now))
            return
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


def _utc_now() -> datetime:
    return datetime.now(UTC)


class OutboundLimitGuard:
    """Command-bus middleware: every ``QueueWhatsAppMessage`` passes the outbound limits.

    The reservation is taken (or refused with ``RateLimited``) before the command runs,
    so a refused message records nothing at all. The reservation is keyed by the
    message id: a retried or replayed command for the same message reuses it, and a
    retry of a message already in the outbox is never refused. When the command
    fails and the outbox does not hold the message, the reservation is given back.
    """

    def __init__(
        self,
        limits: OutboundLimits,
        pseudonymizer: Pseudonymizer,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._limits = limits
        self._pseudonymizer = pseudonymizer
        self._clock = clock

    async def __call__(self, command: Command, context: CommandContext, nxt: Next) -> CommandResult:
        if not isinstance(command, QueueWhatsAppMessage):
            return await nxt(command, context)
        reservation = await self._reserve(command, context.clinic_id)
        if reservation is None:
            return await nxt(command, context)
        try:
            outcome = await nxt(command, context)
        except Exception:
            await self._give_back(reservation, unless_queued=True)
            raise
        if outcome.result.get("queued") is False and not outcome.replayed:
            # An identical repeat of a message queued before (it was counted then).
            await self._give_back(reservation)
        return outcome

    async def _reserve(self, command: QueueWhatsAppMessage, clinic_id: str) -> Reservation | None:
        """The message's reservation; None for a repeat of a message already queued."""
        key = recipient_key(self._pseudonymizer, clinic_id, command.to)
        try:
            return await self._limits.check_and_reserve(
                clinic_id,
                key,
                command.template_name,
                self._clock(),
                message_id=command.message_id,
                enforce_daily=daily_limit_applies(command.template_name),
            )
        except RateLimited:
            # Its reservation is gone (purged), yet the message is in the outbox: the
            # command only replays what was recorded, so there is nothing to refuse.
            if await self._limits.message_queued(clinic_id, command.message_id):
                return None
            raise

    async def _give_back(self, reservation: Reservation, *, unless_queued: bool = False) -> None:
        if not reservation.fresh:
            return  # an earlier attempt's reservation: that attempt decides
        try:
            await self._limits.release(reservation, unless_queued=unless_queued)
        except Exception:  # never mask the command's own outcome
            log.warning(
                "could not give back the outbound reservation of message %s",
                reservation.message_id,
                exc_info=True,
            )
