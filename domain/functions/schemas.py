"""Every view of a gateway function, derived from its one declaration.

* ``input_schema`` / ``output_schema``: JSON Schema of the argument and result
  models (camelCase, references inlined, no titles) — MCP and Anthropic use these.
* ``strict_schema``: the same schema rewritten for OpenAI's strict mode: every
  object closed (``additionalProperties: false``) with every property required,
  optional properties nullable (``null`` means "not given"), free-form maps sent
  as JSON strings, and keywords strict mode does not accept (``default``,
  ``format``, length and range bounds ...) moved into the description.
* ``openai_tool``, ``anthropic_tool``, ``mcp_annotations``, ``function_doc``.
* ``Catalogue``: all of them for a registry, computed once.
* ``describe_at``: what a field expects, in words, for validation errors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from domain.functions.registry import FunctionSpec, Registry

STRICT_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "anyOf",
        "description",
    }
)
"""Keywords the OpenAI strict view keeps; every other one is explained in the description."""

_FORMATS = {
    "date": "a date, YYYY-MM-DD",
    "date-time": "an ISO 8601 date-time with offset, e.g. 2025-03-14T10:30:00+02:00",
    "time": "a time of day, HH:MM",
    "email": "an e-mail address",
}
_TYPES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}


# --- JSON Schema -----------------------------------------------------------------------


@cache
def model_schema(model: type[BaseModel], mode: str = "validation") -> dict[str, Any]:
    """The model's JSON Schema by alias, ``$ref`` inlined and titles dropped (cached)."""
    return inline_refs(model.model_json_schema(by_alias=True, mode=mode))  # type: ignore[arg-type]


