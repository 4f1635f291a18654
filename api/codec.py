"""The Temporal codec server: ``POST /codec/decode`` and ``/codec/encode`` for the Web UI and CLI.

Speaks the codec-server protocol: the body is a ``temporal.api.common.v1.Payloads``
message in protobuf JSON (``{"payloads": [{"metadata": {...}, "data": "<base64>"}]}``),
and so is the answer. Payloads stay encrypted in Temporal; only an authorised
operator's browser sees them decrypted.

Authorisation: an API key with the ``admin`` scope (``Authorization: Bearer`` or
``X-API-Key``), or the configured codec token as a Bearer token. When the UI cannot
send headers, point it at ``/codec/t/<token>`` instead of ``/codec`` (the token then
sits in the URL: use only on a private network). CORS answers the configured UI
origins (preflight included), as the UI calls from the browser.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

from api.errors import problem_response

ALLOWED_HEADERS = "Authorization, Content-Type, X-Namespace, X-API-Key"
Operation = Callable[[Sequence[Any]], Awaitable[list[Any]]]


def codec_router(
    codec: PayloadCodec,
    *,
    token: str | None = None,
    ui_origins: Sequence[str] = (),
    prefix: str = "/codec",
) -> APIRouter:
    """The codec endpoints for ``codec`` (mount it once; it carries its own CORS)."""
    router = APIRouter(prefix=prefix, tags=["codec"])
    origins = frozenset(o.rstrip("/") for o in ui_origins)

    async def handle(request: Request, op: str, path_token: str | None = None) -> Response:
        cors = _cors_headers(request, origins)
        if not await _authorised(request, token, path_token):
            status = 401 if path_token is None else 403
            code = "UNAUTHENTICATED" if status == 401 else "FORBIDDEN"
            return problem_response(
                status, code, "codec access needs an admin API key or token", headers=cors
            )
        try:
            payloads = json_format.Parse(await request.body(), Payloads())
        except json_format.ParseError as exc:
            return problem_response(
                400,
                "INVALID_ARGUMENTS",
                f"not a Payloads message: {exc}",
                errors=[{"path": "body", "message": str(exc), "expected": "Payloads JSON"}],
                headers=cors,
            )
        work: Operation = codec.decode if op == "decode" else codec.encode
        try:
            result = await work(payloads.payloads)
        except Exception as exc:  # an unknown key or a tampered payload
            return problem_response(400, "INVALID_ARGUMENTS", str(exc), headers=cors)
        body = json_format.MessageToJson(Payloads(payloads=result))
        return Response(body, media_type="application/json", headers=cors)

    async def preflight(request: Request) -> Response:
        return Response(status_code=204, headers=_cors_headers(request, origins, preflight=True))

    for op in ("decode", "encode"):
        router.add_api_route(
            f"/{op}",
            _bind(handle, op),
            methods=["POST"],
            name=f"codec_{op}",
            responses={
                400: {"description": "Not a Temporal Payloads JSON document"},
                401: {"description": "No admin API key or codec token"},
                403: {"description": "The key is not an admin key"},
            },
        )
        router.add_api_route(f"/{op}", preflight, methods=["OPTIONS"], include_in_schema=False)
        router.add_api_route(
            "/t/{path_token}/" + op, _bind_token(handle, op), methods=["POST"],
            include_in_schema=False,
        )  # fmt: skip
        router.add_api_route(
            "/t/{path_token}/" + op, preflight, methods=["OPTIONS"], include_in_schema=False
        )
    return router


def _bind(handle: Callable[..., Awaitable[Response]], op: str) -> Callable[..., Any]:
    async def endpoint(request: Request) -> Response:
        return await handle(request, op)

    endpoint.__doc__ = f"{op.capitalize()} Temporal payloads (codec-server protocol)."
    return endpoint


def _bind_token(handle: Callable[..., Awaitable[Response]], op: str) -> Callable[..., Any]:
    async def endpoint(request: Request, path_token: str) -> Response:
        return await handle(request, op, path_token)

    return endpoint


async def _authorised(request: Request, token: str | None, path_token: str | None) -> bool:
    if path_token is not None:
        return token is not None and hmac.compare_digest(path_token, token)
    auth = request.headers.get("authorization", "")
    scheme, _, presented = auth.partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(presented.strip(), token):
        return True
    authenticator = getattr(request.app.state, "authenticator", None)
    if authenticator is None:
        return False
    try:
        principal = await authenticator.authenticate(request.headers)
    except Exception:  # no key, a bad key or a rate limit: not authorised here
        return False
    return "admin" in principal.scopes


def _cors_headers(
    request: Request, origins: frozenset[str], *, preflight: bool = False
) -> dict[str, str]:
    origin = request.headers.get("origin")
    if not origin or origin.rstrip("/") not in origins:
        return {}
    headers = {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }
    if preflight:
        headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        headers["Access-Control-Max-Age"] = "600"
    return headers
