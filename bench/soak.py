"""Soak: a steady mixed load on the whole system for minutes; memory and latency drift.

The real processes (``bench/cluster.py``: PostgreSQL, the Temporal dev server, the
projector, the worker and the API as separate processes on loopback) with a clinic
of ``--patients`` consented patients. After ``--warmup`` seconds of the same load, an
open-loop mix (bookings, lead scoring, WhatsApp templates in turn; ``MixedLoad``)
arrives at ``--rate`` requests/s for ``--minutes`` (default 10), each request with an
``Idempotency-Key`` (retried with the same key on connection errors and 5xx). At
most ``--max-in-flight`` requests are outstanding; a request that would exceed it is
not sent and counts as an error (the system fell behind).

Every 10 s the resident memory (RSS) of the API, the worker and the projector is
sampled; per minute the latency p50/p95 of the requests sent in it. Growth is the
median RSS of the last minute against the first minute's. Afterwards the run waits
for the asynchronous work (workflows, deliveries) and checks the event store holds
exactly the accepted requests' effects (``effects_ok``).

Prints a table per minute; last line: ``{"minutes", "requests", "errors",
"rss_growth_pct_api", "rss_growth_pct_worker", "p95_first_minute_ms",
"p95_last_minute_ms", ...}``. Usage: ``python bench/soak.py [--minutes 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
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

SAMPLE_EVERY_S = 10.0
MEASURED = ("api", "worker", "projector")


@dataclass
class Sent:
    at: float  # seconds since the measured load started
    outcome: Outcome | None  # None: not sent, too many requests in flight


async def open_loop(
    client: Client, load: MixedLoad, rate: float, seconds: float, max_in_flight: int
) -> list[Sent]:
    """Send at ``rate``/s for ``seconds`` whatever the answers take (bounded in flight)."""
    started = time.monotonic()
    sent: list[Sent] = []
    running: set[asyncio.Task[None]] = set()

    async def one(record: Sent, function: str, arguments: dict[str, Any]) -> None:
        record.outcome = await client.call(function, arguments)

    for k in range(int(seconds * rate)):
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


async def sample_memory(
    cluster: Cluster, samples: list[tuple[float, dict[str, float]]], stop: asyncio.Event
) -> None:
    """RSS (MiB) of each measured process every SAMPLE_EVERY_S until ``stop``."""
    started = time.monotonic()
    while not stop.is_set():
        rss = {name: cluster.rss_mb(name) for name in MEASURED}
        samples.append((time.monotonic() - started, {k: v for k, v in rss.items() if v}))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_EVERY_S)


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
    first, last = rows[0][f"rss_{name}"], rows[-1][f"rss_{name}"]
    return round((last - first) / first * 100, 1) if first else 0.0


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
            warm = await open_loop(client, load, rate, options.warmup, cap)
            sampler = asyncio.create_task(sample_memory(cluster, samples, stop))
            started = time.monotonic()
            sent = await open_loop(client, load, rate, options.minutes * 60, cap)
            elapsed = time.monotonic() - started
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
    print(f"wall {elapsed:.0f} s; accounting: {accounted}")
    return {
        "minutes": options.minutes,
        "requests": len(sent),
        "errors": sum(r["errors"] for r in rows),
        "rss_growth_pct_api": growth(rows, "api"),
        "rss_growth_pct_worker": growth(rows, "worker"),
        "p95_first_minute_ms": round(rows[0]["p95_ms"], 1),
        "p95_last_minute_ms": round(rows[-1]["p95_ms"], 1),
        "rss_growth_pct_projector": growth(rows, "projector"),
        "rate_per_s": options.rate,
        "drain_s": accounted["drain_s"],
        "effects_ok": accounted["effects_ok"],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--rate", type=float, default=6.0, help="requests per second")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds, not measured")
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--max-in-flight", type=int, default=64)
    parser.add_argument("--keep-state", action="store_true", help="keep data and logs")
    figures = asyncio.run(main(parser.parse_args()))
    print(json.dumps(figures))
