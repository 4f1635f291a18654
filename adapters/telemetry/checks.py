"""Health checks: the result type and factories for the checks the composition root registers.

A health check is ``async () -> CheckResult``. It must do real I/O against the thing
it vouches for (``SELECT 1`` on the pool, the Temporal health RPC, the projections'
checkpoints) and is run by :class:`~adapters.telemetry.diagnostics.Diagnostics` with a
timeout, cached for a short TTL, never on every request. Factories here take the
live resources as arguments; Temporal checks are in ``adapters.telemetry.temporal``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from adapters.telemetry.metrics import set_projection_lag
from adapters.telemetry.recent import external_outcomes


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one health check; ``details`` must hold no personal data."""

    ok: bool
    details: Mapping[str, Any] = field(default_factory=dict)


HealthCheck = Callable[[], Awaitable[CheckResult]]


class _Pool(Protocol):
    async def fetchval(self, query: str, *args: Any) -> Any: ...


def postgres_check(pool: _Pool) -> HealthCheck:
    """``SELECT 1`` through the pool; details carry latency and pool occupancy."""

    async def check() -> CheckResult:
        started = time.perf_counter()
        value = await pool.fetchval("SELECT 1")
        details: dict[str, Any] = {"latencyMs": round((time.perf_counter() - started) * 1000, 3)}
        for attr, key in (("get_size", "poolSize"), ("get_idle_size", "poolIdle")):
            fn = getattr(pool, attr, None)
            if callable(fn):
                details[key] = fn()
        return CheckResult(value == 1, details)

    return check


@dataclass(frozen=True)
class ProjectionLag:
    """How far a projection is behind the event store head."""

    events: int
    seconds: float


LagProvider = Callable[[], Awaitable[Mapping[str, ProjectionLag]]]


def projection_lag_check(
    provider: LagProvider, *, max_events: int = 1000, max_seconds: float = 30.0
) -> HealthCheck:
    """Healthy while every projection is within both thresholds.

    ``provider`` reads the checkpoints and the head from the database (the
    projection runner owns that query). Each reading also updates the
    ``medicalcor_projection_lag_*`` gauges of this process.
    """

    async def check() -> CheckResult:
        lags = await provider()
        behind = []
        projections = {}
        for name, lag in lags.items():
            set_projection_lag(name, lag.events, lag.seconds)
            projections[name] = {"events": lag.events, "seconds": round(lag.seconds, 3)}
            if lag.events > max_events or lag.seconds > max_seconds:
                behind.append(name)
        details = {
            "projections": projections,
            "behind": behind,
            "maxEvents": max_events,
            "maxSeconds": max_seconds,
        }
        return CheckResult(not behind, details)

    return check


def external_services_check(
    services: Sequence[str], *, max_error_ratio: float = 0.5, min_calls: int = 5
) -> HealthCheck:
    """Judges external services by this process's recent real calls to them.

    A service fails when at least ``min_calls`` recent calls exist and more than
    ``max_error_ratio`` of them failed; a service without recent calls is reported
    as ``idle`` (no verdict either way). Register it as non-critical: a WhatsApp
    outage degrades the clinic, it does not make the API unready.
    """

    async def check() -> CheckResult:
        summary = external_outcomes().summary()
        failing = []
        report = {}
        for service in services:
            figures = summary.get(service)
            if not figures or figures["recentCalls"] == 0:
                report[service] = {"state": "idle"}
                continue
            bad = figures["recentCalls"] >= min_calls and figures["errorRatio"] > max_error_ratio
            report[service] = {"state": "failing" if bad else "ok", **figures}
            if bad:
                failing.append(service)
        return CheckResult(not failing, {"services": report, "failing": failing})

    return check
