"""Recent outcomes kept in-process for ``/diagnostics``: external calls, percentiles.

Prometheus answers "how did it go over the last hour"; diagnostics also wants "what
happened on the last calls" without a Prometheus round trip, so ``record_external``
also feeds this bounded window.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass
class _Outcome:
    at: float
    ok: bool
    seconds: float


class ExternalOutcomes:
    """The last few calls per external service, kept in-process for ``/diagnostics``."""

    def __init__(self, per_service: int = 200) -> None:
        self._per_service = per_service
        self._calls: dict[str, deque[_Outcome]] = {}
        self._lock = threading.Lock()

    def record(self, service: str, ok: bool, seconds: float) -> None:
        """Remember one call outcome (bounded per service)."""
        with self._lock:
            calls = self._calls.get(service)
            if calls is None:
                calls = self._calls[service] = deque(maxlen=self._per_service)
            calls.append(_Outcome(time.time(), ok, seconds))

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per service: calls, error ratio, p95 ms and last call time of the window."""
        with self._lock:
            snapshot = {k: list(v) for k, v in self._calls.items()}
        out: dict[str, dict[str, Any]] = {}
        for service, calls in snapshot.items():
            durations = sorted(c.seconds for c in calls)
            errors = sum(1 for c in calls if not c.ok)
            out[service] = {
                "recentCalls": len(calls),
                "errorRatio": round(errors / len(calls), 4) if calls else 0.0,
                "p95Ms": round(percentile(durations, 0.95) * 1000, 3),
                "lastCallAt": max(c.at for c in calls) if calls else None,
                "lastOk": calls[-1].ok if calls else None,
            }
        return out


_outcomes = ExternalOutcomes()


def external_outcomes() -> ExternalOutcomes:
    """The process-wide recent external call outcomes."""
    return _outcomes


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[rank]
