"""Measuring intent detection against a labelled set of queries.

A case lists the calls a query should produce, in order, each with the key
arguments that must match exactly (a subset of what the detector returns; a
dict value is compared key by key) and optionally the exact set of missing
required arguments. Function accuracy counts cases whose ordered function list
is right; argument accuracy counts cases that are right in functions *and* in
every expected argument.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from domain.intent.detector import detect_intents
from domain.intent.models import DetectedCall, FunctionName, IntentContext, IntentResult


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExpectedCall(_Model):
    """A call a case expects, with the arguments that matter."""

    function: FunctionName
    args: dict[str, Any] = Field(default_factory=dict)
    missing: list[str] | None = None


class EvalCase(_Model):
    """One labelled query."""

    id: str
    query: str
    lang: str | None = None
    context: IntentContext | None = None
    expect: list[ExpectedCall]


class EvalSuite(_Model):
    """Cases sharing one reference instant, so relative dates are fixed.

    ``holdout`` cases are never tuned against; they estimate accuracy on
    phrasings the detector was not fitted to.
    """

    now: datetime
    cases: list[EvalCase]
    holdout: list[EvalCase] = Field(default_factory=list)


class CaseFailure(_Model):
    """A case the detector got wrong, and how."""

    id: str
    query: str
    expected: list[str]
    got: list[str]
    problems: list[str]


class EvalReport(_Model):
    """Accuracy figures over a set of cases."""

    cases: int
    function_accuracy: float
    argument_accuracy: float
    language_accuracy: float
    failures: list[CaseFailure]

    def summary(self) -> dict[str, float | int]:
        """The headline numbers as a small JSON-able dict."""
        return {
            "cases": self.cases,
            "function_accuracy": self.function_accuracy,
            "argument_accuracy": self.argument_accuracy,
        }


def load_suite(data: Mapping[str, Any]) -> EvalSuite:
    """Validate an already-parsed suite (``{now, cases: [...]}``, e.g. from YAML)."""
    return EvalSuite.model_validate(data)


def evaluate(
    cases: Iterable[EvalCase | Mapping[str, Any]], *, now: datetime, threshold: float = 0.5
) -> EvalReport:
    """Run the detector over ``cases`` at the instant ``now`` and score it."""
    checked = [c if isinstance(c, EvalCase) else EvalCase.model_validate(c) for c in cases]
    functions_right = arguments_right = language_right = language_total = 0
    failures = []
    for case in checked:
        result = detect_intents(case.query, now=now, context=case.context, threshold=threshold)
        problems = _function_problems(case, result)
        functions_right += not problems
        if not problems:
            problems = _argument_problems(case, result.calls)
            arguments_right += not problems
        if case.lang is not None:
            language_total += 1
            language_right += result.language == case.lang
        if problems:
            failures.append(
                CaseFailure(
                    id=case.id,
                    query=case.query,
                    expected=[e.function for e in case.expect],
                    got=result.functions,
                    problems=problems,
                )
            )
    total = len(checked)
    return EvalReport(
        cases=total,
        function_accuracy=_ratio(functions_right, total),
        argument_accuracy=_ratio(arguments_right, total),
        language_accuracy=_ratio(language_right, language_total),
        failures=failures,
    )


def _ratio(right: int, total: int) -> float:
    return round(right / total, 4) if total else 0.0


def _function_problems(case: EvalCase, result: IntentResult) -> list[str]:
    expected = [e.function for e in case.expect]
    if result.functions == expected:
        return []
    return [f"functions: expected {expected}, got {result.functions}"]


def _argument_problems(case: EvalCase, calls: list[DetectedCall]) -> list[str]:
    problems = []
    for index, (expected, call) in enumerate(zip(case.expect, calls, strict=True)):
        for name, value in expected.args.items():
            got = call.arguments.get(name)
            if not _matches(value, got):
                problems.append(f"call {index} {name}: expected {value!r}, got {got!r}")
        if expected.missing is not None and set(expected.missing) != set(call.missing):
            wanted = expected.missing
            problems.append(f"call {index} missing: expected {wanted}, got {call.missing}")
    return problems


def _matches(expected: Any, got: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(got, dict) and all(_matches(v, got.get(k)) for k, v in expected.items())
    return bool(expected == got)
