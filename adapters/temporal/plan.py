"""AI plans: DAG validation and argument references (pure, deterministic).

A plan is a list of steps ``{stepId, function, arguments, dependsOn}``. A step runs
once every step in ``dependsOn`` has completed; steps without a path between them
run concurrently.

Reference syntax: an argument value (at any depth of ``arguments``) that is exactly
an object ``{"$ref": "steps.<stepId>.result[.<key>|.<index>]*"}`` is replaced, just
before the step runs, by that value of an earlier step's result. Keys are object
keys; a segment of digits indexes a list. Examples::

    {"$ref": "steps.s1.result"}                       the whole result of s1
    {"$ref": "steps.s1.result.appointmentId"}         one field
    {"$ref": "steps.lookup.result.patients.0.phone"}  a list element's field

The referenced step must be an ancestor (``dependsOn``, directly or transitively)
of the step that references it. A reference that does not resolve at run time
fails the step with ``INVALID_ARGUMENTS`` naming the path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from domain.errors import InvalidArguments

REF_KEY = "$ref"
MAX_STEPS = 200
_REF = re.compile(r"^steps\.([A-Za-z0-9_\-]+)\.result((?:\.[^.]+)*)$")


class StepLike:
    """What validation needs from a step (``PlanStep`` and dicts both fit via ``as_step``)."""

    def __init__(self, step_id: str, depends_on: Sequence[str], arguments: Any) -> None:
        self.step_id, self.depends_on, self.arguments = step_id, list(depends_on), arguments


def iter_refs(value: Any, path: str = "arguments") -> Iterator[tuple[str, str]]:
    """Every ``(json path, reference)`` inside an arguments value."""
    if isinstance(value, dict):
        if set(value) == {REF_KEY} and isinstance(value[REF_KEY], str):
            yield path, value[REF_KEY]
            return
        for key, item in value.items():
            yield from iter_refs(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from iter_refs(item, f"{path}[{index}]")


def parse_ref(ref: str) -> tuple[str, list[str]]:
    """``(step id, path segments)`` of a reference; ``ValueError`` when malformed."""
    match = _REF.match(ref)
    if match is None:
        raise ValueError(f"malformed reference {ref!r}: expected steps.<stepId>.result[.<key>]*")
    segments = [s for s in match.group(2).split(".") if s]
    return match.group(1), segments


def validate_plan(steps: Sequence[StepLike]) -> list[str]:
    """Check ids, dependencies, cycles and references; return a topological order.

    Raises ``InvalidArguments`` listing every problem with its JSON path.
    """
    errors: list[dict[str, str]] = []
    if not steps:
        errors.append(_error("steps", "a plan needs at least one step", "1 or more steps"))
    if len(steps) > MAX_STEPS:
        errors.append(_error("steps", f"more than {MAX_STEPS} steps", f"at most {MAX_STEPS}"))
    ids = [s.step_id for s in steps]
    for index, step_id in enumerate(ids):
        if ids.index(step_id) != index:
            errors.append(_error(f"steps[{index}].stepId", "duplicate step id", "unique ids"))
    known = set(ids)
    for index, step in enumerate(steps):
        for dep in step.depends_on:
            if dep not in known:
                errors.append(
                    _error(
                        f"steps[{index}].dependsOn", f"unknown step {dep!r}", "an existing stepId"
                    )
                )
            elif dep == step.step_id:
                errors.append(
                    _error(f"steps[{index}].dependsOn", "depends on itself", "other steps")
                )
    order = _topological(steps) if not errors else []
    if not errors and len(order) != len(steps):
        cyclic = sorted(known - set(order))
        errors.append(_error("steps", f"dependency cycle among {cyclic}", "an acyclic graph"))
    if not errors:
        errors += _reference_errors(steps)
    if errors:
        raise InvalidArguments(
            "invalid plan: " + "; ".join(e["message"] for e in errors), errors=errors
        )
    return order


def _topological(steps: Sequence[StepLike]) -> list[str]:
    remaining = {s.step_id: set(s.depends_on) for s in steps}
    order: list[str] = []
    while True:
        ready = [sid for sid, deps in remaining.items() if not deps]
        if not ready:
            return order
        for sid in ready:
            order.append(sid)
            del remaining[sid]
        for deps in remaining.values():
            deps.difference_update(ready)


def ancestors(steps: Sequence[StepLike], step_id: str) -> set[str]:
    """Every step ``step_id`` depends on, directly or transitively."""
    by_id = {s.step_id: s for s in steps}
    seen: set[str] = set()
    stack = list(by_id[step_id].depends_on)
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(by_id[current].depends_on)
    return seen


def _reference_errors(steps: Sequence[StepLike]) -> list[dict[str, str]]:
    errors = []
    for index, step in enumerate(steps):
        before = ancestors(steps, step.step_id)
        for path, ref in iter_refs(step.arguments):
            where = f"steps[{index}].{path}"
            try:
                target, _ = parse_ref(ref)
            except ValueError as exc:
                errors.append(_error(where, str(exc), "steps.<stepId>.result.<path>"))
                continue
            if target not in before:
                errors.append(
                    _error(
                        where, f"references {target!r}, which is not in dependsOn", "an ancestor"
                    )
                )
    return errors


def resolve_refs(value: Any, results: dict[str, Any], path: str = "arguments") -> Any:
    """``value`` with every reference replaced by the referenced result's value.

    Raises ``InvalidArguments`` (path, reference) when a reference does not resolve.
    """
    if isinstance(value, dict):
        if set(value) == {REF_KEY} and isinstance(value[REF_KEY], str):
            return lookup(value[REF_KEY], results, path)
        return {k: resolve_refs(v, results, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_refs(v, results, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def lookup(ref: str, results: dict[str, Any], path: str = "arguments") -> Any:
    """The value a reference points at in ``results`` (step id → result)."""
    step_id, segments = parse_ref(ref)
    if step_id not in results:
        raise _unresolved(path, ref, f"step {step_id!r} has no result")
    current = results[step_id]
    for segment in segments:
        if isinstance(current, dict) and segment in current:
            current = current[segment]
        elif isinstance(current, list) and segment.isdigit() and int(segment) < len(current):
            current = current[int(segment)]
        else:
            raise _unresolved(path, ref, f"no {segment!r} in the result")
    return current


def _unresolved(path: str, ref: str, why: str) -> InvalidArguments:
    return InvalidArguments(
        f"reference {ref!r} did not resolve: {why}",
        errors=[_error(path, f"{ref} did not resolve: {why}", "a value present in that result")],
    )


def _error(path: str, message: str, expected: str) -> dict[str, str]:
    return {"path": path, "message": message, "expected": expected}
