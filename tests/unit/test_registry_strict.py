"""Every derived tool format is valid: OpenAI strict mode, Anthropic, MCP annotations.

The strict-mode rules are checked by a validator written here, independently of the
derivation in ``domain.functions.schemas``: it walks each schema recursively.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest

from domain.functions import REGISTRY
from domain.functions.schemas import (
    Catalogue,
    anthropic_tool,
    input_schema,
    mcp_annotations,
    openai_tool,
)

# OpenAI structured outputs / strict function calling: the supported subset.
SUPPORTED = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "anyOf",
    "description",
    "$ref",
    "$defs",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
}
TYPES = {"string", "number", "integer", "boolean", "object", "array", "null"}
MAX_DEPTH = 10
NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def strict_violations(schema: Any, path: str = "$", depth: int = 0) -> list[str]:
    """Every way ``schema`` breaks OpenAI's strict mode (empty: it is valid)."""
    if not isinstance(schema, dict):
        return [f"{path}: a schema must be an object"]
    problems = [f"{path}: unsupported keyword {k!r}" for k in schema if k not in SUPPORTED]
    if depth > MAX_DEPTH:
        problems.append(f"{path}: nested deeper than {MAX_DEPTH}")
    if depth == 0 and (schema.get("type") != "object" or "anyOf" in schema):
        problems.append(f"{path}: the root must be an object, not anyOf")
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds] if kinds else []
    problems += [f"{path}: unknown type {k!r}" for k in kinds if k not in TYPES]
    if "type" not in schema and "anyOf" not in schema and "$ref" not in schema:
        problems.append(f"{path}: no type")
    if "object" in kinds:
        problems += _object_violations(schema, path, depth)
    if "array" in kinds:
        if "items" not in schema:
            problems.append(f"{path}: an array needs items")
        else:
            problems += strict_violations(schema["items"], f"{path}[]", depth + 1)
    if "enum" in schema and None in schema["enum"] and "null" not in kinds:
        problems.append(f"{path}: enum holds null but the type does not")
    for i, option in enumerate(schema.get("anyOf", ())):
        problems += strict_violations(option, f"{path}.anyOf[{i}]", depth + 1)
    return problems


def _object_violations(schema: dict[str, Any], path: str, depth: int) -> list[str]:
    problems = []
    if schema.get("additionalProperties") is not False:
        problems.append(f"{path}: additionalProperties must be false")
    props = schema.get("properties")
    if not isinstance(props, dict):
        return [*problems, f"{path}: an object needs properties"]
    if sorted(schema.get("required", [])) != sorted(props):
        problems.append(f"{path}: every property must be required")
    for name, sub in props.items():
        problems += strict_violations(sub, f"{path}.{name}", depth + 1)
    return problems


def accepts_null(schema: dict[str, Any]) -> bool:
    kinds = schema.get("type")
    if kinds == "null" or (isinstance(kinds, list) and "null" in kinds):
        return True
    return any(accepts_null(o) for o in schema.get("anyOf", ()))


# --- the validator itself can fail ------------------------------------------------------


def test_the_validator_rejects_what_strict_mode_rejects():
    bad = {
        "type": "object",
        "properties": {
            "a": {"type": "string", "format": "date", "default": "x"},
            "b": {"type": "object", "properties": {"c": {"type": "integer"}}},
            "d": {"type": "array"},
            "e": {"type": "string", "maxLength": 3},
        },
        "required": ["a"],
    }
    problems = strict_violations(bad)
    assert any("'format'" in p for p in problems)
    assert any("'default'" in p for p in problems)
    assert any("'maxLength'" in p for p in problems)
    assert any(p.startswith("$:") and "required" in p for p in problems)
    assert any(p.startswith("$:") and "additionalProperties" in p for p in problems)
    assert any(p.startswith("$.b:") and "additionalProperties" in p for p in problems)
    assert any(p.startswith("$.d:") and "items" in p for p in problems)
    assert strict_violations({"anyOf": [{"type": "object"}]})  # root anyOf


