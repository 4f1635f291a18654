"""Diagnostics: what ``/diagnostics``, ``/diagnostics/quick`` and ``/diagnostics/health`` serve.

Budgets: ``quick()`` does no I/O and no await (≤ 2 ms); ``snapshot()`` awaits
nothing slow (≤ 20 ms): it assembles the *cached* figures (metric figures, HTTP
latency window, process facts from psutil), the span buffer's counters and the
*cached* results of health checks and info providers.

While the background loop runs, the figures are recomputed once per
``metrics_ttl`` in a thread (reading every metric family, or in multiprocess mode
every worker's files, costs several ms; psutil reads ``/proc``), so concurrent
snapshot requests share one computation instead of each doing it. Without the loop
(tests, scripts) ``snapshot()`` computes them inline. Checks and providers are
refreshed

* by :meth:`Diagnostics.refresh` (single-flight, every check under a timeout),
* in the background loop started with :meth:`Diagnostics.start` (the app's lifespan),
* and, stale-while-revalidate, kicked off (not awaited) by ``snapshot()``.

``health()`` (``/diagnostics/health``) waits for a refresh when results are older
than the TTL, so readiness probes see real, recent checks.

Health status: ``unhealthy`` when a critical check is down, ``starting`` while a
critical check has never run, ``degraded`` when only non-critical ones are down,
else ``healthy``. Checks are registered by the composition root; with none
registered the process reports ``healthy`` on its own account only.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import psutil

from adapters.telemetry import figures
from adapters.telemetry.checks import CheckResult, HealthCheck
from adapters.telemetry.figures import Samples
from adapters.telemetry.http_window import LatencyWindow
from adapters.telemetry.metrics import (
    Metrics,
    exposition_registry,
    get_metrics,
    multiprocess_dir,
    set_health_check,
)
from adapters.telemetry.recent import external_outcomes
from adapters.telemetry.redaction import redact_text
from adapters.telemetry.span_buffer import SpanBuffer

InfoProvider = Callable[[], Awaitable[Mapping[str, Any]]]
T = TypeVar("T")
log = logging.getLogger(__name__)

HEALTHY, DEGRADED, UNHEALTHY, STARTING = "healthy", "degraded", "unhealthy", "starting"


@dataclass
class _Check:
    name: str
    fn: HealthCheck
    critical: bool
    kind: str
    result: CheckResult | None = None
    checked_at: float | None = None  # monotonic
    checked_wall: float | None = None
    latency_ms: float = 0.0
    error: str | None = None

    def report(self, now: float) -> dict[str, Any]:
        state = "pending" if self.result is None else "up" if self.result.ok else "down"
        return {
            "status": state,
            "critical": self.critical,
            "kind": self.kind,
            "latencyMs": round(self.latency_ms, 3),
            "checkedAt": self.checked_wall,
            "ageSeconds": round(now - self.checked_at, 3) if self.checked_at else None,
            "error": self.error,
            "details": dict(self.result.details) if self.result else {},
        }


@dataclass
class _Provider:
    fn: InfoProvider
    value: Mapping[str, Any] | None = None
    fetched_at: float | None = None
    error: str | None = None


@dataclass
class DiagnosticsConfig:
    """Timings of the refresh machinery (seconds)."""

    check_ttl: float = 5.0
    check_timeout: float = 2.0
    provider_ttl: float = 5.0
    metrics_ttl: float = 1.0
    loop_interval: float = 1.0


class Diagnostics:
    """Holds health checks, info providers and the HTTP window of one process."""

    def __init__(
        self,
        *,
        service: str,
        version: str = "0.1.0",
        metrics: Metrics | None = None,
        span_buffer: SpanBuffer | None = None,
        config: DiagnosticsConfig | None = None,
        http_window: LatencyWindow | None = None,
    ) -> None:
        self.service = service
        self.version = version
        self.metrics = metrics if metrics is not None else get_metrics()
        self.span_buffer = span_buffer
        self.config = config or DiagnosticsConfig()
        self.http = http_window or LatencyWindow()
        self.in_flight = 0
        self._checks: dict[str, _Check] = {}
        self._providers: dict[str, _Provider] = {}
        self._started_wall = time.time()
        self._started = time.monotonic()
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # primes the CPU counter; next reads are deltas
        self._refreshing: asyncio.Task[None] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._loop_lag_ms: float | None = None
        self._figures: tuple[float, dict[str, Any]] | None = None  # (monotonic, sections)
        self._figures_lock = threading.Lock()

    # --- registration ----------------------------------------------------------

    def register_check(
        self, name: str, fn: HealthCheck, *, critical: bool = True, kind: str = "infrastructure"
    ) -> None:
        """Add a health check; ``kind`` ``external`` lists it under external services."""
        self._checks[name] = _Check(name, fn, critical, kind)

    def register_provider(self, section: str, fn: InfoProvider) -> None:
        """Add an I/O-backed snapshot section (e.g. ``workflows`` counts from Temporal)."""
        self._providers[section] = _Provider(fn)

    @property
    def check_names(self) -> list[str]:
        """Names of the registered checks."""
        return list(self._checks)

    # --- hot path --------------------------------------------------------------

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        """Called by the HTTP middleware for every finished request."""
        self.http.observe(method, route, status, seconds)

    # --- refresh ---------------------------------------------------------------

    def _stale(self, now: float) -> bool:
        ttl = self.config.check_ttl
        checks = any(
            c.checked_at is None or now - c.checked_at >= ttl for c in self._checks.values()
        )
        providers = any(
            p.fetched_at is None or now - p.fetched_at >= self.config.provider_ttl
            for p in self._providers.values()
        )
        return checks or providers

    async def refresh(self, *, force: bool = False) -> None:
        """Re-run stale (or, with ``force``, all) checks and providers; single-flight."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = _detached_task(self._refresh(force))
        await asyncio.shield(self._refreshing)

    def _kick_refresh(self) -> None:
        if self._stale(time.monotonic()) and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = _detached_task(self._refresh(False))

    async def _refresh(self, force: bool) -> None:
        now = time.monotonic()
        jobs: list[Awaitable[None]] = [
            self._run_check(c)
            for c in self._checks.values()
            if force or c.checked_at is None or now - c.checked_at >= self.config.check_ttl
        ]
        jobs += [
            self._run_provider(p)
            for p in self._providers.values()
            if force or p.fetched_at is None or now - p.fetched_at >= self.config.provider_ttl
        ]
        await asyncio.gather(*jobs)

    async def _run_check(self, check: _Check) -> None:
        started = time.perf_counter()
        try:
            result = await asyncio.wait_for(check.fn(), self.config.check_timeout)
            error = None
        except TimeoutError:
            result, error = CheckResult(False), f"timed out after {self.config.check_timeout}s"
        except Exception as exc:  # a failing dependency is a result, not a crash
            result, error = CheckResult(False), redact_text(f"{type(exc).__name__}: {exc}")[:300]
        check.latency_ms = (time.perf_counter() - started) * 1000
        check.result, check.error = result, error
        check.checked_at, check.checked_wall = time.monotonic(), time.time()
        set_health_check(check.name, result.ok)

    async def _run_provider(self, provider: _Provider) -> None:
        try:
            provider.value = dict(await asyncio.wait_for(provider.fn(), self.config.check_timeout))
            provider.error = None
        except Exception as exc:  # keep the last good value, say why it is old
            provider.error = redact_text(f"{type(exc).__name__}: {exc}")[:300]
        provider.fetched_at = time.monotonic()

    async def start(self) -> None:
        """Start the background refresher (call from the app's lifespan)."""
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = _detached_task(self._loop(), name="diagnostics-refresh")

    async def stop(self) -> None:
        """Stop the background refresher and any refresh in flight."""
        for task in (self._loop_task, self._refreshing):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._loop_task = None

    async def _loop(self) -> None:
        interval = self.config.loop_interval
        await self._refresh_figures()
        while True:
            before = time.monotonic()
            await asyncio.sleep(interval)
            self._loop_lag_ms = max(0.0, (time.monotonic() - before - interval) * 1000)
            self._kick_refresh()
            if self._figures_age() >= self.config.metrics_ttl:
                await self._refresh_figures()

    async def _refresh_figures(self) -> None:
        try:
            await asyncio.to_thread(self._compute_figures)
        except Exception:  # keep the last figures; the next turn tries again
            log.exception("computing the diagnostics figures failed")

    # --- reports ---------------------------------------------------------------

    def health_status(self) -> str:
        """Overall status from the cached check results (no I/O).

        ``starting`` while a critical check has never run (only ``quick()`` can see
        that: ``health()`` runs the checks first).
        """
        status = HEALTHY
        for check in self._checks.values():
            if check.result is None and check.critical:
                status = STARTING
                continue
            up = check.result is not None and check.result.ok
            if not up and check.critical:
                return UNHEALTHY
            if not up and status == HEALTHY:
                status = DEGRADED
        return status

    def _health_report(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "status": self.health_status(),
            "checks": {name: c.report(now) for name, c in self._checks.items()},
        }

    async def health(self) -> dict[str, Any]:
        """Health with every check at most ``check_ttl`` old (awaits a refresh if needed)."""
        now = time.monotonic()
        if any(
            c.checked_at is None or now - c.checked_at >= self.config.check_ttl
            for c in self._checks.values()
        ):
            await self.refresh()
        return {**self._service_info(), **self._health_report()}

    def quick(self) -> dict[str, Any]:
        """Liveness figures without I/O: status from cached checks, uptime, load."""
        now = time.monotonic()
        ages = [now - c.checked_at for c in self._checks.values() if c.checked_at is not None]
        return {
            "status": self.health_status(),
            "service": self.service,
            "version": self.version,
            "pid": os.getpid(),
            "uptimeSeconds": round(now - self._started, 3),
            "inFlightRequests": self.in_flight,
            "requestsServed": self.http.total,
            "checksAgeSeconds": round(max(ages), 3) if ages else None,
            "timestamp": time.time(),
        }

    async def snapshot(self) -> dict[str, Any]:
        """The full picture from cached and in-memory data (see module docstring)."""
        started = time.perf_counter()
        self._kick_refresh()
        cached = self._current_figures()
        now = time.monotonic()
        checks = {n: c.report(now) for n, c in self._checks.items() if c.kind == "external"}
        snap: dict[str, Any] = {
            **self._service_info(),
            "process": {**cached["process"], **self._live_process_info()},
            "http": cached["http"],
            "business": cached["business"],
            "cqrs": cached["cqrs"],
            "ai": cached["ai"],
            "projections": self._provided("projections") or cached["projections"],
            "workflows": {**cached["workflows"], **(self._provided("workflows") or {})},
            "external": {**cached["external"], "checks": checks},
            "health": self._health_report(),
            "traces": self.span_buffer.stats() if self.span_buffer else None,
        }
        for section in self._providers.keys() - {"projections", "workflows"}:
            snap[section] = self._provided(section)
        snap["figuresAgeSeconds"] = round(self._figures_age(), 3)
        snap["generatedInMs"] = round((time.perf_counter() - started) * 1000, 3)
        return snap

    # --- figures (cached while the loop runs) ------------------------------------

    def _figures_age(self) -> float:
        cached = self._figures
        return time.monotonic() - cached[0] if cached is not None else float("inf")

    def _current_figures(self) -> dict[str, Any]:
        """The loop's figures while they are fresh; computed here otherwise."""
        cached = self._figures
        looping = self._loop_task is not None and not self._loop_task.done()
        if looping and cached is not None and self._figures_age() <= self.config.metrics_ttl * 5:
            return cached[1]
        return self._compute_figures()

    def _compute_figures(self) -> dict[str, Any]:
        """Every section derived from metrics, the HTTP window and psutil (thread-safe)."""
        with self._figures_lock:
            samples = self._samples()
            sections: dict[str, Any] = {
                "process": self._process_stats(),
                "http": self.http.summary(),
                "business": figures.business(samples),
                "cqrs": figures.cqrs(samples),
                "ai": figures.ai(samples),
                "projections": figures.projections(samples),
                "workflows": figures.workflows(samples),
                "external": self._external(samples),
            }
            self._figures = (time.monotonic(), sections)
            return sections

    def _service_info(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "version": self.version,
            "pid": os.getpid(),
            "startedAt": self._started_wall,
            "uptimeSeconds": round(time.monotonic() - self._started, 3),
            "multiprocessMetrics": multiprocess_dir() is not None,
        }

    def _process_stats(self) -> dict[str, Any]:
        """psutil's view (reads ``/proc``); CPU is the share since the previous reading."""
        proc = self._process
        with proc.oneshot():
            info: dict[str, Any] = {
                "cpuPercent": proc.cpu_percent(None),
                "rssBytes": proc.memory_info().rss,
                "threads": proc.num_threads(),
            }
            if hasattr(proc, "num_fds"):
                info["openFds"] = proc.num_fds()
        return info

    def _live_process_info(self) -> dict[str, Any]:
        """What only the event loop's thread can read, read now."""
        try:
            tasks: int | None = len(asyncio.all_tasks())
        except RuntimeError:
            tasks = None
        lag = self._loop_lag_ms
        return {
            "asyncioTasks": tasks,
            "eventLoopLagMs": round(lag, 3) if lag is not None else None,
            "inFlightRequests": self.in_flight,
        }

    def _provided(self, section: str) -> dict[str, Any] | None:
        provider = self._providers.get(section)
        if provider is None:
            return None
        age = time.monotonic() - provider.fetched_at if provider.fetched_at else None
        return {
            **(provider.value or {}),
            "ageSeconds": round(age, 3) if age is not None else None,
            "error": provider.error,
            "pending": provider.fetched_at is None,
        }

    def _external(self, samples: Samples) -> dict[str, Any]:
        return {
            "requests": figures.by_label(
                samples, "medicalcor_external_service_requests_total", "service"
            ),
            "errors": figures.by_label(
                samples,
                "medicalcor_external_service_requests_total",
                "service",
                figures.is_failure,
            ),
            "recent": external_outcomes().summary(),
        }

    def _samples(self) -> Samples:
        """Current metric samples: own objects, or all workers' files in multiprocess mode.

        Only ``medicalcor_*`` families: the figures read nothing else, and the HTTP
        histogram (routes × buckets) alone would cost more than all of them."""
        if multiprocess_dir() is not None:
            return _read_multiprocess()
        out: Samples = {}
        for family in self.metrics.families():
            if not next(iter(family.describe())).name.startswith("medicalcor_"):
                continue
            for metric in family.collect():
                for s in metric.samples:
                    out.setdefault(s.name, []).append((s.labels, s.value))
        return out


def _detached_task(coro: Coroutine[Any, Any, T], name: str | None = None) -> asyncio.Task[T]:
    """A background task outside the caller's context.

    Started from a request, a task would inherit its trace: every health-check query
    would hang under whichever ``/diagnostics`` request happened to kick the refresh
    (often long finished). With an empty context they are traces of their own."""
    return asyncio.get_running_loop().create_task(coro, name=name, context=contextvars.Context())


def _read_multiprocess() -> Samples:
    out: Samples = {}
    for collected in exposition_registry().collect():
        if collected.name.startswith("medicalcor_"):
            for s in collected.samples:
                out.setdefault(s.name, []).append((s.labels, s.value))
    return out
