"""HTTP surface of observability: metrics, diagnostics, traces, and the request middleware.

``install_observability(app, diagnostics)`` is all the app factory calls. It

* stores the :class:`Diagnostics` as ``app.state.diagnostics`` (the only
  ``app.state`` attribute the router reads; the span buffer is
  ``diagnostics.span_buffer``);
* mounts the router: ``/metrics`` (Prometheus text, OpenMetrics when the Accept
  header asks), ``/metrics/json``, ``/diagnostics``, ``/diagnostics/quick``,
  ``/diagnostics/health`` (503 when unhealthy), ``/diagnostics/traces`` and
  ``/diagnostics/traces/{traceId}``; ``protect`` dependencies (auth) guard the
  ones that reveal internals, while ``/metrics``, ``quick`` and ``health`` stay open
  for Prometheus and probes;
* adds :class:`ObservabilityMiddleware`: ``http_requests_total`` and
  ``http_request_duration_seconds`` labelled with the route *template*
  (``<unmatched>`` when no route matched), the HTTP latency window of diagnostics,
  ``X-Trace-Id``, ``X-Correlation-Id`` and ``Server-Timing: app;dur=<ms>`` response
  headers (the correlation id, from the caller's ``X-Correlation-Id`` when it is a
  safe token or a new uuid, is also ``request.state.correlation_id`` and the
  ``medicalcor.correlation_id`` attribute of the server span);
* instruments the app with OpenTelemetry's FastAPI instrumentation (W3C
  ``traceparent`` honoured; scrapes and probes not traced); the server span is named
  ``METHOD /route/template`` (and given ``http.route``) by the middleware once the
  router has matched the route, rather than by the instrumentation matching every
  route of the app a second time per request;
* wraps the app's lifespan to run the diagnostics refresher and, in multiprocess
  metrics mode, to mark the worker dead at shutdown.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.fastapi import (
    FastAPIInstrumentor,
    _get_default_span_details,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.semconv.attributes.http_attributes import HTTP_ROUTE
from opentelemetry.util.http import sanitize_method
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.telemetry.diagnostics import UNHEALTHY, Diagnostics
from adapters.telemetry.metrics import (
    mark_process_dead,
    metrics_as_json,
    record_http_request,
    render_metrics,
)
from adapters.telemetry.span_buffer import CORRELATION_ID_ATTR
from adapters.telemetry.tracing import current_trace_id

UNMATCHED = "<unmatched>"
TRACE_HEADER = b"x-trace-id"
CORRELATION_HEADER = b"x-correlation-id"
SERVER_TIMING_HEADER = b"server-timing"
NOT_TRACED = "/metrics$,/diagnostics/quick$,/diagnostics/health$"
_CORRELATION_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")


async def _diagnostics(request: Request) -> Diagnostics:
    # async on purpose: a sync dependency would hop to the threadpool and queue
    # the request behind the event loop's backlog, blowing the quick budget
    diagnostics: Diagnostics = request.app.state.diagnostics
    return diagnostics


DiagnosticsDep = Annotated[Diagnostics, Depends(_diagnostics)]


def _json(body: dict[str, Any], status_code: int = 200) -> JSONResponse:
    return JSONResponse({**body, "traceId": current_trace_id()}, status_code=status_code)


def build_router(protect: Sequence[Any] = ()) -> APIRouter:
    """The observability routes; ``protect`` = dependencies guarding the revealing ones."""
    router = APIRouter(tags=["observability"])
    guarded = APIRouter(dependencies=list(protect))

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        body, content_type = await run_in_threadpool(render_metrics, request.headers.get("accept"))
        return Response(body, media_type=content_type)

    @router.get("/diagnostics/quick")
    async def quick(diagnostics: DiagnosticsDep) -> JSONResponse:
        return JSONResponse(diagnostics.quick())

    @router.get("/diagnostics/health")
    async def health(diagnostics: DiagnosticsDep) -> JSONResponse:
        report = await diagnostics.health()
        return _json(report, 503 if report["status"] == UNHEALTHY else 200)

    @guarded.get("/metrics/json")
    async def metrics_json() -> JSONResponse:
        return JSONResponse(await run_in_threadpool(metrics_as_json))

    @guarded.get("/diagnostics")
    async def snapshot(diagnostics: DiagnosticsDep) -> JSONResponse:
        return _json(await diagnostics.snapshot())

    @guarded.get("/diagnostics/traces")
    async def search_traces(
        request: Request,
        diagnostics: DiagnosticsDep,
        min_duration_ms: Annotated[float | None, Query(alias="minDurationMs", ge=0)] = None,
        status: Annotated[Literal["ok", "error"] | None, Query()] = None,
        correlation_id: Annotated[str | None, Query(alias="correlationId", max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
    ) -> JSONResponse:
        buffer = diagnostics.span_buffer
        traces = (
            buffer.search(
                min_duration_ms=min_duration_ms,
                status=status,
                correlation_id=correlation_id,
                limit=limit,
                clinic_id=_caller_clinic(request),
            )
            if buffer is not None
            else []
        )
        return _json({"traces": traces, "count": len(traces), "buffered": buffer is not None})

    @guarded.get("/diagnostics/traces/{trace_id}")
    async def get_trace(
        request: Request,
        diagnostics: DiagnosticsDep,
        trace_id: Annotated[str, Path(pattern=r"^[0-9a-fA-F]{32}$")],
    ) -> JSONResponse:
        buffer = diagnostics.span_buffer
        found = buffer.get(trace_id, clinic_id=_caller_clinic(request)) if buffer else None
        if found is None:
            return JSONResponse(
                {
                    "type": "about:blank",
                    "title": "Trace not found",
                    "status": 404,
                    "code": "NOT_FOUND",
                    "detail": "The trace is not (or no longer) in this process's span buffer.",
                    "traceId": current_trace_id(),
                },
                status_code=404,
                media_type="application/problem+json",
            )
        return _json({"trace": found})

    router.include_router(guarded)
    return router


def _caller_clinic(request: Request) -> str | None:
    """The authenticated caller's clinic (set by the ``protect`` dependency), if any.

    A clinic's key sees only traces of its own clinic; without authentication
    (``protect`` empty: an operator-only deployment) every trace is listed."""
    principal = getattr(request.state, "principal", None)
    clinic = getattr(principal, "clinic_id", None)
    return str(clinic) if clinic else None


def route_template(scope: Scope, root_routes: Sequence[BaseRoute]) -> str:
    """The matched route's template (mount prefix included), or ``<unmatched>``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if route is None or not isinstance(path, str):
        return UNMATCHED
    if any(r is route for r in root_routes):
        return path
    raw = scope.get("path", "")
    for mount in root_routes:
        if isinstance(mount, Mount) and mount.path_regex.match(raw):
            return mount.path + path
    return path