def inline_refs(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON Schema with its ``$defs`` references replaced by their targets, no titles."""
    raw = dict(schema)
    defs = raw.pop("$defs", {})
    inlined: dict[str, Any] = _clean(_inline(raw, defs))
    return inlined


def input_schema(spec: FunctionSpec) -> dict[str, Any]:
    return model_schema(spec.arguments, "validation")


def output_schema(spec: FunctionSpec) -> dict[str, Any]:
    return model_schema(spec.result, "serialization")


def _inline(node: Any, defs: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target = defs[node["$ref"].rsplit("/", 1)[-1]]
            merged = {**_inline(target, defs), **{k: v for k, v in node.items() if k != "$ref"}}
            return _inline(merged, defs)
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def _clean(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "title" and isinstance(value, str):
                continue
            out[key] = value if key in ("default", "examples", "enum", "const") else _clean(value)
        return out
    if isinstance(node, list):
        return [_clean(v) for v in node]
    return node


# --- OpenAI strict mode ----------------------------------------------------------------


def strict_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` (an inlined object schema) in the subset OpenAI's strict mode accepts."""
    return _strict(schema, required=True)


def _strict(node: Mapping[str, Any], *, required: bool) -> dict[str, Any]:
    notes = _notes(node)
    if _is_free_form(node):
        out: dict[str, Any] = {"type": "string"}
        notes.append('A JSON object, written as a JSON string (e.g. \'{"key": "value"}\').')
    elif "anyOf" in node:
        options = [_strict(o, required=True) for o in node["anyOf"]]
        out = {"anyOf": _dedupe(options)}
    else:
        out = {k: v for k, v in node.items() if k in STRICT_KEYWORDS - {"description"}}
        if node.get("type") == "object":
            props = node.get("properties", {})
            needed = set(node.get("required", ()))
            out["properties"] = {k: _strict(v, required=k in needed) for k, v in props.items()}
            out["required"] = list(props)
            out["additionalProperties"] = False
        if "items" in node:
            out["items"] = _strict(node["items"], required=True)
    description = " ".join([node.get("description", ""), *notes]).strip()
    if not required:
        out = _nullable(out)
    if description:
        out["description"] = description
    return out


def _is_free_form(node: Mapping[str, Any]) -> bool:
    return node.get("type") == "object" and not node.get("properties")


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    if "anyOf" in node:
        if {"type": "null"} not in node["anyOf"]:
            node["anyOf"] = [*node["anyOf"], {"type": "null"}]
        return node
    return {"anyOf": [node, {"type": "null"}]}


def _dedupe(options: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    for option in options:
        if option not in seen:
            seen.append(option)
    return seen


def _notes(node: Mapping[str, Any]) -> list[str]:
    """Sentences for the constraints strict mode cannot express as keywords."""
    notes = []
    if "format" in node:
        notes.append(f"Format: {_FORMATS.get(node['format'], node['format'])}.")
    if node.get("minLength") == 1:
        notes.append("Not empty.")
    elif "minLength" in node:
        notes.append(f"At least {node['minLength']} characters.")
    bounds = [
        ("maxLength", "At most {} characters."),
        ("minItems", "At least {} items."),
        ("maxItems", "At most {} items."),
        ("minimum", "Minimum {}."),
        ("maximum", "Maximum {}."),
        ("exclusiveMinimum", "Greater than {}."),
        ("exclusiveMaximum", "Less than {}."),
        ("pattern", "Must match the pattern {}."),
    ]
    notes += [text.format(node[key]) for key, text in bounds if key in node]
    if "default" in node and node["default"] not in (None, [], {}):
        notes.append(f"Default: {json.dumps(node['default'], ensure_ascii=False)}.")
    return notes


# --- tool formats ----------------------------------------------------------------------


def openai_tool(spec: FunctionSpec) -> dict[str, Any]:
    """The function as an OpenAI tool (Chat Completions shape), strict mode on."""
    return {
        "type": "function",
        "function": {
            "name": spec.name,
            "description": spec.description,
            "parameters": strict_schema(input_schema(spec)),
            "strict": True,
        },
    }


def anthropic_tool(spec: FunctionSpec) -> dict[str, Any]:
    """The function as an Anthropic tool: ``name``, ``description``, ``input_schema``."""
    return {"name": spec.name, "description": spec.description, "input_schema": input_schema(spec)}


def mcp_annotations(spec: FunctionSpec) -> dict[str, Any]:
    """MCP tool annotations (hints), by their wire names."""
    return {
        "title": _title(spec.name),
        "readOnlyHint": spec.read_only,
        "destructiveHint": spec.destructive,
        "idempotentHint": spec.idempotent,
        "openWorldHint": spec.open_world,
    }


def function_doc(spec: FunctionSpec) -> dict[str, Any]:
    """Everything ``/ai/functions/{name}`` tells about a function."""
    return {
        "name": spec.name,
        "title": _title(spec.name),
        "category": spec.category,
        "summary": spec.summary,
        "description": spec.description,
        "scopes": sorted(spec.scopes),
        "sideEffect": spec.side_effect,
        "annotations": mcp_annotations(spec),
        "parameters": input_schema(spec),
        "returns": output_schema(spec),
        "examples": [
            {"description": e.description, "arguments": e.arguments} for e in spec.examples
        ],
    }


def _title(name: str) -> str:
    return name.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Catalogue:
    """Every derived view of a registry, computed once (the HTTP and MCP surfaces serve these)."""

    docs: dict[str, dict[str, Any]]
    openai: dict[str, dict[str, Any]]
    anthropic: dict[str, dict[str, Any]]
    categories: dict[str, list[str]]

    @classmethod
    def build(cls, registry: Registry) -> Catalogue:
        categories: dict[str, list[str]] = {c: [] for c in registry.categories()}
        for spec in registry:
            categories[spec.category].append(spec.name)
        return cls(
            docs={s.name: function_doc(s) for s in registry},
            openai={s.name: openai_tool(s) for s in registry},
            anthropic={s.name: anthropic_tool(s) for s in registry},
            categories=categories,
        )


# --- expectations in words -------------------------------------------------------------


def describe(node: Mapping[str, Any]) -> str:
    """What a schema node accepts, in a short phrase (with its description's first sentence)."""
    text = _describe_kind(node)
    hint = _first_sentence(node.get("description", ""))
    return f"{text} ({hint})" if hint and hint not in text else text


def _describe_kind(node: Mapping[str, Any]) -> str:
    if "anyOf" in node:
        options = [describe(o) for o in node["anyOf"] if o.get("type") != "null"]
        return " or ".join(dict.fromkeys(options))
    if "enum" in node:
        return "one of: " + ", ".join(str(v) for v in node["enum"])
    if "const" in node:
        return f"exactly {node['const']!r}"
    kind = node.get("type")
    if kind == "string":
        return _describe_string(node)
    if kind in ("integer", "number"):
        return _describe_number(node)
    if kind == "array":
        limit = f" (at most {node['maxItems']})" if "maxItems" in node else ""
        return f"a list of {describe(node.get('items', {}))}{limit}"
    if kind == "object" and node.get("properties"):
        return "an object with: " + ", ".join(node["properties"])
    return _TYPES.get(str(kind), "a value")


def _describe_string(node: Mapping[str, Any]) -> str:
    text = _FORMATS.get(node.get("format", ""), "a string")
    if "maxLength" in node:
        text += f" of at most {node['maxLength']} characters"
    return text


def _describe_number(node: Mapping[str, Any]) -> str:
    text = _TYPES[node["type"]]
    low, high = node.get("minimum"), node.get("maximum")
    if low is not None and high is not None:
        return f"{text} from {low} to {high}"
    if low is not None:
        return f"{text} ≥ {low}"
    if high is not None:
        return f"{text} ≤ {high}"
    return text


def _first_sentence(text: str, limit: int = 120) -> str:
    sentence = text.split(". ", 1)[0].strip().rstrip(".")
    return sentence if len(sentence) <= limit else ""


def describe_at(model: type[BaseModel], loc: Sequence[int | str], error: Mapping[str, Any]) -> str:
    """What the argument at ``loc`` of ``model`` expects (for an error on it)."""
    names = str(error.get("ctx", {}).get("names", "")).replace("|", ", ")
    if error["type"] == "one_of_missing":
        return f"at least one of {names}"
    if error["type"] == "at_most_one":
        return f"only one of {names}"
    parent: Mapping[str, Any] | None = None
    node: Mapping[str, Any] | None = model_schema(model)
    for part in loc:
        assert node is not None
        parent, node = node, _child(node, part)
        if node is None:
            break
    if error["type"] == "extra_forbidden" and parent is not None:
        return "only the known arguments: " + ", ".join(_object_of(parent).get("properties", {}))
    return describe(node) if node is not None else str(error.get("msg", "a valid value"))


def _child(node: Mapping[str, Any], part: int | str) -> Mapping[str, Any] | None:
    node = _object_of(node) if isinstance(part, str) else _array_of(node)
    if isinstance(part, int):
        return node.get("items")
    return node.get("properties", {}).get(part)


def _object_of(node: Mapping[str, Any]) -> Mapping[str, Any]:
    for option in node.get("anyOf", ()):
        if option.get("type") == "object":
            return option
    return node


def _array_of(node: Mapping[str, Any]) -> Mapping[str, Any]:
    for option in node.get("anyOf", ()):
        if option.get("type") == "array":
            return option
    return node
