"""``api.serving``: worker processes on SO_REUSEPORT sockets, supervised.

Real processes on loopback: keep-alive connections opened in a burst must reach every
worker (uvicorn's shared socket gave one worker most of them), a worker that dies is
replaced, and SIGTERM to the parent stops every worker.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2
CONNECTIONS = 64
LEAST_SHARE = 0.2
"""Each of two workers gets at least this share of a burst (binomial: fails by chance
about once in a million runs; uvicorn's shared socket gave one worker most of them)."""


async def pid_app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
    """An ASGI app answering its process id (the test's server)."""
    if scope["type"] != "http":
        return
    body = str(os.getpid()).encode()
    await send(  # type: ignore[operator]
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})  # type: ignore[operator]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get_pid(sock: socket.socket) -> int:
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            v
            for k, v in (line.split(b":", 1) for line in head.split(b"\r\n")[1:])
            if k.lower() == b"content-length"
        )
    )
    while len(body) < length:
        body += sock.recv(4096)
    return int(body)


def _burst(port: int) -> Counter[int]:
    """Open CONNECTIONS keep-alive connections at once; connections per answering pid."""
    conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(CONNECTIONS)]
    try:
        return Counter(_get_pid(c) for c in conns)
    finally:
        for c in conns:
            c.close()


def _children(pid: int) -> set[int]:
    """The server's worker processes (multiprocessing also starts a resource tracker)."""
    found: set[int] = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found.update(int(c) for c in f.read().split())
    workers = set()
    for child in found:
        try:
            with open(f"/proc/{child}/cmdline", "rb") as f:
                if b"spawn_main" in f.read():
                    workers.add(child)
        except FileNotFoundError:
            continue
    return workers


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def served() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api.serving",
            "tests.integration.test_serving:pid_app",
            "--port",
            str(port),
            "--workers",
            str(WORKERS),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            if len(_children(proc.pid)) >= WORKERS and len(_burst(port)) >= WORKERS:
                break
        except OSError:
            pass
        assert proc.poll() is None, "the server exited during start-up"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.2)
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SO_REUSEPORT balancing is Linux's"
)
def test_connections_reach_every_worker_and_workers_are_replaced(
    served: tuple[subprocess.Popen[bytes], int],
) -> None:
    proc, port = served
    shares = _burst(port)
    assert set(shares) == _children(proc.pid), f"some worker got no connection: {shares}"
    assert min(shares.values()) >= LEAST_SHARE * CONNECTIONS, f"unbalanced: {shares}"
    pids = set(shares)

    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = _children(proc.pid)
        if victim not in children and len(children) == WORKERS:
            break
        time.sleep(0.2)
    replaced = _children(proc.pid)
    assert victim not in replaced and len(replaced) == WORKERS, "the dead worker was not replaced"


def test_sigterm_stops_every_worker(served: tuple[subprocess.Popen[bytes], int]) -> None:
    proc, port = served
    workers = _children(proc.pid)
    assert len(workers) == WORKERS
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "a worker outlived its parent"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