# --- OpenAI --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", REGISTRY.names())
def test_openai_tool_is_valid_under_strict_mode(name: str):
    tool = openai_tool(REGISTRY.get(name))
    function = tool["function"]
    assert tool["type"] == "function" and function["strict"] is True
    assert NAME.match(function["name"]) and function["description"]
    assert strict_violations(function["parameters"]) == []


@pytest.mark.parametrize("name", REGISTRY.names())
def test_optional_arguments_are_nullable_and_required_ones_are_not(name: str):
    spec = REGISTRY.get(name)
    canonical = input_schema(spec)
    strict = openai_tool(spec)["function"]["parameters"]
    required = set(canonical.get("required", []))
    for prop, sub in strict["properties"].items():
        assert accepts_null(sub) == (prop not in required), prop


@pytest.mark.parametrize("name", REGISTRY.names())
def test_examples_sent_the_strict_way_validate_to_the_same_arguments(name: str):
    spec = REGISTRY.get(name)
    strict = openai_tool(spec)["function"]["parameters"]
    for example in spec.examples:
        sent = as_strict(example.arguments, strict)
        jsonschema.validate(sent, strict)
        assert spec.validate(sent) == spec.validate(example.arguments)


def as_strict(value: Any, schema: dict[str, Any]) -> Any:
    """``value`` as a strict-mode model emits it: every property, null when absent."""
    objects = [s for s in [schema, *schema.get("anyOf", ())] if s.get("properties")]
    if isinstance(value, dict) and objects:
        props = objects[0]["properties"]
        return {k: as_strict(value[k], props[k]) if k in value else None for k in props}
    if isinstance(value, dict):  # a free-form map travels as a JSON string
        return json.dumps(value)
    arrays = [s for s in [schema, *schema.get("anyOf", ())] if "items" in s]
    if isinstance(value, list) and arrays:
        return [as_strict(v, arrays[0]["items"]) for v in value]
    return value


def test_descriptions_keep_what_strict_mode_cannot_say():
    props = openai_tool(REGISTRY.get("schedule_appointment"))["function"]["parameters"][
        "properties"
    ]
    assert "YYYY-MM-DD" in props["preferredDate"]["description"]
    assert 'Default: "any"' in props["preferredTimeSlot"]["description"]
    duration = json.dumps(props["duration"])
    assert "Minimum 15" in duration and "Maximum 180" in duration


# --- Anthropic and MCP -----------------------------------------------------------------------


@pytest.mark.parametrize("name", REGISTRY.names())
def test_anthropic_tool_shape_and_examples(name: str):
    spec = REGISTRY.get(name)
    tool = anthropic_tool(spec)
    assert set(tool) == {"name", "description", "input_schema"}
    assert tool["input_schema"]["type"] == "object"
    assert "$ref" not in json.dumps(tool["input_schema"])
    jsonschema.Draft202012Validator.check_schema(tool["input_schema"])
    for example in spec.examples:
        jsonschema.validate(example.arguments, tool["input_schema"])


def test_mcp_annotations_follow_the_side_effect_class():
    hints = {s.name: mcp_annotations(s) for s in REGISTRY}
    reads = [n for n, h in hints.items() if h["readOnlyHint"]]
    assert reads == [s.name for s in REGISTRY if s.side_effect == "read"]
    assert [n for n, h in hints.items() if h["destructiveHint"]] == ["cancel_appointment"]
    assert hints["send_whatsapp"]["openWorldHint"] is True
    assert hints["schedule_appointment"]["openWorldHint"] is True
    assert hints["get_patient"]["openWorldHint"] is False
    assert hints["update_patient"]["idempotentHint"] is True
    assert hints["send_whatsapp"]["idempotentHint"] is False
    assert all(h["idempotentHint"] for n, h in hints.items() if n in reads)


def test_the_catalogue_holds_every_view_once():
    catalogue = Catalogue.build(REGISTRY)
    names = REGISTRY.names()
    assert list(catalogue.openai) == list(catalogue.anthropic) == list(catalogue.docs) == names
    assert sum(len(v) for v in catalogue.categories.values()) == 12
    doc = catalogue.docs["get_patient"]
    assert doc["scopes"] == ["read"] and doc["sideEffect"] == "read"
    assert doc["parameters"] == input_schema(REGISTRY.get("get_patient"))
