"""HTTP surface of the AI gateway: discovery under ``/ai``, ``POST /ai/execute`` and
decisions on held plan steps (``POST /ai/workflows/{workflowId}/steps/{stepId}/approve``
or ``.../reject``).

Wiring, for ``create_app`` (two calls)::

    mcp = mount_ai_gateway(app)           # routes /ai/*, /ai/keys, /mcp; problem handlers
    ...
    async with run_ai_gateway(app, pool=..., settings=..., commands=..., queries=...,
                              workflows=..., planner=...):   # in the lifespan
        yield

``run_ai_gateway`` puts on ``app.state``: ``gateway`` (``api.gateway.Gateway``),
``authenticator`` (``api.auth.Authenticator``), ``api_keys``
(``adapters.api_keys.ApiKeyStore``, LISTENing for revocations) and
``http_idempotency`` (``adapters.http_idempotency.HttpIdempotencyStore``); the
routes read them from there per request.

Every route needs an API key. Tool lists and function docs are derived once from
the registry (``Gateway.catalogue``) and served as pre-encoded JSON; tool lists
hold only the functions the caller's key may run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Body, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from pydantic import ValidationError
from starlette.responses import Response

from adapters.api_keys import ApiKeyStore
from adapters.audit import AuditLog
from adapters.http_idempotency import MAX_KEY_LENGTH, HttpIdempotencyStore, fingerprint
from adapters.settings import Settings
from api.ai_models import (
    EXECUTE_REQUEST,
    STEP_ID_PATTERN,
    ExecuteRequest,
    ExecuteResponse,
    StepDecisionRequest,
    StepDecisionResponse,
)
from api.auth import Authenticator, Principal, PrincipalDep
from api.errors import PROBLEM_JSON, install_problem_handlers, problem_response, problem_schema
from api.gateway import Gateway, Planner, RequestInfo, utc_now
from api.keys import create_keys_router
from api.mcp_server import McpEndpoint
from domain.cqrs import CommandExecutor, QueryExecutor
from domain.errors import InvalidArguments, ServiceUnavailable
from domain.functions.registry import CATEGORIES, Category
from domain.functions.schemas import inline_refs
from domain.workflow_port import WorkflowGateway

log = logging.getLogger(__name__)
JSON = "application/json"
_PROBLEM = {"content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid API key", **_PROBLEM},
    403: {"description": "The key lacks a scope", **_PROBLEM},
    404: {"description": "Unknown function", **_PROBLEM},
    409: {"description": "Idempotency-Key reused or in progress", **_PROBLEM},
    422: {"description": "Invalid request", **_PROBLEM},
    429: {"description": "Rate limited (see Retry-After)", **_PROBLEM},
}


EXECUTE_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": inline_refs(EXECUTE_REQUEST.json_schema())}},
    },
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": MAX_KEY_LENGTH},
            "description": "A retry with the same key and body gets the first response back.",
        },
        {
            "name": "X-Min-Position",
            "in": "header",
            "required": False,
            "schema": {"type": "integer", "minimum": 0},
            "description": "Read at least the writes up to this position (see `position`).",
        },
    ],
}


DECISION_PROBLEMS: dict[int | str, dict[str, Any]] = {
    403: {"description": "The key lacks a scope of the step's function", **_PROBLEM},
    404: {"description": "No such workflow in the key's clinic, or no such step", **_PROBLEM},
    409: {"description": "The step is not waiting for approval (see `stepStatus`)", **_PROBLEM},
    422: {"description": "Invalid request", **_PROBLEM},
    429: {"description": "Rate limited (see Retry-After)", **_PROBLEM},
    503: {"description": "Temporal or the database briefly unavailable; retry", **_PROBLEM},
}
WorkflowId = Annotated[
    str,
    Path(
        alias="workflowId",
        min_length=1,
        max_length=255,
        description="The plan's id, as /ai/execute answered it (`workflowId`).",
    ),
]
StepId = Annotated[
    str,
    Path(alias="stepId", min_length=1, max_length=64, pattern=STEP_ID_PATTERN),
]
DecisionBody = Annotated[StepDecisionRequest | None, Body()]


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def _encoded(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _encoded_view(gateway: Gateway, kind: str, scopes: frozenset[str]) -> bytes:
    """A tool list or the categories for a set of scopes, encoded once per gateway."""
    return gateway.view((kind, scopes), lambda: _encoded(_view(gateway, kind, scopes)))


def _view(gateway: Gateway, kind: str, scopes: frozenset[str]) -> Any:
    allowed = {s.name for s in gateway.registry.allowed(scopes)}
    catalogue = gateway.catalogue
    if kind == "openai":
        return [tool for name, tool in catalogue.openai.items() if name in allowed]
    if kind == "anthropic":
        return [tool for name, tool in catalogue.anthropic.items() if name in allowed]
    return [
        {
            "name": cat,
            "description": CATEGORIES[cat],
            "functions": names,
            "allowed": [n for n in names if n in allowed],
        }
        for cat, names in catalogue.categories.items()
    ]


def _summary(doc: dict[str, Any], allowed: bool) -> dict[str, Any]:
    keys = ("name", "title", "category", "summary", "scopes", "sideEffect", "annotations")
    return {**{k: doc[k] for k in keys}, "allowed": allowed}


def create_ai_router() -> APIRouter:
    """The ``/ai`` routes; dependencies come from ``request.app.state`` (module docstring)."""
    router = APIRouter(prefix="/ai", tags=["ai-gateway"], responses={401: PROBLEMS[401]})

    @router.get("/functions", summary="List the gateway functions")
    async def list_functions(
        request: Request,
        principal: PrincipalDep,
        category: Annotated[Category | None, Query(description="Only this category.")] = None,
        search: Annotated[str | None, Query(description="Words in name or description.")] = None,
    ) -> Response:
        gateway = _gateway(request)
        words = (search or "").lower().split()
        found = [
            _summary(doc, spec.allowed(principal.scopes))
            for spec in gateway.registry
            if (category is None or spec.category == category)
            and all(w in f"{spec.name} {spec.description}".lower() for w in words)
            for doc in [gateway.catalogue.docs[spec.name]]
        ]
        return Response(_encoded({"functions": found, "count": len(found)}), media_type=JSON)

    @router.get(
        "/functions/{name}", summary="One function: schemas, scopes, examples", responses=PROBLEMS
    )
    async def get_function(request: Request, name: str, principal: PrincipalDep) -> Response:
        gateway = _gateway(request)
        spec = gateway.registry.get(name)  # FunctionNotFound → 404 listing the names
        doc = {**gateway.catalogue.docs[name], "allowed": spec.allowed(principal.scopes)}
        return Response(_encoded(doc), media_type=JSON)

    @router.get("/categories", summary="Function categories")
    async def categories(request: Request, principal: PrincipalDep) -> Response:
        body = _encoded_view(_gateway(request), "categories", principal.scopes)
        return Response(body, media_type=JSON)

    @router.get("/openai/tools", summary="OpenAI tools (strict mode) the key may call")
    async def openai_tools(request: Request, principal: PrincipalDep) -> Response:
        body = _encoded_view(_gateway(request), "openai", principal.scopes)
        return Response(body, media_type=JSON)

    @router.get("/anthropic/tools", summary="Anthropic tools the key may call")
    async def anthropic_tools(request: Request, principal: PrincipalDep) -> Response:
        body = _encoded_view(_gateway(request), "anthropic", principal.scopes)
        return Response(body, media_type=JSON)

    @router.get("/schema", summary="OpenAPI document of the gateway")
    async def schema(request: Request, principal: PrincipalDep) -> Response:
        gateway = _gateway(request)
        routers = [router, create_keys_router()]
        body = gateway.view("openapi", lambda: _encoded(gateway_openapi(routers, gateway)))
        return Response(body, media_type=JSON)

    @router.post(
        "/execute",
        summary="Run function calls, a natural-language request or a workflow",
        response_model=ExecuteResponse,
        responses=PROBLEMS,
        openapi_extra=EXECUTE_OPENAPI,
    )
    async def execute(request: Request, principal: PrincipalDep) -> Response:
        # The body is parsed here, in one step from bytes, rather than by FastAPI's
        # dependency machinery: this is the hot path (documented by EXECUTE_OPENAPI).
        body = _parse_execute(await request.body())
        key = request.headers.get("idempotency-key")
        info = RequestInfo.new(
            surface="http", idempotency_key=key, min_position=_min_position(request)
        )
        gateway = _gateway(request)
        if key is None:
            return _answer(await gateway.execute(principal, body, info))
        store: HttpIdempotencyStore = request.app.state.http_idempotency
        return await _idempotent(store, gateway, principal, body, info, key)

    @router.post(
        "/workflows/{workflowId}/steps/{stepId}/approve",
        summary="Approve a plan step that waits for approval; answers once it ran",
        response_model=StepDecisionResponse,
        responses=DECISION_PROBLEMS,
    )
    async def approve_step(
        request: Request,
        workflow_id: WorkflowId,
        step_id: StepId,
        principal: PrincipalDep,
        body: DecisionBody = None,
    ) -> Response:
        """Let an outbound or destructive step run (needs the scopes of its function).

        Answers when the step finished: ``completed`` with its result or ``failed``
        with its error. Audited as ``approved``.
        """
        return await _decide(request, principal, workflow_id, step_id, body, approve=True)

    @router.post(
        "/workflows/{workflowId}/steps/{stepId}/reject",
        summary="Reject a plan step that waits for approval: it and its dependents skip",
        response_model=StepDecisionResponse,
        responses=DECISION_PROBLEMS,
    )
    async def reject_step(
        request: Request,
        workflow_id: WorkflowId,
        step_id: StepId,
        principal: PrincipalDep,
        body: DecisionBody = None,
    ) -> Response:
        """Skip the step (``skipped``, error REJECTED with the reason); audited as ``rejected``."""
        return await _decide(request, principal, workflow_id, step_id, body, approve=False)

    return router


async def _decide(
    request: Request,
    principal: Principal,
    workflow_id: str,
    step_id: str,
    body: StepDecisionRequest | None,
    *,
    approve: bool,
) -> Response:
    info = RequestInfo.new(surface="http")
    decided = await _gateway(request).decide_step(
        principal,
        info,
        workflow_id,
        step_id,
        approve=approve,
        reason=body.reason if body else None,
    )
    return Response(decided.model_dump_json(by_alias=True), media_type=JSON)


async def _idempotent(
    store: HttpIdempotencyStore,
    gateway: Gateway,
    principal: Principal,
    body: Any,
    info: RequestInfo,
    key: str,
) -> Response:
    """Run a keyed request once; a retry gets the stored response back."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidArguments(
            "Idempotency-Key must have 1 to 255 characters",
            errors=[{"path": "Idempotency-Key", "message": "bad length", "expected": "1-255"}],
        )
    canonical = json.dumps(body.model_dump(mode="json", by_alias=True), sort_keys=True)
    claim = await store.begin(principal.clinic_id, key, fingerprint(canonical.encode()))
    if claim.outcome == "mismatch":
        return problem_response(
            409,
            "CONFLICT",
            "this Idempotency-Key was used for a different request",
            idempotencyKey=key,
        )
    if claim.outcome == "running":
        return problem_response(
            409,
            "CONFLICT",
            "a request with this Idempotency-Key is still running; retry later",
            headers={"Retry-After": "1"},
            idempotencyKey=key,
        )
    if claim.outcome == "replay":
        assert claim.response is not None and claim.status_code is not None
        return Response(
            claim.response,
            status_code=claim.status_code,
            media_type=JSON,
            headers={"Idempotent-Replayed": "true"},
        )
    try:
        response = _answer(await gateway.execute(principal, body, info))
    except BaseException:
        with contextlib.suppress(Exception):  # the claim's lease frees it otherwise
            await store.abandon(principal.clinic_id, key)
        raise
    if response.status_code == 503:  # nothing definitive to replay: let the retry run
        with contextlib.suppress(Exception):
            await store.abandon(principal.clinic_id, key)
        return response
    try:
        await store.finish(principal.clinic_id, key, response.status_code, bytes(response.body))
    except Exception:
        # The work is done; only recording the answer failed (the database went away).
        # Keep trying in the background so retries get this answer instead of waiting
        # out the claim's lease as "still running".
        log.warning("recording the answer of an Idempotency-Key failed; retrying")
        task = asyncio.create_task(
            _finish_later(store, principal.clinic_id, key, response.status_code, response)
        )
        _FINISHING.add(task)
        task.add_done_callback(_FINISHING.discard)
    return response


