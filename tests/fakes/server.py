"""A real HTTP server in a background thread, for faking third-party APIs in tests.

Each fake is a Starlette app served by uvicorn on ``127.0.0.1`` and a free port. It
records every request and can be scripted: the next N requests (optionally of one
route) get a given status and body, or are only delayed, to exercise timeouts,
rate limits and outages. Without a script each fake behaves like the real API.

    with Fake360Dialog() as fake:      # starts; stops on exit
        client = WhatsAppClient(fake.api_key, base_url=fake.url + "/v1")
        fake.fail_next(500)
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received, as it arrived on the wire."""

    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased header names."""
    body: bytes
    route: str

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class Scripted:
    """A programmed answer. ``status=None`` only delays, then the fake answers normally."""

    status: int | None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    route: str | None = None
    """Only requests of this route consume the entry; ``None`` matches any route."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Fake-specific details (provider error code, title ...) used to render ``body``."""


class FakeServer:
    """Base of the fakes: thread, port, request log and script."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._script: deque[Scripted] = deque()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    # --- lifecycle ---------------------------------------------------------------

    def build_app(self) -> Starlette:
        """The fake's routes; subclasses implement it."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, no trailing slash."""
        if not self._port:
            raise RuntimeError("fake server is not running")
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> Self:
        """Serve in a daemon thread; return once the port accepts connections."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.build_app(),
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="asyncio",
            http="h11",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"{type(self).__name__} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for the thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- request log ---------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, route: str) -> list[RecordedRequest]:
        """The requests of one route (e.g. ``"messages"``)."""
        return [r for r in self.requests if r.route == route]

    def reset(self) -> None:
        """Forget recorded requests and pending script entries (not stored data)."""
        with self._lock:
            self._requests.clear()
            self._script.clear()

    async def record(self, request: Request, route: str) -> RecordedRequest:
        """Read and log ``request``."""
        recorded = RecordedRequest(
            method=request.method,
            path=request.url.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.body(),
            route=route,
        )
        with self._lock:
            self._requests.append(recorded)
        return recorded

    # --- script ----------------------------------------------------------------------

    def enqueue(self, entry: Scripted, times: int = 1) -> None:
        """Answer the next ``times`` matching requests with ``entry``."""
        with self._lock:
            self._script.extend(Scripted(**vars(entry)) for _ in range(times))

    def delay_next(self, seconds: float, *, times: int = 1, route: str | None = None) -> None:
        """Hold the next ``times`` requests for ``seconds`` before answering normally."""
        self.enqueue(Scripted(status=None, delay_s=seconds, route=route), times)

    def pending_script(self) -> int:
        """How many scripted entries are still waiting."""
        with self._lock:
            return len(self._script)

    async def scripted(self, route: str) -> Scripted | None:
        """Take the next entry for ``route``, sleep its delay, and return it if it answers."""
        with self._lock:
            entry = next((e for e in self._script if e.route in (None, route)), None)
            if entry is not None:
                self._script.remove(entry)
        if entry is None:
            return None
        if entry.delay_s:
            await asyncio.sleep(entry.delay_s)
        return entry if entry.status is not None else None


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON response with extra headers."""
    return JSONResponse(body, status_code=status, headers=headers or {})


def parse_json(recorded: RecordedRequest) -> Any:
    """The body as JSON, or ``None`` when it is not JSON."""
    try:
        return recorded.json()
    except ValueError:
        return None
