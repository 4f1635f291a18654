"""Soak: a steady mixed load on the whole system for minutes; memory and latency drift.

The real processes (``bench/cluster.py``: PostgreSQL, the Temporal dev server, the
projector, the worker and the API as separate processes on loopback) with a clinic
of ``--patients`` consented patients. After a warm-up of the same load, an open-loop
mix (bookings, lead scoring, WhatsApp templates in turn; ``MixedLoad``) arrives at
``--rate`` requests/s for ``--minutes`` (default 10), each request with an
``Idempotency-Key`` (retried with the same key on connection errors and 5xx). At
most ``--max-in-flight`` requests are outstanding; a request that would exceed it is
not sent and counts as an error (the system fell behind).

The warm-up lasts ``--warmup`` seconds (30) and then goes on until the worker's
workflow cache for the bookings queue is full (``MEDICALCOR_WORKER_CACHED_WORKFLOWS``,
200; read from the worker's Temporal SDK metric ``temporal_sticky_cache_size``), for
at most ``--fill-timeout`` more seconds (300). Every booking stays open for days
waiting for its reminder timers, so that cache fills at the booking rate (2/s here:
~100 s) and then stays full; each cached booking is a sandboxed workflow instance of
~0.16 MiB, so the worker's RSS rises by ~30 MiB while it fills (measured: 137 → 166
MiB as the cache went 19 → 200). Measuring only once it is full keeps that bounded
filling out of the verdict, whatever ``--minutes``. Workflows evicted from the cache
are reference cycles freed by the garbage collector's full collections (one per ~200
evictions), so the worker's RSS saw-tooths by ~10-15 MiB over ~100 s; the other
processes' bounded caches are small (the API's 2,000-trace span buffer fills in ~5
minutes at 6 requests/s; the worker and the projector keep 16 traces).

Every ``--sample-every`` s (10) the resident memory (RSS, whole process tree) of the
API, the worker and the projector is sampled, with the size of that workflow cache;
per minute the latency p50/p95 of the requests sent in it. Afterwards the run waits
for the asynchronous work (workflows, deliveries) and checks the event store holds
exactly the accepted requests' effects (``effects_ok``).

Memory is called flat by one criterion (``FLAT_LIMIT_PCT``): for every measured
process, the least-squares line through the RSS samples of the second half of the
measured run rises by less than 5 % of its value at half-time over that half. A leak
keeps rising there; a saw-tooth averages out over several periods, so the verdict
needs the default 10 minutes (a 3-minute run's 90 s second half is about one period).

Prints a table per minute and the RSS samples; last line: ``{"minutes", "requests",
"errors", "rss_start_mb_worker", "rss_end_mb_worker", "rss_second_half_pct_worker",
"memory_flat", "p95_first_minute_ms", "p95_last_minute_ms", "warmup_s",
"workflow_cache_at_start", ...}`` (the same per process for api and projector).
Usage: ``python bench/soak.py [--minutes 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench.cluster import (
    BENCH_ENV,
    Client,
    Cluster,
    MixedLoad,
    Outcome,
    account,
    percentile,
    seed_patients,
    totals,
)

MEASURED = ("api", "worker", "projector")
CACHE_QUEUE = "bookings"
"""The task queue whose workflows stay open for days (bookings wait for their reminders),
so its worker's workflow cache fills up and stays full."""
CACHE_KEY = "cached_bookings"
"""Key of the worker's bookings workflow cache size in a memory sample."""
FLAT_LIMIT_PCT = 5.0
"""Largest RSS rise over the second half of the run (fitted line) still called flat."""


@dataclass
class Sent:
    at: float  # seconds since the measured load started
    outcome: Outcome | None  # None: not sent, too many requests in flight


