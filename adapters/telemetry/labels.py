"""Label hygiene: every label value that reaches Prometheus is bounded and PII-free.

Prometheus keeps one time series per distinct label set, so a phone number, a
patient name or an id in a label is both a privacy leak and a memory leak. Callers
pass categories (``"whatsapp"``, ``"ScheduleAppointment"``, ``"CONFLICT"``); this
module enforces it:

* enumerated labels (channel, classification, cached ...) map unknown values to
  ``"other"``;
* free-form labels must look like an identifier token (letters, digits, ``_.:-/``,
  starting with a letter, at most 64 chars, no ``@``, no run of 5+ digits, not a
  UUID or long hex string) or they become ``"other"``;
* each (metric, label) pair accepts at most ``cap`` distinct values per process;
  later newcomers become ``"other"``, so a bug upstream cannot explode the series
  count.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

OTHER = "other"

_TOKEN = re.compile(r"^[A-Za-z][A-Za-z0-9_.:/\-]{0,63}$")
_LONG_DIGITS = re.compile(r"\d{5,}")
_HEXISH = re.compile(r"[0-9a-fA-F]{12,}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-")

CHANNELS = frozenset({"whatsapp", "voice", "web", "referral", "sms", "email", "phone"})
CLASSIFICATIONS = frozenset({"HOT", "WARM", "COLD", "UNQUALIFIED"})
CACHE_RESULTS = frozenset({"hit", "miss", "stale", "bypass"})
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CONFIDENCE_BUCKETS = ("low", "medium", "high")


def is_safe_token(value: str) -> bool:
    """True when ``value`` looks like a category name, not an id, phone or free text."""
    return bool(
        _TOKEN.match(value)
        and "@" not in value
        and not _LONG_DIGITS.search(value)
        and not _HEXISH.search(value)
    )


def enum_label(value: object, allowed: Iterable[str], *, upper: bool = False) -> str:
    """Map ``value`` onto the ``allowed`` set (case-insensitively); anything else is ``other``."""
    text = str(value).strip()
    text = text.upper() if upper else text.lower()
    return text if text in allowed else OTHER


def status_label(status: int) -> str:
    """An HTTP status as a label: the code itself, bounded to 100..599."""
    return str(status) if 100 <= status <= 599 else OTHER


def confidence_bucket(confidence: float) -> str:
    """Bucket an intent confidence in [0, 1]: < 0.5 low, < 0.8 medium, else high."""
    if confidence < 0.5:
        return "low"
    if confidence < 0.8:
        return "medium"
    return "high"


class LabelGuard:
    """Caps distinct free-form values per (metric, label) and rejects unsafe ones."""

    def __init__(self, cap: int = 100) -> None:
        self._cap = cap
        self._seen: dict[tuple[str, str], set[str]] = {}
        self._lock = threading.Lock()

    def token(self, metric: str, label: str, value: object) -> str:
        """Return ``value`` if it is a safe token within the cap, else ``"other"``."""
        text = str(value).strip()
        if not is_safe_token(text):
            return OTHER
        key = (metric, label)
        seen = self._seen.get(key)
        if seen is not None and text in seen:
            return text
        with self._lock:
            seen = self._seen.setdefault(key, set())
            if text in seen:
                return text
            if len(seen) >= self._cap:
                return OTHER
            seen.add(text)
            return text
