"""The app's OpenAPI document says what the app really answers on errors.

FastAPI documents a 422 ``HTTPValidationError`` in plain JSON, and nothing for a
missing key, yet every error here is an RFC 9457 problem (``api.errors``). This
module rewrites the generated document once: every 4xx/5xx is
``application/problem+json`` with the ``Problem`` schema; every route that
authenticates documents 401 (no valid key), 403 (missing scope), 429 (rate limited)
and 503 (a dependency briefly away, retry).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api.errors import PROBLEM_JSON, problem_schema

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_AUTH_RESPONSES = {
    "401": "No valid API key (Authorization: Bearer or X-API-Key)",
    "403": "The key lacks a scope this operation needs",
    "429": "Rate limited (see Retry-After)",
    "503": "A dependency is briefly unavailable; retry (see Retry-After)",
}


def _walk(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _walk(dependency)


def authenticated_paths(app: FastAPI, principal: Callable[..., Any]) -> set[tuple[str, str]]:
    """``(path, method)`` of every route whose dependencies include ``principal``."""
    found: set[tuple[str, str]] = set()
    _collect(app.router.routes, "", (), principal, found)
    return found


def _collect(
    routes: Sequence[Any],
    prefix: str,
    inherited: tuple[Callable[..., Any], ...],
    principal: Callable[..., Any],
    found: set[tuple[str, str]],
) -> None:
    """Walk routes, including routers FastAPI keeps as included-router entries."""
    for route in routes:
        if isinstance(route, APIRoute):
            calls = {*inherited, *_walk(route.dependant)}
            if principal in calls:
                found |= {(prefix + route.path_format, m.lower()) for m in route.methods or ()}
            continue
        router = getattr(route, "original_router", None)
        if router is None:
            continue
        context = getattr(route, "include_context", None)
        extra = tuple(
            d.dependency for d in getattr(context, "dependencies", ()) if d.dependency is not None
        )
        child_prefix = prefix + str(getattr(context, "prefix", "") or "")
        _collect(router.routes, child_prefix, inherited + extra, principal, found)


def document_problems(app: FastAPI, principal: Callable[..., Any]) -> None:
    """Replace ``app.openapi`` with a version that documents problem responses."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = generate()
        rewrite(doc, authenticated_paths(app, principal))
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def rewrite(doc: dict[str, Any], authenticated: set[tuple[str, str]]) -> None:
    """Problem responses everywhere (in place); auth responses on ``authenticated``."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = problem_schema()
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if (path, method) in authenticated:
                for status, description in _AUTH_RESPONSES.items():
                    responses.setdefault(status, {"description": description})
            for status, response in responses.items():
                if status[0] not in "45":
                    continue
                if status == "422" and not _is_problem(response):
                    response["description"] = "Invalid request: errors[] names each field"
                response["content"] = {PROBLEM_JSON: {"schema": PROBLEM_REF}}
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused in schemas and unused not in str(doc.get("paths")):
            del schemas[unused]


def _is_problem(response: dict[str, Any]) -> bool:
    return PROBLEM_JSON in response.get("content", {})
