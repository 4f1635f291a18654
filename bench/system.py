"""Whole-system throughput: mixed gateway requests through the API at concurrency 16.

The real processes (``bench/cluster.py``): PostgreSQL, the Temporal dev server, the
projector, the worker and the API, each its own process on loopback. A clinic of
``--patients`` consented patients is seeded, then ``--concurrency`` closed-loop
clients send ``POST /ai/execute`` (one call each, an ``Idempotency-Key`` on every
request) for ``--seconds`` after a ``--warmup``: bookings, lead scoring and WhatsApp
templates in turn (``MixedLoad``). Answered requests/s is the figure; then the run
waits for the asynchronous work (booking workflows, deliveries) to finish and checks
every accepted request's effects in the event store (``effects_ok``).

Same-run baseline: ``GET /livez`` on the same API at the same concurrency (the HTTP
floor of one API process on this machine).

Last line: ``{"concurrency", "seconds", "requests", "requests_per_s", "p50_ms",
"p95_ms", "errors", "bookings_per_s", "livez_per_s", "drain_s", "effects_ok"}``.
Usage: ``python bench/system.py [--concurrency 16] [--seconds 60]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

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


async def closed_loop(
    client: Client, load: MixedLoad, concurrency: int, seconds: float
) -> list[Outcome]:
    """``concurrency`` clients, each sending its next request as soon as one is answered."""
    outcomes: list[Outcome] = []
    until = time.monotonic() + seconds

    async def one_client() -> None:
        while time.monotonic() < until:  # bounded by `until`
            function, arguments = load.next()
            outcomes.append(await client.call(function, arguments))

    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return outcomes


async def livez_rate(base_url: str, concurrency: int, seconds: float) -> float:
    """GET /livez per second at ``concurrency`` (the API process's HTTP floor)."""
    done = 0
    until = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=10, limits=limits) as http:

        async def one() -> None:
            nonlocal done
            while time.monotonic() < until:  # bounded by `until`
                (await http.get("/livez")).raise_for_status()
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        return done / (time.monotonic() - started)


def report(outcomes: list[Outcome], seconds: float) -> None:
    by_function: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        by_function[o.function].append(o)
    print(f"{'function':<22}{'requests':>9}{'per s':>8}{'p50 ms':>9}{'p95 ms':>9}{'errors':>8}")
    for name, items in sorted(by_function.items()):
        ms = [o.latency_s * 1000 for o in items]
        errors = sum(not o.accepted for o in items)
        print(f"{name:<22}{len(items):>9}{len(items) / seconds:>8.1f}"
              f"{percentile(ms, 0.5):>9.1f}{percentile(ms, 0.95):>9.1f}{errors:>8}")  # fmt: skip


async def main(concurrency: int, seconds: float, warmup: float, patients: int) -> dict[str, object]:
    state = Path(tempfile.mkdtemp(prefix="medicalcor-system-"))
    async with Cluster(state / "cluster", env=BENCH_ENV) as cluster:
        people = await seed_patients(cluster, patients)
        load = MixedLoad(people, run=1)
        limits = httpx.Limits(max_connections=2 * concurrency, max_keepalive_connections=16)
        client = Client(cluster.api_url, cluster.api_key, limits=limits)
        try:
            livez = await livez_rate(cluster.api_url, concurrency, 5.0)
            baseline = await totals(cluster)
            warm = await closed_loop(client, load, concurrency, warmup)
            cpu_before = cluster.cpu_seconds()
            started = time.monotonic()
            outcomes = await closed_loop(client, load, concurrency, seconds)
            elapsed = time.monotonic() - started
            cpu = cluster.cpu_seconds()
        finally:
            await client.aclose()
        accounted = await account(cluster, [*warm, *outcomes], baseline)
    shutil.rmtree(state, ignore_errors=True)
    report(outcomes, elapsed)
    busy = {k: round((v - cpu_before.get(k, 0.0)) / elapsed, 2) for k, v in cpu.items()}
    print(f"CPU cores busy during the measured run, by component: {busy}")
    print(f"warm-up: {len(warm)} requests in {warmup:.0f} s; accounting: {accounted}")
    latencies = [o.latency_s * 1000 for o in outcomes]
    bookings = accounted["accepted"].get("schedule_appointment", 0)
    return {
        "concurrency": concurrency,
        "seconds": round(elapsed, 1),
        "requests": len(outcomes),
        "requests_per_s": round(len(outcomes) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "errors": sum(not o.accepted for o in outcomes),
        "bookings_per_s": round(bookings / elapsed, 1),
        "livez_per_s": round(livez, 1),
        "drain_s": accounted["drain_s"],
        "effects_ok": accounted["effects_ok"],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--patients", type=int, default=300)
    options = parser.parse_args()
    figures = asyncio.run(
        main(options.concurrency, options.seconds, options.warmup, options.patients)
    )
    print(json.dumps(figures))
