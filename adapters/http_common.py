"""What every outside-world HTTP client here shares: call telemetry and Retry-After."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

log = logging.getLogger(__name__)

OnCall = Callable[[str, str, str, float], None]
"""``on_call(service, operation, status, seconds)``, e.g. ``telemetry.record_external``."""


def call_status(status_code: int) -> str:
    """The telemetry status of an HTTP answer."""
    if status_code < 400:
        return "success"
    if status_code == 429:
        return "rate_limited"
    return "http_5xx" if status_code >= 500 else "http_4xx"


def report(
    on_call: OnCall | None, service: str, operation: str, status: str, seconds: float
) -> None:
    """Hand a call to telemetry; a telemetry failure must never fail the call."""
    if on_call is None:
        return
    try:
        on_call(service, operation, status, seconds)
    except Exception:
        log.exception("on_call telemetry callback failed")


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header (delta seconds or an HTTP date) as seconds from now."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
