"""RFC 9457 problem details: the one place domain errors become HTTP responses.

Every error answer is ``application/problem+json`` with ``type``, ``title``,
``status``, ``detail``, the gateway's ``code`` and ``errors[]`` (``{path, message,
expected}`` when input was wrong), plus the error's other details as extension
members. ``install_problem_handlers(app)`` registers the handlers on an app.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from adapters.transient import is_transient
from domain.errors import DomainError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://medicalcor.ro/problems/"

TITLES: dict[str, str] = {
    "INVALID_ARGUMENTS": "Invalid arguments",
    "MISSING_ARGUMENTS": "Missing arguments",
    "NOT_FOUND": "Not found",
    "CONFLICT": "Conflict",
    "CONSENT_REQUIRED": "Consent required",
    "FORBIDDEN": "Forbidden",
    "UNAUTHENTICATED": "Authentication required",
    "RATE_LIMITED": "Too many requests",
    "FUNCTION_NOT_FOUND": "Function not found",
    "NO_INTENT_DETECTED": "No intent detected",
    "EXECUTION_ERROR": "Execution error",
    "PAYLOAD_TOO_LARGE": "Payload too large",
    "METHOD_NOT_ALLOWED": "Method not allowed",
    "SERVICE_UNAVAILABLE": "Service unavailable",
}
_CODE_OF_STATUS = {
    400: "INVALID_ARGUMENTS",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    422: "INVALID_ARGUMENTS",
    429: "RATE_LIMITED",
}


class AuthenticationFailed(Exception):
    """No valid API key: answered 401 with a ``WWW-Authenticate`` challenge."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def problem_type(code: str) -> str:
    return TYPE_BASE + code.lower().replace("_", "-")


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    errors: Sequence[Mapping[str, Any]] = (),
    instance: str | None = None,
    **extensions: Any,
) -> dict[str, Any]:
    """A problem-details object (JSON-ready)."""
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": TITLES.get(code, code.replace("_", " ").capitalize()),
        "status": status,
        "detail": detail,
        "code": code,
        "errors": [dict(e) for e in errors],
    }
    if instance:
        body["instance"] = instance
    for key, value in extensions.items():
        body.setdefault(key, value)
    return body


def problem_schema() -> dict[str, Any]:
    """JSON Schema of a problem-details body (the OpenAPI ``Problem`` component)."""
    example = problem(422, "INVALID_ARGUMENTS", "invalid request")
    return {
        "type": "object",
        "description": "RFC 9457 problem details.",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string"},
            "instance": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string"},
                        "message": {"type": "string"},
                        "expected": {"type": "string"},
                    },
                },
            },
        },
        "required": ["type", "title", "status", "detail", "code"],
        "example": example,
    }


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    errors: Sequence[Mapping[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
    instance: str | None = None,
    **extensions: Any,
) -> Response:
    """A problem as an HTTP response."""
    body = problem(status, code, detail, errors=errors, instance=instance, **extensions)
    return Response(
        json.dumps(body, ensure_ascii=False, default=str).encode(),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=dict(headers or {}),
    )


def domain_problem(exc: DomainError, instance: str | None = None) -> Response:
    """A domain error as its problem response (status from the error class)."""
    details = dict(exc.details)
    errors = details.pop("errors", [])
    headers = {}
    retry_after = details.get("retryAfter")
    if exc.http_status in (429, 503) and retry_after is not None:
        headers["Retry-After"] = str(max(1, int(-(-float(retry_after) // 1))))
    return problem_response(
        exc.http_status,
        exc.code,
        exc.message,
        errors=errors,
        headers=headers,
        instance=instance,
        **details,
    )


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """FastAPI's request errors as ``{path, message, expected}`` (field paths, no prefix)."""
    out = []
    for error in exc.errors():
        loc = list(error.get("loc", ()))
        if loc and loc[0] in ("body", "query", "header", "path"):
            loc = loc[1:]  # where FastAPI found it, not part of the field's path
        if loc and loc[0] in ("function_call", "natural", "workflow"):
            loc = loc[1:]  # discriminated-union tag, not a field
        path = ""
        for part in loc:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        expected = error.get("ctx", {}).get("expected") or _expected(error)
        message = "required" if error.get("type") == "missing" else str(error.get("msg"))
        out.append({"path": path, "message": message, "expected": str(expected)})
    return out


def _expected(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    return {
        "missing": "a value",
        "json_invalid": "a valid JSON body",
        "model_attributes_type": "a JSON object",
        "dict_type": "a JSON object",
        "list_type": "a list",
        "string_type": "a string",
        "bool_type": "true or false",
        "int_type": "an integer",
        "union_tag_invalid": "type: function_call, natural or workflow",
        "union_tag_not_found": "a type: function_call, natural or workflow",
        "extra_forbidden": "only documented fields",
    }.get(kind, "a valid value")


async def _on_domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return domain_problem(exc, instance=request.url.path)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc)
    detail = "; ".join(f"{e['path'] or '(body)'}: {e['message']}" for e in errors)
    return problem_response(
        422,
        "INVALID_ARGUMENTS",
        f"invalid request: {detail}",
        errors=errors,
        instance=request.url.path,
    )


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODE_OF_STATUS.get(exc.status_code, "EXECUTION_ERROR")
    return problem_response(
        exc.status_code,
        code,
        str(exc.detail),
        headers=exc.headers,
        instance=request.url.path,
    )


async def _on_authentication_failed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthenticationFailed)
    return problem_response(
        401,
        "UNAUTHENTICATED",
        exc.message,
        headers={"WWW-Authenticate": 'Bearer realm="medicalcor"'},
        instance=request.url.path,
    )


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    if _is_unstorable_text(exc):
        # PostgreSQL text cannot hold NUL: input the models did not screen (a path
        # parameter, a header-derived value) is the caller's error, not ours.
        return problem_response(
            422,
            "INVALID_ARGUMENTS",
            "the request holds text that cannot be stored (a NUL character)",
            errors=[{"path": "request", "message": "contains U+0000", "expected": "no NUL"}],
            instance=_safe_path(request),
        )
    if is_transient(exc):
        log.warning("dependency unavailable on %s: %r", _safe_path(request), exc)
        return problem_response(
            503,
            "SERVICE_UNAVAILABLE",
            "the database or the workflow engine is briefly unavailable; retry",
            headers={"Retry-After": "1"},
            instance=_safe_path(request),
        )
    log.exception("unhandled error on %s", _safe_path(request))
    return problem_response(
        500, "EXECUTION_ERROR", "internal error; see the trace", instance=request.url.path
    )


def _is_unstorable_text(exc: BaseException) -> bool:
    """asyncpg's refusal of a NUL byte in a text parameter (SQLSTATE 22021)."""
    return getattr(exc, "sqlstate", None) == "22021" or type(exc).__name__ in {
        "CharacterNotInRepertoireError",
        "UntranslatableCharacterError",
    }


def _safe_path(request: Request) -> str:
    return request.url.path.replace("\x00", "\\u0000")


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as problem details (call once, in ``create_app``)."""
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(AuthenticationFailed, _on_authentication_failed)
    app.add_exception_handler(Exception, _on_unexpected)
