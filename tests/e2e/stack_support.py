"""Helpers of the end-to-end tests on the ``stack`` fixture (``tests.fixtures.stack``).

* ``normalized``: an answer without what legitimately differs between two calls
  (request and trace ids, timings, generated ids), with given ids replaced by a
  placeholder, so "the answer for clinic B's id" can be compared with "the answer
  for an id nobody has" for EXACT equality;
* ``assert_problem``: an RFC 9457 problem-details response of the expected status
  and code, in the documented shape;
* ``leaked``: which of a clinic's secrets (marker, ids, keys) a body contains.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

PROBLEM_JSON = "application/problem+json"
PROBLEM_FIELDS = ("type", "title", "status", "detail", "code")
PLACEHOLDER = "<ID>"

VOLATILE = frozenset(
    {
        "requestId",
        "traceId",
        "executionTimeMs",
        "totalExecutionTimeMs",
        "position",
        "startedAt",
        "finishedAt",
        "closedAt",
        "runId",
        "workflowId",
        "deliveryWorkflowId",
        "messageId",
        "leadId",
        "createdAt",
        "updatedAt",
        "decidedAt",
        "expiresAt",
    }
)
"""Fields that differ between two identical requests (ids minted per request, clocks)."""


def normalized(answer: Any, ids: Iterable[str] = (), *, drop: Iterable[str] = VOLATILE) -> Any:
    """``answer`` without volatile fields, every string in ``ids`` replaced by ``<ID>``."""
    dropped = frozenset(drop)
    text = json.dumps(_without(answer, dropped), sort_keys=True, ensure_ascii=False)
    for ident in sorted(set(ids), key=len, reverse=True):  # longest first: no partial hits
        text = text.replace(ident, PLACEHOLDER)
    return json.loads(text)


def _without(value: Any, drop: frozenset[str]) -> Any:
    if isinstance(value, Mapping):
        return {k: _without(v, drop) for k, v in value.items() if k not in drop}
    if isinstance(value, list):
        return [_without(v, drop) for v in value]
    return value


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is problem details with ``status`` and ``code``; its body."""
    assert response.status_code == status, (response.status_code, response.text)
    media = response.headers.get("content-type", "").split(";")[0].strip()
    assert media == PROBLEM_JSON, (media, response.text)
    body: dict[str, Any] = response.json()
    missing = [f for f in PROBLEM_FIELDS if f not in body]
    assert not missing, f"problem without {missing}: {body}"
    assert body["status"] == status and body["code"] == code, body
    assert isinstance(body["type"], str) and body["type"], body
    assert isinstance(body["title"], str) and body["title"], body
    assert isinstance(body["detail"], str) and body["detail"], body
    return body


def leaked(body: str, secrets: Iterable[str]) -> list[str]:
    """The secrets ``body`` contains (case-insensitively)."""
    folded = body.casefold()
    return sorted({s for s in secrets if s and s.casefold() in folded})


def call_body(function: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """A ``function_call`` request body with one call."""
    return {"type": "function_call", "calls": [{"function": function, "arguments": arguments}]}