class ObservabilityMiddleware:
    """Pure ASGI middleware: HTTP metrics, diagnostics window, trace/correlation headers."""

    def __init__(
        self, app: ASGIApp, diagnostics: Diagnostics, root_routes: Callable[[], Sequence[BaseRoute]]
    ) -> None:
        self.app = app
        self.diagnostics = diagnostics
        self.root_routes = root_routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        correlation_id = _correlation_id(scope)
        scope.setdefault("state", {})["correlation_id"] = correlation_id
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute(CORRELATION_ID_ATTR, correlation_id)
        extra = [(CORRELATION_HEADER, correlation_id.encode())]
        trace_id = current_trace_id()
        if trace_id:
            extra.append((TRACE_HEADER, trace_id.encode()))
        status = 500
        started = time.perf_counter()
        template: str | None = None

        def matched_route() -> str:
            # Known once the router matched (before the endpoint runs); the server span
            # is named then, while it is still open (it ends with the response's body).
            nonlocal template
            if template is None:
                template = route_template(scope, self.root_routes())
                if template != UNMATCHED and _is_server_span(span):
                    span.update_name(f"{_span_method(scope)} {template}")
                    span.set_attribute(HTTP_ROUTE, template)
            return template

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                matched_route()
                timing = f"app;dur={(time.perf_counter() - started) * 1000:.3f}".encode()
                headers = [*message.get("headers", ()), *extra, (SERVER_TIMING_HEADER, timing)]
                message = {**message, "headers": headers}
            await send(message)

        self.diagnostics.in_flight += 1
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.diagnostics.in_flight -= 1
            seconds = time.perf_counter() - started
            route = matched_route()
            record_http_request(scope["method"], route, status, seconds)
            self.diagnostics.observe_http(scope["method"], route, status, seconds)


def _is_server_span(span: trace.Span) -> bool:
    """The instrumentation's span of this request (not a caller's own, in process)."""
    return span.is_recording() and getattr(span, "kind", None) is trace.SpanKind.SERVER


def _span_method(scope: Scope) -> str:
    method = sanitize_method(str(scope.get("method", "")).strip())
    return "HTTP" if method == "_OTHER" else method


def _server_span_details(scope: Scope) -> tuple[str, dict[str, str]]:
    """An HTTP server span's name at its start: the method alone (the middleware adds the
    route once the router matched it). Other scopes (websockets) as the instrumentation
    names them."""
    if scope["type"] != "http":
        return _get_default_span_details(scope)
    return _span_method(scope), {}


def _name_server_spans_late(app: FastAPI) -> None:
    """Let the FastAPI instrumentation's middleware start its span with
    :func:`_server_span_details`: its own details match the path against every route
    of the app per request, which the router then does again."""
    build = app.build_middleware_stack

    def build_middleware_stack() -> ASGIApp:
        stack = build()
        otel = getattr(stack, "app", None)  # ServerErrorMiddleware(OpenTelemetryMiddleware)
        if isinstance(otel, OpenTelemetryMiddleware):
            otel.default_span_details = _server_span_details
        return stack

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]


def _correlation_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == CORRELATION_HEADER:
            candidate = value.decode("latin-1")
            if _CORRELATION_RE.match(candidate):
                return candidate
            break
    return uuid.uuid4().hex


def install_observability(
    app: FastAPI,
    diagnostics: Diagnostics,
    *,
    tracer_provider: TracerProvider | None = None,
    protect: Sequence[Any] = (),
    instrument: bool = True,
) -> None:
    """Wire metrics, diagnostics and tracing into ``app`` (see the module docstring).

    Call before the app serves its first request. ``tracer_provider`` defaults to
    the global one (``setup_tracing`` installs it); ``protect`` is a list of
    ``Depends(...)`` for the internal endpoints; ``instrument=False`` skips the
    FastAPI instrumentation (tests that compare with and without it).
    """
    app.state.diagnostics = diagnostics
    app.include_router(build_router(protect))
    app.add_middleware(
        ObservabilityMiddleware, diagnostics=diagnostics, root_routes=lambda: app.router.routes
    )
    if instrument:
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=tracer_provider,
            excluded_urls=NOT_TRACED,
            exclude_spans=["receive", "send"],
        )
        _name_server_spans_late(app)
    _wrap_lifespan(app, diagnostics)


def _wrap_lifespan(app: FastAPI, diagnostics: Diagnostics) -> None:
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(owner: Any) -> AsyncIterator[Any]:
        async with inner(owner) as state:
            await diagnostics.start()
            try:
                yield state
            finally:
                await diagnostics.stop()
                mark_process_dead()

    app.router.lifespan_context = lifespan