async def open_loop(
    client: Client,
    load: MixedLoad,
    rate: float,
    seconds: float,
    max_in_flight: int,
    stop: asyncio.Event | None = None,
) -> list[Sent]:
    """Send at ``rate``/s for ``seconds`` (or until ``stop`` is set) whatever the answers
    take (bounded in flight); returns once every request sent has its answer."""
    started = time.monotonic()
    sent: list[Sent] = []
    running: set[asyncio.Task[None]] = set()

    async def one(record: Sent, function: str, arguments: dict[str, Any]) -> None:
        record.outcome = await client.call(function, arguments)

    for k in itertools.count():
        if k >= seconds * rate or (stop is not None and stop.is_set()):
            break
        await asyncio.sleep(max(0.0, started + k / rate - time.monotonic()))
        record = Sent(at=time.monotonic() - started, outcome=None)
        sent.append(record)
        if len(running) >= max_in_flight:
            continue
        task = asyncio.create_task(one(record, *load.next()))
        running.add(task)
        task.add_done_callback(running.discard)
    if running:
        await asyncio.wait(running)
    return sent


async def workflow_cache(cluster: Cluster) -> int | None:
    """Workflows the worker keeps cached for the bookings queue (``None``: unreadable).

    Read from the Temporal SDK's own metrics endpoint of the worker
    (``temporal_sticky_cache_size`` of the queue's task queue label)."""
    url = f"http://127.0.0.1:{cluster.ports.temporal_metrics}/metrics"
    try:
        async with httpx.AsyncClient(timeout=2.0) as http:
            body = (await http.get(url)).text
    except httpx.HTTPError:
        return None
    return cached_workflows(body, f"{cluster.task_queue_prefix}-{CACHE_QUEUE}")


def cached_workflows(metrics: str, task_queue: str) -> int | None:
    """``temporal_sticky_cache_size`` of ``task_queue`` in a Prometheus text exposition."""
    label = f'task_queue="{task_queue}"'
    for line in metrics.splitlines():
        if line.startswith("temporal_sticky_cache_size{") and label in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return None


async def fill_workflow_cache(cluster: Cluster, bound: int, timeout_s: float) -> int | None:
    """Wait (the warm-up load still running) until the worker's bookings workflow cache
    holds ``bound`` workflows, at most ``timeout_s``; the size it last read."""
    deadline = time.monotonic() + timeout_s
    size, unreadable = None, 0
    while True:
        size = await workflow_cache(cluster)
        unreadable = unreadable + 1 if size is None else 0
        if (size is not None and size >= bound) or unreadable >= 3:
            return size
        if time.monotonic() >= deadline:
            return size
        await asyncio.sleep(min(2.0, max(0.0, deadline - time.monotonic())))


def cache_bound(cluster: Cluster) -> int:
    """``MEDICALCOR_WORKER_CACHED_WORKFLOWS`` as the cluster's worker gets it."""
    from adapters.settings import Settings

    default = Settings.model_fields["worker_cached_workflows"].default
    return int(cluster.env().get("MEDICALCOR_WORKER_CACHED_WORKFLOWS", default))


async def sample_memory(
    cluster: Cluster,
    samples: list[tuple[float, dict[str, float]]],
    stop: asyncio.Event,
    every_s: float,
) -> None:
    """RSS (MiB) of each measured process every ``every_s`` until ``stop`` (and once then),
    with the size of the worker's bookings workflow cache (``CACHE_KEY``)."""
    started = time.monotonic()
    while True:
        rss = {name: cluster.rss_mb(name) for name in MEASURED}
        sample = {k: v for k, v in rss.items() if v}
        cached = await workflow_cache(cluster)
        if cached is not None:
            sample[CACHE_KEY] = float(cached)
        samples.append((time.monotonic() - started, sample))
        if stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


