"""Benchmark ``/diagnostics/quick`` and ``/diagnostics`` under write load.

Starts a uvicorn server on loopback in a child process (``--app module:factory``,
default :func:`create_app`, the observability router and middleware on their own),
warms it up, then, while ``--writers`` clients keep POSTing to ``--write-path``,
sends ``--requests`` GETs at concurrency 16 to each diagnostics endpoint with an
``httpx.AsyncClient``. The write load runs in a separate process so that the
measuring client's event loop only carries the 16 diagnostics requests.

Two latencies are measured per request:

* server: the app's own handling time, from the ``Server-Timing: app;dur=`` header
  the observability middleware sets (request in, response start out). The targets
  (quick p95 ≤ 2 ms, snapshot p95 ≤ 20 ms) apply to this figure;
* client: wall time seen by the client over loopback, which at concurrency 16
  against one event loop is mostly queueing behind the other 15 requests and the
  write load; printed and reported for context.

The last line is JSON: ``{"quick_p50_ms", "quick_p95_ms", "snapshot_p50_ms",
"snapshot_p95_ms", ...client figures...}``.

The default write load (``POST /bench/write``) exercises the telemetry path of a
command (command and event-store metrics, a span tree, the latency window) without
a database; with ``--database-url`` each write is also a real INSERT through an
asyncpg pool and a Postgres health check is registered. Point ``--app`` at the full
application and ``--write-path``/``--write-body``/``--header`` at a real write
endpoint to measure the real thing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as ``python bench/diagnostics.py``
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402

DEFAULT_APP = "bench.diagnostics:create_app"
DATABASE_ENV = "MEDICALCOR_BENCH_DATABASE_URL"
MULTIPROC_ENV_KEY = "PROMETHEUS_MULTIPROC_DIR"


def create_app() -> FastAPI:
    """The standalone app: observability router + middleware + a synthetic write route."""
    from opentelemetry import trace

    from adapters.telemetry.checks import postgres_check
    from adapters.telemetry.diagnostics import Diagnostics
    from adapters.telemetry.metrics import (
        record_command,
        record_event_appended,
        record_event_store_latency,
    )
    from adapters.telemetry.tracing import setup_tracing
    from api.observability import install_observability

    tracing = setup_tracing("medicalcor-bench", instrument_libraries=True)
    diagnostics = Diagnostics(service="medicalcor-bench", span_buffer=tracing.buffer)
    tracer = trace.get_tracer("bench.diagnostics")
    dsn = os.environ.get(DATABASE_ENV)
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if dsn:
            import asyncpg

            pool = await asyncpg.create_pool(dsn, min_size=2, max_size=8)
            await pool.execute(
                "CREATE TABLE IF NOT EXISTS bench_diag_writes (id bigserial primary key,"
                " kind text not null, at timestamptz not null default now())"
            )
            state["pool"] = pool
            diagnostics.register_check("postgres", postgres_check(pool))
        yield
        if "pool" in state:
            await state["pool"].close()
        tracing.shutdown()

    app = FastAPI(lifespan=lifespan)

    @app.post("/bench/write")
    async def write(request: Request) -> dict[str, Any]:
        body = await request.json()
        started = time.perf_counter()
        with tracer.start_as_current_span("command ScheduleAppointment"):
            with tracer.start_as_current_span("event_store.append"):
                append_started = time.perf_counter()
                if "pool" in state:
                    await state["pool"].execute(
                        "INSERT INTO bench_diag_writes (kind) VALUES ($1)", "AppointmentRequested"
                    )
                record_event_store_latency("append", time.perf_counter() - append_started)
            record_event_appended("AppointmentRequested")
        record_command("ScheduleAppointment", "success", time.perf_counter() - started)
        return {"ok": True, "n": len(body)}

    install_observability(app, diagnostics, tracer_provider=tracing.provider)
    return app


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(app: str, port: int, env: dict[str, str], workers: int) -> subprocess.Popen[bytes]:
    """uvicorn in a child process (so the load generator does not share its GIL)."""
    cmd = [sys.executable, "-m", "uvicorn", "--factory", app, "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", str(workers)]
    cmd += ["--no-access-log", "--log-level", "warning"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env)


async def wait_ready(client: httpx.AsyncClient, proc: subprocess.Popen[bytes]) -> None:
    """Poll ``/diagnostics/quick`` until the server answers (30 s budget)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if (await client.get("/diagnostics/quick")).status_code == 200:
                return
        await asyncio.sleep(0.1)
    raise SystemExit("server did not become ready in 30 s")


def server_ms(response: httpx.Response) -> float:
    """The app's handling time from ``Server-Timing: app;dur=<ms>``."""
    for part in response.headers.get("server-timing", "").split(","):
        name, _, params = part.strip().partition(";")
        if name == "app" and params.startswith("dur="):
            return float(params[4:])
    raise SystemExit("no Server-Timing header: is the observability middleware installed?")


