"""Temporal SDK (Core) metrics of a process's clients, in prometheus-client.

The worker serves the SDK's metrics from the Core runtime's own Prometheus endpoint
(:func:`~adapters.telemetry.temporal.temporal_runtime_with_prometheus`). The API has
one port only, so its client's runtime records into a ``MetricBuffer`` instead and
:class:`TemporalSdkMetrics` replays the buffered updates into ordinary
prometheus-client metrics, which ``/metrics`` renders with the rest (and which, in
multiprocess mode, every uvicorn worker writes to its files like any other metric).

Names, units and latency buckets follow the worker's endpoint
(``counters_total_suffix``, ``unit_suffix``, ``durations_as_seconds``), so
``temporal_request_total`` and ``temporal_request_latency_seconds_bucket`` of both
jobs can be summed by the same query.

Usage (the API's lifespan)::

    sdk = temporal_sdk_metrics()               # once per process; creates the Runtime
    client = await connect_client(settings, runtime=sdk.runtime)
    await sdk.start()                          # drains the buffer every second
    ...
    await sdk.stop()

``/metrics`` also drains it just before rendering (a collect hook), so a scrape
sees every request made until then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase
from temporalio.runtime import (
    BUFFERED_METRIC_KIND_COUNTER,
    BUFFERED_METRIC_KIND_HISTOGRAM,
    BufferedMetric,
    BufferedMetricUpdate,
    MetricBuffer,
    MetricBufferDurationFormat,
    Runtime,
    TelemetryConfig,
)

from adapters.telemetry.metrics import add_collect_hook, remove_collect_hook

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.05, 0.1, 0.5, 1.0, 2.5, 10.0)
"""The Core runtime's buckets for request latencies, in seconds."""
OPTIONAL_LABELS = ("namespace", "task_queue")
"""Attributes Core sets on some updates of a metric only (absent ⇔ empty label)."""
DRAIN_INTERVAL_S = 1.0
BUFFER_SIZE = 100_000
_LABEL_RE = re.compile(r"[^a-zA-Z0-9_]")


@dataclass(frozen=True)
class _Series:
    metric: MetricWrapperBase
    labels: tuple[str, ...]
    kind: int


class TemporalSdkMetrics:
    """A Temporal ``Runtime`` whose SDK metrics land in a prometheus-client registry."""

    def __init__(
        self,
        registry: CollectorRegistry = REGISTRY,
        *,
        buffer_size: int = BUFFER_SIZE,
        global_tags: Mapping[str, str] | None = None,
        drain_interval_s: float = DRAIN_INTERVAL_S,
    ) -> None:
        self.buffer = MetricBuffer(buffer_size, MetricBufferDurationFormat.SECONDS)
        telemetry = TelemetryConfig(metrics=self.buffer, global_tags=dict(global_tags or {}))
        self.runtime = Runtime(telemetry=telemetry)
        self.registry = registry
        self.drain_interval_s = drain_interval_s
        self.dropped_attributes = 0
        self._series: dict[str, _Series] = {}
        self._lock = threading.Lock()
        self._users = 0
        self._task: asyncio.Task[None] | None = None

    # --- buffer → metrics ------------------------------------------------------------

    def drain(self) -> int:
        """Apply every buffered update; thread-safe. Returns how many there were."""
        with self._lock:
            updates = self.buffer.retrieve_updates()
            for update in updates:
                self._apply(update)
        return len(updates)

    def _apply(self, update: BufferedMetricUpdate) -> None:
        series = self._series.get(update.metric.name)
        if series is None:
            series = self._series[update.metric.name] = self._create(
                update.metric, update.attributes
            )
        attributes = update.attributes
        if any(_label(k) not in series.labels for k in attributes):
            self.dropped_attributes += 1  # a new attribute after creation: folded in
        values = {_label(k): str(v) for k, v in attributes.items()}
        target = (
            series.metric.labels(*(values.get(n, "") for n in series.labels))
            if series.labels
            else series.metric
        )
        if series.kind == BUFFERED_METRIC_KIND_COUNTER:
            target.inc(max(update.value, 0))  # type: ignore[attr-defined]
        elif series.kind == BUFFERED_METRIC_KIND_HISTOGRAM:
            target.observe(update.value)  # type: ignore[attr-defined]
        else:
            target.set(update.value)  # type: ignore[attr-defined]

    def _create(self, metric: BufferedMetric, attributes: Mapping[str, object]) -> _Series:
        labels = tuple(sorted({_label(k) for k in attributes} | set(OPTIONAL_LABELS)))
        doc = metric.description or f"Temporal SDK metric {metric.name}."
        kind = metric.kind
        wrapper: MetricWrapperBase
        if kind == BUFFERED_METRIC_KIND_COUNTER:
            wrapper = Counter(metric.name, doc, labels, registry=self.registry)
        elif kind == BUFFERED_METRIC_KIND_HISTOGRAM:
            name = metric.name
            if metric.unit == "s" and not name.endswith("_seconds"):
                name += "_seconds"
            wrapper = Histogram(name, doc, labels, buckets=LATENCY_BUCKETS, registry=self.registry)
        else:
            wrapper = Gauge(
                metric.name, doc, labels, multiprocess_mode="livesum", registry=self.registry
            )
        return _Series(wrapper, labels, kind)

    @property
    def metric_names(self) -> Sequence[str]:
        """The Temporal metric names seen so far (as Core names them)."""
        return sorted(self._series)

    # --- background drain ------------------------------------------------------------

    async def start(self) -> None:
        """Drain every ``drain_interval_s`` and before each ``/metrics`` render.

        Counted: each ``start`` needs its ``stop`` (several apps may share the
        process's instance); the loop runs while any user is left."""
        self._users += 1
        if self._task is None or self._task.done():
            add_collect_hook(self.drain)
            self._task = asyncio.create_task(self._loop(), name="temporal-sdk-metrics")

    async def stop(self) -> None:
        """Undo one ``start``; the last one stops the loop after a final drain."""
        self._users = max(self._users - 1, 0)
        if self._users or self._task is None:
            return
        task, self._task = self._task, None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        remove_collect_hook(self.drain)
        self.drain()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.drain_interval_s)
            try:
                self.drain()
            except Exception:  # a bad update must not end the loop
                log.exception("draining the Temporal SDK metrics failed")


def _label(key: str) -> str:
    cleaned = _LABEL_RE.sub("_", key)
    return cleaned if cleaned and not cleaned[0].isdigit() else f"_{cleaned}"


_process: TemporalSdkMetrics | None = None
_process_lock = threading.Lock()


def temporal_sdk_metrics() -> TemporalSdkMetrics:
    """The process's instance (its Runtime and metrics), created on first use."""
    global _process
    if _process is None:
        with _process_lock:
            if _process is None:
                _process = TemporalSdkMetrics()
    return _process