def minute_rows(sent: list[Sent], samples: list[tuple[float, dict[str, float]]], minutes: int
                ) -> list[dict[str, Any]]:  # fmt: skip
    rows = []
    for m in range(minutes):
        items = [s for s in sent if m * 60 <= s.at < (m + 1) * 60]
        answered = [s.outcome for s in items if s.outcome is not None]
        ms = [o.latency_s * 1000 for o in answered]
        rss = [r for t, r in samples if m * 60 <= t < (m + 1) * 60]
        rows.append(
            {
                "minute": m + 1,
                "requests": len(items),
                "errors": sum(s.outcome is None or not s.outcome.accepted for s in items),
                "retried": sum(o.attempts > 1 for o in answered),
                "p50_ms": percentile(ms, 0.5),
                "p95_ms": percentile(ms, 0.95),
                **{f"rss_{n}": _median([r[n] for r in rss if n in r]) for n in MEASURED},
            }
        )
    return rows


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def growth(rows: list[dict[str, Any]], name: str) -> float:
    """Median RSS of the last minute against the first minute's, in %."""
    first, last = rows[0][f"rss_{name}"], rows[-1][f"rss_{name}"]
    return round((last - first) / first * 100, 1) if first else 0.0


def second_half_growth(samples: list[tuple[float, dict[str, float]]], name: str) -> float:
    """Rise of the least-squares line through the second half's samples, in % of its
    value at half-time (the flatness criterion; 0.0 with fewer than three samples)."""
    if not samples:
        return 0.0
    half = samples[-1][0] / 2
    points = [(t, r[name]) for t, r in samples if t >= half and name in r]
    if len(points) < 3:
        return 0.0
    slope, intercept = statistics.linear_regression(*zip(*points, strict=True))
    at_half = slope * half + intercept
    rise = slope * (samples[-1][0] - half)
    return round(rise / at_half * 100, 1) if at_half > 0 else 0.0


def memory_figures(samples: list[tuple[float, dict[str, float]]]) -> dict[str, Any]:
    """Per process: RSS at the first and last sample, the second-half rise; flat or not."""
    out: dict[str, Any] = {}
    for name in MEASURED:
        values = [r[name] for _, r in samples if name in r]
        out[f"rss_start_mb_{name}"] = round(values[0], 1) if values else 0.0
        out[f"rss_end_mb_{name}"] = round(values[-1], 1) if values else 0.0
        out[f"rss_second_half_pct_{name}"] = second_half_growth(samples, name)
    out["memory_flat"] = all(
        out[f"rss_second_half_pct_{n}"] < FLAT_LIMIT_PCT for n in MEASURED
    ) and all(out[f"rss_end_mb_{n}"] > 0 for n in MEASURED)
    out["flat_limit_pct"] = FLAT_LIMIT_PCT
    return out


def print_samples(samples: list[tuple[float, dict[str, float]]]) -> None:
    print(f"{'t s':>6}" + "".join(f"{'RSS ' + n:>16}" for n in MEASURED)
          + f"{'cached bookings':>17}  (MiB; workflows)")  # fmt: skip
    for t, rss in samples:
        cached = f"{rss[CACHE_KEY]:>17.0f}" if CACHE_KEY in rss else f"{'?':>17}"
        print(f"{t:>6.0f}" + "".join(f"{rss.get(n, 0.0):>16.1f}" for n in MEASURED) + cached)


def _last_cache(samples: list[tuple[float, dict[str, float]]]) -> int | None:
    values = [r[CACHE_KEY] for _, r in samples if CACHE_KEY in r]
    return int(values[-1]) if values else None


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'min':>4}{'requests':>10}{'errors':>8}{'retried':>9}{'p50 ms':>9}{'p95 ms':>9}"
          f"{'RSS api':>10}{'RSS worker':>12}{'RSS proj':>10}  (MiB)")  # fmt: skip
    for r in rows:
        print(f"{r['minute']:>4}{r['requests']:>10}{r['errors']:>8}{r['retried']:>9}"
              f"{r['p50_ms']:>9.1f}{r['p95_ms']:>9.1f}{r['rss_api']:>10.1f}"
              f"{r['rss_worker']:>12.1f}{r['rss_projector']:>10.1f}")  # fmt: skip