_FINISHING: set[asyncio.Task[None]] = set()
FINISH_RETRY_S = 60.0


async def _finish_later(
    store: HttpIdempotencyStore, clinic_id: str, key: str, status: int, response: Response
) -> None:
    deadline = time.monotonic() + FINISH_RETRY_S
    delay = 0.25
    while time.monotonic() < deadline:
        await asyncio.sleep(delay)
        try:
            await store.finish(clinic_id, key, status, bytes(response.body))
            return
        except Exception:
            delay = min(delay * 2, 4.0)
    log.error("gave up recording the answer of an Idempotency-Key after %.0f s", FINISH_RETRY_S)


def _answer(result: ExecuteResponse) -> Response:
    """200 with per-call outcomes; 503 + Retry-After when a call met a dependency outage.

    The 503 body is the same response (which calls succeeded, which did not); a retry
    with the same Idempotency-Key runs the request again, each effect keyed, so what
    already happened is answered from its first result and the rest is done now.
    """
    body = result.model_dump_json(by_alias=True, exclude_none=True)  # nulls inside results stay
    headers = {"X-Position": str(result.position)} if result.position else {}
    if _unavailable(result):
        headers["Retry-After"] = "1"
        return Response(body, status_code=503, media_type=JSON, headers=headers)
    return Response(body, media_type=JSON, headers=headers or None)


