"""The app's OpenAPI document describes the error answers the app really gives."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.settings import Settings
from api.app import create_app
from api.errors import PROBLEM_JSON


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    spec: dict[str, Any] = create_app(Settings()).openapi()
    return spec


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(p, m, op) for p, ops in doc["paths"].items() for m, op in ops.items()]


def test_every_error_response_is_problem_json(doc: dict[str, Any]) -> None:
    for path, method, op in operations(doc):
        for status, response in op["responses"].items():
            if status[0] in "45":
                content = response.get("content", {})
                assert list(content) == [PROBLEM_JSON], (method, path, status)
                assert content[PROBLEM_JSON]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert {"type", "title", "status", "detail", "code"} <= set(
        doc["components"]["schemas"]["Problem"]["required"]
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/ai/execute"),
        ("get", "/ai/functions"),
        ("post", "/ai/keys"),
        ("delete", "/ai/keys/{key_id}"),
        ("get", "/sandbox/whatsapp/messages"),
        ("post", "/admin/patients/{patientId}/erase"),
        ("get", "/diagnostics"),
        ("get", "/diagnostics/traces/{trace_id}"),
    ],
)
def test_authenticated_operations_document_401_403_429_503(
    doc: dict[str, Any], method: str, path: str
) -> None:
    assert {"401", "403", "429", "503"} <= set(doc["paths"][path][method]["responses"])


@pytest.mark.parametrize(("method", "path"), [("get", "/livez"), ("get", "/diagnostics/quick")])
def test_open_operations_do_not_claim_a_key(doc: dict[str, Any], method: str, path: str) -> None:
    assert "401" not in doc["paths"][path][method]["responses"]


def test_webhooks_and_codec_document_their_refusals(doc: dict[str, Any]) -> None:
    webhook = doc["paths"]["/webhooks/whatsapp/{clinic_id}"]
    assert {"400", "401", "413", "503"} <= set(webhook["post"]["responses"])
    assert {"403", "404"} <= set(webhook["get"]["responses"])
    assert {"400", "401", "403"} <= set(doc["paths"]["/codec/decode"]["post"]["responses"])