async def main(options: argparse.Namespace) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="medicalcor-soak-"))
    async with Cluster(state / "cluster", env=BENCH_ENV) as cluster:
        people = await seed_patients(cluster, options.patients)
        load = MixedLoad(people, run=2)
        limits = httpx.Limits(max_connections=options.max_in_flight, max_keepalive_connections=32)
        client = Client(cluster.api_url, cluster.api_key, deadline_s=30.0, limits=limits)
        samples: list[tuple[float, dict[str, float]]] = []
        stop = asyncio.Event()
        try:
            baseline = await totals(cluster)
            rate, cap = options.rate, options.max_in_flight
            bound = cache_bound(cluster)
            warm_started = time.monotonic()
            warm_stop = asyncio.Event()
            warming = asyncio.create_task(open_loop(client, load, rate, math.inf, cap, warm_stop))
            await asyncio.sleep(options.warmup)
            cached_at_start = await fill_workflow_cache(cluster, bound, options.fill_timeout)
            warm_stop.set()
            warm = await warming
            warmup_s = time.monotonic() - warm_started
            load_before = os.getloadavg()[0]
            sampler = asyncio.create_task(
                sample_memory(cluster, samples, stop, options.sample_every)
            )
            started = time.monotonic()
            sent = await open_loop(client, load, rate, options.minutes * 60, cap)
            elapsed = time.monotonic() - started
            load_after = os.getloadavg()[0]
            stop.set()
            await sampler
        finally:
            await client.aclose()
        outcomes = [s.outcome for s in [*warm, *sent] if s.outcome is not None]
        accounted = await account(cluster, outcomes, baseline)
    if not options.keep_state:
        shutil.rmtree(state, ignore_errors=True)
    rows = minute_rows(sent, samples, options.minutes)
    print_table(rows)
    print_samples(samples)
    memory = memory_figures(samples)
    verdict = "flat" if memory["memory_flat"] else "NOT flat"
    print(f"memory {verdict}: second-half rise (fitted) per process "
          f"{ {n: memory[f'rss_second_half_pct_{n}'] for n in MEASURED} } %, "
          f"limit < {FLAT_LIMIT_PCT} %")  # fmt: skip
    print(f"warm-up {warmup_s:.0f} s; the worker's bookings workflow cache held "
          f"{cached_at_start} of {bound} workflows when the measured run began")  # fmt: skip
    print(f"wall {elapsed:.0f} s; load average {load_before:.1f} -> {load_after:.1f} "
          f"on {os.cpu_count()} CPUs; accounting: {accounted}")  # fmt: skip
    return {
        "minutes": options.minutes,
        "requests": len(sent),
        "errors": sum(r["errors"] for r in rows),
        "p50_first_minute_ms": round(rows[0]["p50_ms"], 1),
        "p95_first_minute_ms": round(rows[0]["p95_ms"], 1),
        "p50_last_minute_ms": round(rows[-1]["p50_ms"], 1),
        "p95_last_minute_ms": round(rows[-1]["p95_ms"], 1),
        **memory,
        **{f"rss_growth_pct_{n}": growth(rows, n) for n in MEASURED},
        "rate_per_s": options.rate,
        "warmup_s": round(warmup_s, 1),
        "workflow_cache_bound": bound,
        "workflow_cache_at_start": cached_at_start,
        "workflow_cache_at_end": _last_cache(samples),
        "bookings_accepted": accounted["accepted"].get("schedule_appointment", 0),
        "load_average": round(max(load_before, load_after), 2),
        "drain_s": accounted["drain_s"],
        "effects_ok": accounted["effects_ok"],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--rate", type=float, default=6.0, help="requests per second")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds at least, not measured")
    parser.add_argument(
        "--fill-timeout",
        type=float,
        default=300.0,
        help="seconds the warm-up may go on, after --warmup, until the worker's bookings "
        "workflow cache is full (0: do not wait)",
    )
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--max-in-flight", type=int, default=64)
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between RSS")
    parser.add_argument("--keep-state", action="store_true", help="keep data and logs")
    figures = asyncio.run(main(parser.parse_args()))
    print(json.dumps(figures))
