"""A fake 360dialog WhatsApp API speaking both of its wire shapes.

``POST /v1/messages`` answers like the On-Premises API (``waba.360dialog.io/v1``):
``{"messages": [{"id"}], "meta": {...}}`` and errors ``{"errors": [{code, title,
details}], "meta": {...}}``. ``POST /messages`` answers like the Cloud API
(``waba-v2.360dialog.io``): ``{"messaging_product", "contacts", "messages": [{"id"}]}``
and Graph errors ``{"error": {message, type, code, error_data, fbtrace_id}}``.
Both check ``D360-API-KEY`` (401 in 360dialog's gateway shape otherwise) and
validate the body the way the provider does.

Also: helpers that build webhook payloads and sign them like the provider.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.server import FakeServer, Scripted, json_response, parse_json

Shape = Literal["onprem", "cloud"]

# (On-Premises code, Cloud API code, title) per kind of refusal.
ERRORS: dict[str, tuple[int, int, str]] = {
    "missing": (1008, 131008, "Required parameter is missing"),
    "invalid": (1009, 131009, "Parameter value is not valid"),
    "template_missing": (2001, 132001, "Template name does not exist in the translation"),
    "param_count": (2000, 132000, "Number of parameters does not match the expected number"),
    "param_format": (2006, 132018, "There was an issue with the parameters in your template"),
    "undeliverable": (1013, 131026, "Message Undeliverable"),
    "rate_limit": (1015, 130429, "Rate limit hit"),
    "server": (1014, 131000, "Something went wrong"),
}
_TO = re.compile(r"^\d{8,15}$")
_BAD_PARAM = re.compile(r"[\n\t]| {5,}")


class Invalid(Exception):
    """A body the provider would refuse: the kind (see ``ERRORS``) and the details."""

    def __init__(self, kind: str, details: str) -> None:
        super().__init__(details)
        self.kind = kind
        self.details = details


class Fake360Dialog(FakeServer):
    """The fake. ``templates`` maps known template names to their body parameter count;
    ``None`` accepts any template name."""

    def __init__(
        self, api_key: str = "test-360dialog-key", templates: Mapping[str, int] | None = None
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.templates = dict(templates) if templates is not None else None
        self.accepted: list[dict[str, Any]] = []
        """Every message accepted, with the ``id`` answered (``_id``) and path (``_shape``)."""

    def build_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/messages", self._onprem, methods=["POST"]),
                Route("/messages", self._cloud, methods=["POST"]),
            ]
        )

    # --- scripting ---------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        *,
        kind: str | None = None,
        code: int | None = None,
        title: str | None = None,
        details: str = "scripted failure",
        retry_after: str | None = None,
        delay_s: float = 0.0,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` sends with ``status`` and a provider error body.

        ``kind`` picks a code/title pair from ``ERRORS`` (default by status: 429 →
        rate_limit, 5xx → server, else invalid); ``code``/``title`` override it.
        """
        kind = kind or ("rate_limit" if status == 429 else "server" if status >= 500 else "invalid")
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        extra = {"kind": kind, "code": code, "title": title, "details": details}
        self.enqueue(Scripted(status, None, headers, delay_s, "messages", extra), times)

    # --- handlers ---------------------------------------------------------------------

    async def _onprem(self, request: Request) -> Response:
        return await self._handle(request, "onprem")

    async def _cloud(self, request: Request) -> Response:
        return await self._handle(request, "cloud")

    async def _handle(self, request: Request, shape: Shape) -> Response:
        recorded = await self.record(request, "messages")
        entry = await self.scripted("messages")
        if entry is not None:
            return self._scripted_response(entry, shape)
        if recorded.headers.get("d360-api-key") != self.api_key:
            return _unauthorized()
        try:
            body = _validate(parse_json(recorded), shape, self.templates)
        except Invalid as exc:
            return _error(shape, 400, exc.kind, details=exc.details)
        return self._accept(body, shape)

    def _accept(self, body: dict[str, Any], shape: Shape) -> Response:
        if shape == "onprem":
            message_id = "gBEGkY" + secrets.token_urlsafe(18).replace("-", "A").replace("_", "B")
            answer: dict[str, Any] = {"messages": [{"id": message_id}], "meta": _META}
        else:
            message_id = "wamid.HBgL" + secrets.token_urlsafe(24)
            answer = {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                "messages": [{"id": message_id}],
            }
        with self._lock:
            self.accepted.append({**body, "_id": message_id, "_shape": shape})
        return json_response(200 if shape == "cloud" else 201, answer)

    def _scripted_response(self, entry: Scripted, shape: Shape) -> Response:
        if entry.body is not None:
            return json_response(entry.status or 500, entry.body, entry.headers)
        return _error(
            shape,
            entry.status or 500,
            entry.extra.get("kind", "server"),
            details=entry.extra.get("details", ""),
            code=entry.extra.get("code"),
            title=entry.extra.get("title"),
            headers=entry.headers,
        )


_META = {"api_status": "stable", "version": "2.51.2"}


def _unauthorized() -> Response:
    body = {
        "meta": {
            "success": False,
            "http_code": 401,
            "developer_message": "Invalid api key",
            "360dialog_trace_id": secrets.token_hex(8),
        }
    }
    return json_response(401, body)


