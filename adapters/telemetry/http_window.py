"""A ring buffer of recent HTTP request latencies, for percentiles without Prometheus.

The middleware calls :meth:`LatencyWindow.observe` once per request (O(1), no
allocation beyond a tuple); ``/diagnostics`` asks for :meth:`summary`. Route keys are
route templates, so the per-route map is bounded by the app's routes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from adapters.telemetry.recent import percentile

_Entry = tuple[float, float, int]  # (monotonic time, seconds, status)


class LatencyWindow:
    """The last ``size`` requests overall and the last ``per_route`` per route."""

    def __init__(
        self,
        size: int = 4096,
        per_route: int = 512,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._all: deque[_Entry] = deque(maxlen=size)
        self._routes: dict[str, deque[_Entry]] = {}
        self._per_route = per_route
        self._clock = clock
        self._lock = threading.Lock()
        self.total = 0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        entry = (self._clock(), seconds, status)
        key = f"{method} {route}"
        with self._lock:
            self.total += 1
            self._all.append(entry)
            bucket = self._routes.get(key)
            if bucket is None:
                bucket = self._routes[key] = deque(maxlen=self._per_route)
            bucket.append(entry)

    def summary(self, top_routes: int = 10) -> dict[str, Any]:
        """Percentiles (ms), error ratio and rate over the window, plus the busiest routes."""
        with self._lock:
            entries = list(self._all)
            routes = {k: list(v) for k, v in self._routes.items()}
            total = self.total
        busiest = sorted(routes.items(), key=lambda kv: len(kv[1]), reverse=True)[:top_routes]
        return {
            **_figures(entries, self._clock()),
            "totalRequests": total,
            "routes": [{"route": key, **_figures(rows, None)} for key, rows in busiest],
        }


def _figures(entries: list[_Entry], now: float | None) -> dict[str, Any]:
    durations = sorted(e[1] for e in entries)
    errors = sum(1 for e in entries if e[2] >= 500)
    out: dict[str, Any] = {
        "count": len(entries),
        "p50Ms": round(percentile(durations, 0.50) * 1000, 3),
        "p95Ms": round(percentile(durations, 0.95) * 1000, 3),
        "p99Ms": round(percentile(durations, 0.99) * 1000, 3),
        "errorRatio": round(errors / len(entries), 4) if entries else 0.0,
    }
    if now is not None:
        out["requestsPerSecond1m"] = round(_rate(entries, now), 3)
    return out


def _rate(entries: list[_Entry], now: float) -> float:
    """Requests per second over the last minute, or over the window if it spans less."""
    recent = [e for e in entries if now - e[0] <= 60.0]
    if not recent:
        return 0.0
    if len(recent) == len(entries) and now - entries[0][0] > 0:
        # the ring buffer is younger than a minute: its own span is the honest divisor
        return len(recent) / max(now - entries[0][0], 1.0)
    return len(recent) / 60.0
