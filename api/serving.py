"""Serving the API with several worker processes, each with its own listening socket.

uvicorn's ``--workers`` shares ONE listening socket between its processes, and the
process whose event loop happens to be awake accepts the next connection. Keep-alive
clients (a reverse proxy, an SDK's connection pool, the benchmark's 16 connections)
open their connections in a burst, so one process routinely ends up with most of
them and the others idle: measured here, 81 % against 18 % of the CPU samples with
two workers, and the API ran at the speed of one core.

:func:`serve` instead starts ``workers`` processes that each bind the address with
``SO_REUSEPORT``: the kernel spreads new connections over the sockets by a hash of
the connection, so long-lived connections are balanced too. The parent supervises:
a worker that dies is started again (after a short pause, so a worker that cannot
start does not spin), and SIGTERM/SIGINT stop every worker gracefully (uvicorn's
own shutdown: in-flight requests finish, lifespans close) before the parent exits.
One worker (the default) is plain ``uvicorn.run``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

log = logging.getLogger("medicalcor.api.serving")

SERVER_OPTIONS: dict[str, Any] = {"access_log": False, "loop": "uvloop", "http": "httptools"}
"""uvicorn options every MedicalCor API process runs with (uvloop and httptools: ~2x the
requests/s of the pure-Python loop and parser here)."""

RESTART_PAUSE_S = 1.0
STOP_GRACE_S = 30.0


def reuse_port_socket(host: str, port: int, *, listen: bool = True) -> socket.socket:
    """A (listening) TCP socket on ``host:port`` that other processes may bind too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _worker(options: dict[str, Any], host: str, port: int) -> None:
    """One worker process: its own SO_REUSEPORT socket, one uvicorn server on it."""
    import uvicorn

    _follow_parent()
    config = uvicorn.Config(**options)
    server = uvicorn.Server(config)
    sock = reuse_port_socket(host, port)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        sys.exit(3)  # startup failed (uvicorn's STARTUP_FAILURE)


def _follow_parent() -> None:
    """Leave the parent's process group (a terminal's Ctrl-C reaches the parent alone,
    which stops the workers once, gracefully) and die with the parent if it is killed."""
    os.setpgid(0, 0)
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() == 1:  # the parent died before prctl took effect
            sys.exit(0)


@dataclass
class Supervisor:
    """Starts ``workers`` worker processes and keeps them running until told to stop."""

    options: dict[str, Any]
    host: str
    port: int
    workers: int
    _processes: list[BaseProcess] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)

    def _start(self) -> BaseProcess:
        context = multiprocessing.get_context("spawn")
        process = context.Process(
            target=_worker, args=(self.options, self.host, self.port), daemon=False
        )
        process.start()
        return process

    def run(self) -> int:
        # Bind once in the parent first: a busy port or a bad address fails here, at
        # once and with its own error, not in every worker over and over.
        probe = reuse_port_socket(self.host, self.port, listen=False)
        probe.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: self._stopping.set())
        self._processes = [self._start() for _ in range(self.workers)]
        log.info(
            "serving on http://%s:%d with %d worker processes (SO_REUSEPORT), pids %s",
            self.host,
            self.port,
            self.workers,
            [p.pid for p in self._processes],
        )
        while not self._stopping.wait(0.5):
            for i, process in enumerate(self._processes):
                if process.is_alive() or self._stopping.is_set():
                    continue
                log.warning(
                    "API worker %s exited with %s; starting another", process.pid, process.exitcode
                )
                if self._stopping.wait(RESTART_PAUSE_S):
                    break
                self._processes[i] = self._start()
        return self.stop()

    def stop(self) -> int:
        for process in self._processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for process in self._processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("API worker %s did not stop in time; killing it", process.pid)
                process.kill()
                process.join()
        return 0


def serve(app: str, *, host: str, port: int, workers: int, **options: Any) -> int:
    """Serve the ASGI ``app`` (an import string; ``factory`` etc. in ``options``)."""
    import uvicorn

    if workers <= 1:
        uvicorn.run(app, host=host, port=port, **options)
        return 0
    return Supervisor({"app": app, **options}, host, port, workers).run()


if __name__ == "__main__":  # pragma: no cover - ``python -m api.serving APP --port N ...``
    import argparse

    parser = argparse.ArgumentParser(description="Serve an ASGI app on SO_REUSEPORT workers")
    parser.add_argument("app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--factory", action="store_true")
    parser.add_argument("--log-level", default="warning")
    cli = parser.parse_args()
    logging.basicConfig(level=cli.log_level.upper())
    options = {"factory": cli.factory, "log_level": cli.log_level, **SERVER_OPTIONS}
    sys.exit(serve(cli.app, host=cli.host, port=cli.port, workers=cli.workers, **options))