def _error(
    shape: Shape,
    status: int,
    kind: str,
    *,
    details: str,
    code: int | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    onprem_code, cloud_code, default_title = ERRORS[kind]
    title = title or default_title
    if shape == "onprem":
        error = {"code": code or onprem_code, "title": title, "details": details}
        return json_response(status, {"errors": [error], "meta": _META}, headers)
    code = code or cloud_code
    body = {
        "error": {
            "message": f"(#{code}) {title}",
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details},
            "fbtrace_id": secrets.token_urlsafe(12),
        }
    }
    return json_response(status, body, headers)


# --- body validation, as the provider does it -----------------------------------------


def _validate(body: Any, shape: Shape, templates: Mapping[str, int] | None) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Invalid("invalid", "request body must be a JSON object")
    product = body.get("messaging_product")
    if shape == "cloud" and product is None:
        raise Invalid("missing", "messaging_product is required")
    if product is not None and product != "whatsapp":
        raise Invalid("invalid", "messaging_product must be 'whatsapp'")
    if body.get("recipient_type", "individual") != "individual":
        raise Invalid("invalid", "recipient_type must be 'individual'")
    to = body.get("to")
    if to is None:
        raise Invalid("missing", "to is required")
    if not isinstance(to, str) or not _TO.match(to):
        raise Invalid("invalid", f"to must be the number's digits without '+': {to!r}")
    kind = body.get("type", "text")
    if kind == "text":
        _validate_text(body.get("text"))
    elif kind == "template":
        _validate_template(body.get("template"), shape, templates)
    else:
        raise Invalid("invalid", f"unsupported type {kind!r}")
    return body


def _validate_text(text: Any) -> None:
    if not isinstance(text, dict) or "body" not in text:
        raise Invalid("missing", "text.body is required")
    value = text["body"]
    if not isinstance(value, str) or not value.strip():
        raise Invalid("invalid", "text.body must be a non-empty string")
    if len(value) > 4096:
        raise Invalid("invalid", "text.body is longer than 4096 characters")


def _validate_template(template: Any, shape: Shape, templates: Mapping[str, int] | None) -> None:
    if not isinstance(template, dict):
        raise Invalid("missing", "template is required")
    name = template.get("name")
    if not isinstance(name, str) or not name:
        raise Invalid("missing", "template.name is required")
    language = template.get("language")
    if not isinstance(language, dict) or not isinstance(language.get("code"), str):
        raise Invalid("missing", "template.language.code is required")
    policy = language.get("policy")
    if (shape == "onprem" and policy is None) or policy not in (None, "deterministic"):
        raise Invalid("invalid", "template.language.policy must be 'deterministic'")
    params = _body_params(template.get("components", []))
    if templates is not None:
        if name not in templates:
            raise Invalid("template_missing", f"template {name!r} ({language['code']})")
        if templates[name] != len(params):
            raise Invalid("param_count", f"expected {templates[name]}, got {len(params)}")


def _body_params(components: Any) -> list[str]:
    if not isinstance(components, list):
        raise Invalid("invalid", "template.components must be a list")
    texts: list[str] = []
    for component in components:
        if not isinstance(component, dict) or component.get("type") not in (
            "header",
            "body",
            "button",
        ):
            raise Invalid("invalid", "component type must be header, body or button")
        if component["type"] != "body":
            continue
        for param in component.get("parameters", []):
            texts.append(_text_param(param))
    return texts


def _text_param(param: Any) -> str:
    if not isinstance(param, dict) or param.get("type") != "text":
        raise Invalid("invalid", "body parameters must be {type: 'text', text}")
    text = param.get("text")
    if not isinstance(text, str) or not text:
        raise Invalid("missing", "parameter text is required")
    if _BAD_PARAM.search(text):
        raise Invalid(
            "param_format",
            "Param text cannot have new-line/tab characters or more than 4 consecutive spaces",
        )
    return text


# --- webhooks ---------------------------------------------------------------------------


def sign_webhook(body: bytes, secret: str) -> str:
    """The signature header value the provider sends: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_body(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes to sign and post."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def cloud_webhook(
    *,
    messages: Sequence[Mapping[str, Any]] = (),
    statuses: Sequence[Mapping[str, Any]] = (),
    contacts: Sequence[Mapping[str, Any]] = (),
    phone_number_id: str = "106540352242922",
) -> dict[str, Any]:
    """A Cloud API webhook envelope carrying ``messages`` and/or ``statuses``."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "40312345678", "phone_number_id": phone_number_id},
    }
    if contacts:
        value["contacts"] = list(contacts)
    if messages:
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = list(statuses)
    change = {"field": "messages", "value": value}
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [change]}],
    }


def contact(wa_id: str, name: str) -> dict[str, Any]:
    """A ``contacts[]`` entry (the sender's profile name)."""
    return {"profile": {"name": name}, "wa_id": wa_id}


def text_message(
    sender: str, text: str, *, message_id: str | None = None, ts: int | None = None
) -> dict[str, Any]:
    """An inbound text message as the provider posts it."""
    return {
        "from": sender,
        "id": message_id or "wamid." + secrets.token_urlsafe(16),
        "timestamp": str(ts if ts is not None else int(time.time())),
        "type": "text",
        "text": {"body": text},
    }


def status_update(
    message_id: str,
    status: str,
    recipient: str,
    *,
    ts: int | None = None,
    errors: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """A ``statuses[]`` entry for a message the clinic sent."""
    entry: dict[str, Any] = {
        "id": message_id,
        "status": status,
        "timestamp": str(ts if ts is not None else int(time.time())),
        "recipient_id": recipient,
    }
    if errors:
        entry["errors"] = list(errors)
    return entry