async def hammer(
    client: httpx.AsyncClient, path: str, total: int, concurrency: int
) -> tuple[list[float], list[float]]:
    """GET ``path`` ``total`` times from ``concurrency`` workers; (server ms, client ms)."""
    server: list[float] = []
    wall: list[float] = []
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            response = await client.get(path)
            wall.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{path} answered {response.status_code}")
            server.append(server_ms(response))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return server, wall


async def write_load(
    base: str, headers: dict[str, str], path: str, body: Any, writers: int, stop: Any
) -> int:
    """POST ``body`` to ``path`` from ``writers`` loops until ``stop`` is set; writes done."""
    done = 0
    async with httpx.AsyncClient(base_url=base, headers=headers) as client:

        async def writer() -> None:
            nonlocal done
            while not stop.is_set():
                response = await client.post(path, json=body)
                if response.status_code >= 400:
                    raise SystemExit(f"write load: {path} answered {response.status_code}")
                done += 1

        await asyncio.gather(*(writer() for _ in range(writers)))
    return done


def writer_process(
    base: str, headers: dict[str, str], path: str, body: Any, writers: int, stop: Any, out: Any
) -> None:
    """Child process generating the write load, so it does not slow the measuring client."""
    out.value = asyncio.run(write_load(base, headers, path, body, writers, stop))


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(q * len(ordered) + 0.999999) - 1))]


async def run(args: argparse.Namespace) -> dict[str, float]:
    """Start the server, run the phases, return the figures."""
    port = free_port()
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": pythonpath}
    if args.database_url:
        env[DATABASE_ENV] = args.database_url
    multiproc = None
    if args.workers > 1:  # several processes: metrics shared through files, as in production
        multiproc = tempfile.mkdtemp(prefix="medicalcor-bench-metrics-")
        env[MULTIPROC_ENV_KEY] = multiproc
    proc = start_server(args.app, port, env, args.workers)
    headers = {k.strip(): v.strip() for k, v in (h.split(":", 1) for h in args.header)}
    base = f"http://127.0.0.1:{port}"
    spawn = multiprocessing.get_context("spawn")
    stop, writes_done = spawn.Event(), spawn.Value("q", 0)
    try:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as reader:
            await wait_ready(reader, proc)
            load = spawn.Process(
                target=writer_process,
                args=(base, headers, args.write_path, json.loads(args.write_body)),
                kwargs={"writers": args.writers, "stop": stop, "out": writes_done},
            )
            load.start()
            await hammer(reader, "/diagnostics/quick", 300, args.concurrency)  # warm-up
            await hammer(reader, "/diagnostics", 100, args.concurrency)
            started = time.perf_counter()
            quick = await hammer(reader, "/diagnostics/quick", args.requests, args.concurrency)
            snap = await hammer(reader, "/diagnostics", args.requests, args.concurrency)
            elapsed = time.perf_counter() - started
            stop.set()
            await asyncio.to_thread(load.join, 30)
            if load.exitcode != 0:
                raise SystemExit(f"write load process failed ({load.exitcode})")
            writes = writes_done.value
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if multiproc is not None:
            shutil.rmtree(multiproc, ignore_errors=True)
    figures = {
        "quick_p50_ms": pct(quick[0], 0.50),
        "quick_p95_ms": pct(quick[0], 0.95),
        "snapshot_p50_ms": pct(snap[0], 0.50),
        "snapshot_p95_ms": pct(snap[0], 0.95),
        "quick_client_p95_ms": pct(quick[1], 0.95),
        "snapshot_client_p95_ms": pct(snap[1], 0.95),
        "writes_during_run": float(writes),
    }
    print(
        f"app {args.app}; {args.workers} uvicorn worker(s); concurrency {args.concurrency}; "
        f"{args.writers} writers on {args.write_path}; {args.requests} requests per endpoint; "
        f"{elapsed:.1f} s"
    )
    for name, (server, wall) in (("quick", quick), ("snapshot", snap)):
        print(
            f"{name:9s} server p50 {pct(server, 0.5):7.3f} ms  p95 {pct(server, 0.95):7.3f} ms"
            f"  | client p50 {pct(wall, 0.5):7.3f} ms  p95 {pct(wall, 0.95):7.3f} ms"
        )
    print(f"writes completed during the run: {writes} ({writes / elapsed:.0f}/s)")
    return {k: round(v, 3) for k, v in figures.items()}


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", default=DEFAULT_APP, help="module:factory of the ASGI app")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--requests", type=int, default=3000, help="per endpoint")
    parser.add_argument("--writers", type=int, default=8, help="concurrent write loops")
    parser.add_argument("--write-path", default="/bench/write")
    parser.add_argument("--write-body", default='{"kind": "bench"}')
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--database-url", default=os.environ.get(DATABASE_ENV))
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Run and print; the last line is the JSON figures."""
    figures = asyncio.run(run(parse_args(argv)))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
