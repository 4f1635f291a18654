"""The gateway's functions as MCP tools over streamable HTTP at ``/mcp``.

The tool list is derived from the registry (names, descriptions, input and output
schemas, annotations: readOnlyHint, destructiveHint, idempotentHint,
openWorldHint), filtered to what the caller's key may run. Calls take the same
path as ``/ai/execute`` (``Gateway.call``): API key from the HTTP headers, scopes,
audit (surface ``mcp``), validation, the handler. Stateless HTTP with JSON
responses: any replica can answer any request.

Wiring (``create_app``)::

    mcp = McpEndpoint()
    app.router.routes.append(mcp.route())           # serves /mcp
    async with mcp.run():                           # in the lifespan
        yield

It reads ``app.state.gateway`` and ``app.state.authenticator`` per request.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from api.auth import Authenticator, Principal
from api.errors import AuthenticationFailed, domain_problem, problem_response
from api.gateway import Gateway, RequestInfo
from domain.errors import DomainError
from domain.functions.schemas import output_schema

PATH = "/mcp"
SERVER_NAME = "medicalcor"


class McpEndpoint:
    """The ``/mcp`` ASGI endpoint: authenticates, then hands over to the MCP SDK."""

    def __init__(self) -> None:
        self.server: Server[Any] = Server(
            SERVER_NAME,
            version="1.0.0",
            instructions=(
                "Tools of MedicalCor, the CRM of a dental clinic in Bucharest. Phones may be "
                "E.164 or Romanian local forms; dates are ISO 8601 (Europe/Bucharest). Errors "
                "carry a code (INVALID_ARGUMENTS, MISSING_ARGUMENTS, CONSENT_REQUIRED, "
                "NOT_FOUND, CONFLICT, FORBIDDEN ...) and say what to fix or ask."
            ),
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )
        self.sessions = StreamableHTTPSessionManager(
            app=self.server, json_response=True, stateless=True
        )

    def route(self) -> Route:
        """The Starlette route serving ``/mcp`` (GET, POST, DELETE)."""
        return Route(PATH, endpoint=self, methods=["GET", "POST", "DELETE"])

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """The SDK's task group; enter it in the application's lifespan, once."""
        async with self.sessions.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app_state = scope["app"].state
        authenticator: Authenticator = app_state.authenticator
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            principal = await authenticator.authenticate(headers)
        except AuthenticationFailed as exc:
            response = problem_response(
                401,
                "UNAUTHENTICATED",
                exc.message,
                headers={"WWW-Authenticate": 'Bearer realm="medicalcor"'},
                instance=PATH,
            )
            await response(scope, receive, send)
            return
        except DomainError as exc:  # rate limited
            await domain_problem(exc, instance=PATH)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.sessions.handle_request(scope, receive, send)

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        gateway, principal = _caller(ctx)
        return types.ListToolsResult(tools=self._tools_for(gateway, principal.scopes))

    def _tools_for(self, gateway: Gateway, scopes: frozenset[str]) -> list[types.Tool]:
        return gateway.view(
            ("mcp", scopes),
            lambda: [_tool(gateway, s.name) for s in gateway.registry.allowed(scopes)],
        )

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        gateway, principal = _caller(ctx)
        info = RequestInfo.new(surface="mcp")
        outcome = await gateway.call(
            principal, info, params.name, params.arguments or {}, str(ctx.request_id or "c1")
        )
        if outcome.success:
            text = json.dumps(outcome.result, ensure_ascii=False)
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=text)],
                structured_content=outcome.result,
            )
        assert outcome.error is not None
        error = outcome.error.model_dump(mode="json")
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(error, ensure_ascii=False))],
            is_error=True,
        )


def _caller(ctx: ServerRequestContext[Any]) -> tuple[Gateway, Principal]:
    request = ctx.request
    if request is None:
        raise RuntimeError("the MCP gateway is served over HTTP only")
    principal: Principal = request.scope["state"]["principal"]
    gateway: Gateway = request.scope["app"].state.gateway
    return gateway, principal


def _tool(gateway: Gateway, name: str) -> types.Tool:
    spec = gateway.registry.get(name)
    doc = gateway.catalogue.docs[name]
    hints = doc["annotations"]
    return types.Tool(
        name=name,
        title=hints["title"],
        description=spec.description,
        input_schema=doc["parameters"],
        output_schema=output_schema(spec),
        annotations=types.ToolAnnotations(
            title=hints["title"],
            read_only_hint=hints["readOnlyHint"],
            destructive_hint=hints["destructiveHint"],
            idempotent_hint=hints["idempotentHint"],
            open_world_hint=hints["openWorldHint"],
        ),
    )
