"""The API's composition root: `create_app(settings)` wires every router to real services.

Routes: `/livez`, `/readyz`; the AI gateway (`/ai/*`, `/ai/keys`, `/mcp`); WhatsApp
webhooks; the sandbox outbox; GDPR admin (`/admin/patients/...`); the Temporal codec
(`/codec/*`); metrics and diagnostics. Resources (pool, buses, Temporal client) are
created in the lifespan and handed out through `app.state`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.settings import Settings
from adapters.telemetry.checks import ProjectionLag
from adapters.telemetry.diagnostics import Diagnostics
from adapters.telemetry.tracing import TracingHandle, setup_tracing

if TYPE_CHECKING:
    from temporalio.runtime import Runtime

log = logging.getLogger(__name__)

_tracing: TracingHandle | None = None
TEMPORAL_CONNECT_TIMEOUT_S = 30.0
READY_TIMEOUT_S = 2.0


def tracing(settings: Settings) -> TracingHandle:
    """One tracer provider per process (several apps in one test process share it)."""
    global _tracing
    if _tracing is None:
        _tracing = setup_tracing(settings.service_name, otlp_endpoint=settings.otlp_endpoint)
    return _tracing


def shutdown_tracing() -> None:
    """Flush and undo this process's tracing (the app's lifespan calls it on shutdown)."""
    global _tracing
    if _tracing is not None:
        _tracing.shutdown()
        _tracing = None


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API application; nothing connects until the lifespan starts."""
    from adapters.temporal.codec import codec_for
    from api.ai import mount_ai_gateway
    from api.auth import current_principal
    from api.codec import codec_router
    from api.gdpr import create_gdpr_router
    from api.observability import install_observability
    from api.openapi_doc import document_problems
    from api.sandbox import create_sandbox_router
    from api.webhooks import create_webhook_router

    settings = settings or Settings()
    handle = tracing(settings)
    diagnostics = Diagnostics(service="medicalcor-api", span_buffer=handle.buffer)
    app = FastAPI(
        title="MedicalCor API",
        version="0.1.0",
        description="AI-first dental clinic CRM: gateway functions, webhooks, diagnostics.",
        lifespan=_lifespan,
        # Traced by the OpenTelemetry FastAPI instrumentation (install_observability), with
        # our redaction and span names; FastAPI's own telemetry would only re-check its
        # providers on every request to find it has nothing to add.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.ready = False
    _health_routes(app)
    mount_ai_gateway(app)
    app.include_router(create_webhook_router())
    app.include_router(create_sandbox_router())
    app.include_router(create_gdpr_router())
    codec = codec_for(settings.payload_key_bytes(), settings.secret_key)
    app.include_router(
        codec_router(codec, token=settings.codec_token, ui_origins=_ui_origins(settings))
    )
    install_observability(
        app,
        diagnostics,
        tracer_provider=handle.provider,
        protect=[Depends(current_principal)],
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    document_problems(app, current_principal)
    return app


def _ui_origins(settings: Settings) -> list[str]:
    host = settings.api_host if settings.api_host != "0.0.0.0" else "127.0.0.1"
    origins = [f"http://{host}:{settings.temporal_ui_port}"]
    origins.append(f"http://localhost:{settings.temporal_ui_port}")
    if settings.temporal_ui_origin:
        origins.append(settings.temporal_ui_origin)
    return origins


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    from adapters.container import build_services
    from adapters.gc_tuning import freeze_startup_heap
    from adapters.gdpr import GdprServices, PostgresReadModelEraser, TemporalHistoryEraser
    from adapters.telemetry.temporal_sdk import temporal_sdk_metrics
    from adapters.temporal.gateway import TemporalWorkflowGateway
    from api.ai import run_ai_gateway
    from api.sandbox import sandbox_outbox
    from api.webhooks import build_whatsapp_webhooks
    from domain.functions import REGISTRY

    settings: Settings = app.state.settings
    services = await build_services(settings)
    # the client's SDK metrics (temporal_request_total ...) go to this /metrics
    sdk_metrics = temporal_sdk_metrics()
    await sdk_metrics.start()
    client = None
    try:
        client = await _connect_temporal(settings, runtime=sdk_metrics.runtime)
        workflows = TemporalWorkflowGateway(client, settings, registry=REGISTRY)
        app.state.services = services
        app.state.temporal = client
        app.state.whatsapp_webhooks = build_whatsapp_webhooks(
            settings=settings,
            pool=services.pool,
            commands=services.command_bus,
            queries=services.query_bus,
            workflows=workflows,
        )
        app.state.whatsapp_sandbox = sandbox_outbox(services.whatsapp, services.pool)
        assert services.keys is not None  # build_services always makes the key store
        app.state.gdpr = GdprServices(
            store=services.store,
            keys=services.keys,
            commands=services.command_bus,
            read_models=PostgresReadModelEraser(services.pool, services.store),
            workflows=TemporalHistoryEraser(client),
        )
        _register_checks(app.state.diagnostics, services, client)
        async with run_ai_gateway(
            app,
            pool=services.pool,
            settings=settings,
            commands=services.command_bus,
            queries=services.query_bus,
            workflows=workflows,
            planner=services.planner,
        ) as gateway:
            app.state.audit = gateway.audit
            freeze_startup_heap("api")  # start-up done: full collections skip its objects
            app.state.ready = True
            yield
    finally:
        app.state.ready = False
        await services.aclose()
        await sdk_metrics.stop()
        shutdown_tracing()


async def _connect_temporal(settings: Settings, *, runtime: Runtime | None = None) -> Any:
    """Connect, retrying while the server starts (bounded)."""
    from adapters.temporal.client import connect_client

    deadline = time.monotonic() + TEMPORAL_CONNECT_TIMEOUT_S
    while True:
        try:
            return await connect_client(settings, runtime=runtime)
        except Exception as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Temporal at {settings.resolved_temporal_address} is unreachable: {exc}"
                ) from exc
            await asyncio.sleep(0.5)


def _register_checks(diagnostics: Diagnostics, services: Any, client: Any) -> None:
    from adapters.projections.runner import report_lag
    from adapters.telemetry.checks import (
        external_services_check,
        postgres_check,
        projection_lag_check,
    )
    from adapters.telemetry.temporal import temporal_check, temporal_workflow_counts

    async def lags() -> dict[str, ProjectionLag]:
        from adapters.projections import PROJECTION_NAMES

        rows = await report_lag(services.pool, PROJECTION_NAMES)
        return {r["name"]: ProjectionLag(r["lag_events"], r["lag_seconds"]) for r in rows}

    diagnostics.register_check("postgres", postgres_check(services.pool))
    diagnostics.register_check("temporal", temporal_check(client))
    diagnostics.register_check("projections", projection_lag_check(lags))
    diagnostics.register_check(
        "external",
        external_services_check(["whatsapp", "hubspot", "anthropic"]),
        critical=False,
        kind="external",
    )
    diagnostics.register_provider("workflows", temporal_workflow_counts(client))


def _health_routes(app: FastAPI) -> None:
    @app.get("/livez", tags=["health"], summary="The process is alive (no dependency checks).")
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="PostgreSQL and Temporal are reachable (503 otherwise).",
        responses={503: {"description": "not ready"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        state = request.app.state
        if not getattr(state, "ready", False):
            return JSONResponse({"status": "starting"}, status_code=503)
        checks = await asyncio.gather(
            _probe_postgres(state.services.pool),
            _probe_temporal(state.temporal),
        )
        body = {"postgres": checks[0], "temporal": checks[1]}
        ok = all(c == "ok" for c in checks)
        return JSONResponse(
            {"status": "ready" if ok else "not ready", **body}, status_code=200 if ok else 503
        )


async def _probe_postgres(pool: Any) -> str:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await pool.fetchval("SELECT 1")
        return "ok"
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"


async def _probe_temporal(client: Any) -> str:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            ok = await client.service_client.check_health()
        return "ok" if ok else "unhealthy"
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"


class BodySizeLimit:
    """413 problem for request bodies over ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._reject(send)

    async def _reject(self, send: Send) -> None:
        from api.errors import problem_response

        response = problem_response(
            413,
            "PAYLOAD_TOO_LARGE",
            f"the request body exceeds {self.max_bytes} bytes",
        )
        await response({"type": "http"}, _no_receive, send)


class _TooLarge(Exception):
    pass


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
