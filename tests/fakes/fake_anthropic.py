"""A fake Anthropic Messages API (``POST /v1/messages``) with scripted answers.

Checks the API key (``x-api-key``, or ``Authorization: Bearer`` as the 2.x SDK sends
it) and a dated ``anthropic-version`` header like the real API, validates the
request (model, max_tokens, messages, system, tools, tool_choice) and answers with
real ``message`` objects: ``tool_use`` / ``text`` content blocks, ``stop_reason`` and
``usage``. Errors use the API's ``{"type": "error", "error": {type, message}}`` shape.

    fake.reply_with_tools(("score_lead", {"phone": "+40721234567", "channel": "whatsapp"}))
    fake.fail_next(529, "overloaded_error")
"""

from __future__ import annotations

import json
import re
import secrets
from collections import deque
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.server import FakeServer, RecordedRequest, Scripted, json_response, parse_json

_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class InvalidRequest(Exception):
    """The request the real API would refuse with 400 invalid_request_error."""


class FakeAnthropic(FakeServer):
    """The fake. Scripted replies are consumed in order; without one it answers in text."""

    def __init__(self, api_key: str = "test-anthropic-key") -> None:
        super().__init__()
        self.api_key = api_key
        self._replies: deque[dict[str, Any]] = deque()

    def build_app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/messages", self._messages, methods=["POST"])])

    # --- scripting -------------------------------------------------------------------------

    def reply_with_tools(
        self,
        *calls: tuple[str, dict[str, Any]],
        text: str | None = None,
        stop_reason: str = "tool_use",
        usage: tuple[int, int] | None = None,
    ) -> None:
        """The next successful answer: optional text, then one ``tool_use`` per call."""
        content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        for name, arguments in calls:
            tool_id = "toolu_" + secrets.token_hex(12)
            content.append({"type": "tool_use", "id": tool_id, "name": name, "input": arguments})
        with self._lock:
            self._replies.append({"content": content, "stop_reason": stop_reason, "usage": usage})

    def reply_with_text(self, text: str, *, stop_reason: str = "end_turn") -> None:
        """The next successful answer is text only."""
        with self._lock:
            self._replies.append(
                {
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": stop_reason,
                    "usage": None,
                }
            )

    def fail_next(
        self,
        status: int,
        error_type: str | None = None,
        message: str = "scripted failure",
        *,
        retry_after: str | None = None,
        delay_s: float = 0.0,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests with an API error."""
        error = {"type": error_type or _ERROR_TYPES.get(status, "api_error"), "message": message}
        body = {"type": "error", "error": error}
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        self.enqueue(Scripted(status, body, headers, delay_s, "messages"), times)

    # --- handler ---------------------------------------------------------------------------

    @staticmethod
    def api_key_sent(recorded: RecordedRequest) -> str | None:
        """The key a request authenticated with: ``x-api-key``, or ``Authorization: Bearer``
        (what SDK 2.x sends)."""
        if "x-api-key" in recorded.headers:
            return recorded.headers["x-api-key"]
        scheme, _, token = recorded.headers.get("authorization", "").partition(" ")
        return token if scheme.lower() == "bearer" else None

    async def _messages(self, request: Request) -> Response:
        recorded = await self.record(request, "messages")
        entry = await self.scripted("messages")
        if entry is not None:
            return json_response(entry.status or 500, entry.body, _with_request_id(entry.headers))
        if self.api_key_sent(recorded) != self.api_key:
            return _error(401, "authentication_error", "invalid x-api-key")
        if not _VERSION.match(recorded.headers.get("anthropic-version", "")):
            return _error(400, "invalid_request_error", "anthropic-version header is required")
        body = parse_json(recorded)
        try:
            _validate(body)
        except InvalidRequest as exc:
            return _error(400, "invalid_request_error", str(exc))
        return json_response(200, self._answer(body, len(recorded.body)), _with_request_id({}))

    def _answer(self, body: dict[str, Any], request_bytes: int) -> dict[str, Any]:
        with self._lock:
            reply = self._replies.popleft() if self._replies else None
        if reply is None:
            reply = {
                "content": [{"type": "text", "text": "I cannot map this request to a tool."}],
                "stop_reason": "end_turn",
                "usage": None,
            }
        output_tokens = max(1, len(json.dumps(reply["content"])) // 4)
        # A deterministic stand-in for the tokenizer: about four bytes per token.
        usage = reply["usage"] or (max(1, request_bytes // 4), output_tokens)
        return {
            "id": "msg_" + secrets.token_hex(12),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": reply["content"],
            "stop_reason": reply["stop_reason"],
            "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
        }


def _validate(body: Any) -> None:
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("model: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise InvalidRequest("max_tokens: Field required (a positive integer)")
    _validate_messages(body.get("messages"))
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise InvalidRequest("system: must be a string or a list of text blocks")
    names = _validate_tools(body.get("tools", []))
    _validate_tool_choice(body.get("tool_choice"), names)


def _validate_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: at least one message is required")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise InvalidRequest(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if not isinstance(message.get("content"), str | list):
            raise InvalidRequest(f"messages.{i}.content: Field required")
    if messages[0]["role"] != "user":
        raise InvalidRequest("messages: first message must use the 'user' role")


def _validate_tools(tools: Any) -> set[str]:
    if not isinstance(tools, list):
        raise InvalidRequest("tools: Input should be a valid list")
    names: set[str] = set()
    for i, tool in enumerate(tools):
        name = tool.get("name") if isinstance(tool, dict) else None
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise InvalidRequest(f"tools.{i}.name: String should match pattern")
        if name in names:
            raise InvalidRequest("tools: Tool names must be unique.")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise InvalidRequest(f"tools.{i}.input_schema.type: Input should be 'object'")
        names.add(name)
    return names


def _validate_tool_choice(choice: Any, names: set[str]) -> None:
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in ("auto", "any", "tool", "none"):
        raise InvalidRequest("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    if kind == "tool" and choice.get("name") not in names:
        raise InvalidRequest("tool_choice.name: no tool with that name")
    if kind in ("any", "tool") and not names:
        raise InvalidRequest("tool_choice: tools must be provided")


def _with_request_id(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "request-id": "req_" + secrets.token_hex(12)}


def _error(status: int, error_type: str, message: str) -> Response:
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    return json_response(status, body, _with_request_id({}))