def _unavailable(result: ExecuteResponse) -> bool:
    errors = [result.error, *(r.error for r in result.results)]
    return any(e is not None and e.code == ServiceUnavailable.code for e in errors)


def _parse_execute(raw: bytes) -> ExecuteRequest:
    try:
        parsed: ExecuteRequest = EXECUTE_REQUEST.validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None
    return parsed


MAX_POSITION = 2**63 - 1
"""Positions are PostgreSQL bigints."""


def _min_position(request: Request) -> int | None:
    raw = request.headers.get("x-min-position")
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19 or int(raw) > MAX_POSITION:
        raise InvalidArguments(
            "X-Min-Position must be a non-negative integer",
            errors=[
                {
                    "path": "X-Min-Position",
                    "message": f"not a position: {raw!r}",
                    "expected": "a global position returned by an earlier write",
                }
            ],
        )
    return int(raw)


# --- /ai/schema ------------------------------------------------------------------------


def gateway_openapi(routers: Sequence[APIRouter], gateway: Gateway) -> dict[str, Any]:
    """The OpenAPI document of the gateway's routes, every request variant spelled out.

    Besides the routes' own schemas, each function's call is a variant of ``Call``
    (``function`` fixed, ``arguments`` its argument schema) and each function's
    argument and result schemas are components, all derived from the registry.
    """
    app = FastAPI()
    for router in routers:
        app.include_router(router)
    doc = get_openapi(
        title="MedicalCor AI gateway",
        version="1.0.0",
        description=(
            "Gateway functions for LLM agents (see /ai/functions). The same tools are served "
            "over MCP (streamable HTTP) at /mcp."
        ),
        routes=app.routes,
    )
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = problem_schema()
    request = EXECUTE_REQUEST.json_schema(ref_template="#/components/schemas/{model}")
    components.update(request.pop("$defs", {}))
    body = doc["paths"]["/ai/execute"]["post"]["requestBody"]["content"]["application/json"]
    body["schema"] = request
    variants = []
    for spec in gateway.registry:
        stem = "".join(part.capitalize() for part in spec.name.split("_"))
        docs = gateway.catalogue.docs[spec.name]
        components[f"{stem}Arguments"] = docs["parameters"]
        components[f"{stem}Result"] = docs["returns"]
        components[f"{stem}Call"] = {
            "type": "object",
            "description": spec.summary,
            "properties": {
                "function": {"const": spec.name},
                "arguments": {"$ref": f"#/components/schemas/{stem}Arguments"},
                "callId": {"type": "string", "maxLength": 100},
            },
            "required": ["function", "arguments"],
            "additionalProperties": False,
        }
        variants.append((spec.name, f"#/components/schemas/{stem}Call"))
    components["Call"] = {
        "oneOf": [{"$ref": ref} for _, ref in variants],
        "discriminator": {"propertyName": "function", "mapping": dict(variants)},
        "description": "One gateway function call; the variant is chosen by `function`.",
    }
    doc["components"].setdefault("securitySchemes", {}).update(
        {
            "bearer": {"type": "http", "scheme": "bearer", "description": "mc_... API key"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
    )
    doc["security"] = [{"bearer": []}, {"apiKey": []}]
    return doc


# --- wiring ----------------------------------------------------------------------------


def mount_ai_gateway(app: FastAPI) -> McpEndpoint:
    """Add the gateway's routes (``/ai/*``, ``/ai/keys``, ``/mcp``) and problem handlers."""
    install_problem_handlers(app)
    app.include_router(create_ai_router())
    app.include_router(create_keys_router())
    mcp = McpEndpoint()
    app.router.routes.append(mcp.route())
    app.state.mcp = mcp
    return mcp


@asynccontextmanager
async def run_ai_gateway(
    app: FastAPI,
    *,
    pool: asyncpg.Pool,
    settings: Settings,
    commands: CommandExecutor,
    queries: QueryExecutor,
    workflows: WorkflowGateway,
    planner: Planner | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> AsyncIterator[Gateway]:
    """The gateway's resources for the app's lifetime (enter it in the lifespan)."""
    keys = ApiKeyStore(pool, settings.secret_key)
    audit = AuditLog(pool)
    await keys.start()
    gateway = Gateway(
        commands=commands,
        queries=queries,
        workflows=workflows,
        audit=audit,
        settings=settings,
        planner=planner,
        clock=clock,
    )
    app.state.api_keys = keys
    app.state.authenticator = Authenticator(
        keys,
        rate_per_s=settings.rate_limit_per_key_per_s,
        burst=settings.rate_limit_burst,
        clinic_rate_per_s=settings.clinic_rate_limit_per_s,
        clinic_burst=settings.clinic_rate_limit_burst,
    )
    app.state.http_idempotency = HttpIdempotencyStore(pool)
    app.state.gateway = gateway
    mcp: McpEndpoint | None = getattr(app.state, "mcp", None)
    try:
        if mcp is None:
            yield gateway
        else:
            async with mcp.run():
                yield gateway
    finally:
        await audit.flush()
        await keys.close()
