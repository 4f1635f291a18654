"""The labelled evaluation set and the evaluation harness itself."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from domain.intent.evaluation import EvalSuite, evaluate, load_suite

SUITE_PATH = Path(__file__).parent / "intent_cases.yaml"
NOW = datetime(2026, 5, 13, 10, 15, tzinfo=ZoneInfo("Europe/Bucharest"))
FUNCTIONS = {
    "score_lead", "get_patient", "update_patient", "schedule_appointment",
    "get_available_slots", "cancel_appointment", "send_whatsapp", "record_consent",
    "check_consent", "get_lead_analytics", "trigger_workflow", "get_workflow_status",
}  # fmt: skip


@pytest.fixture(scope="module")
def suite() -> EvalSuite:
    return load_suite(yaml.safe_load(SUITE_PATH.read_text(encoding="utf-8")))


def test_the_set_is_large_varied_and_covers_every_function(suite: EvalSuite) -> None:
    cases = suite.cases
    assert len(cases) >= 170
    assert len({c.id for c in cases + suite.holdout}) == len(cases) + len(suite.holdout)
    languages = Counter(c.lang for c in cases)
    assert languages["ro"] >= 100 and languages["en"] >= 50
    expected = Counter(call.function for c in cases for call in c.expect)
    assert set(expected) == FUNCTIONS
    assert min(expected.values()) >= 10
    assert sum(len(c.expect) >= 2 for c in cases) >= 15  # two or more requests
    assert sum(not c.expect for c in cases) >= 8  # nothing to do
    assert sum(c.query.isascii() and c.lang == "ro" for c in cases) >= 30  # no diacritics


def test_accuracy_meets_the_bar(suite: EvalSuite) -> None:
    report = evaluate(suite.cases, now=suite.now)
    details = "\n".join(f"{f.id}: {f.problems}" for f in report.failures)
    assert report.function_accuracy >= 0.95, details
    assert report.argument_accuracy >= 0.90, details


def test_evaluation_counts_wrong_functions_and_wrong_arguments() -> None:
    cases = [
        {"id": "right", "query": "Anulează programarea apt-1",
         "expect": [{"function": "cancel_appointment", "args": {"appointmentId": "apt-1"}}]},
        {"id": "wrong-function", "query": "Anulează programarea apt-1",
         "expect": [{"function": "schedule_appointment"}]},
        {"id": "wrong-argument", "query": "Anulează programarea apt-1",
         "expect": [{"function": "cancel_appointment", "args": {"appointmentId": "apt-2"}}]},
        {"id": "wrong-missing", "query": "Anulează programarea apt-1",
         "expect": [{"function": "cancel_appointment", "missing": ["appointmentId"]}]},
    ]  # fmt: skip
    report = evaluate(cases, now=NOW)
    assert report.cases == 4
    assert report.function_accuracy == 0.75
    assert report.argument_accuracy == 0.25
    assert [f.id for f in report.failures] == ["wrong-function", "wrong-argument", "wrong-missing"]
    assert "apt-2" in report.failures[1].problems[0]
    assert report.summary() == {"cases": 4, "function_accuracy": 0.75, "argument_accuracy": 0.25}


def test_dict_arguments_match_key_by_key() -> None:
    case = {
        "id": "subset",
        "query": "Actualizează emailul pacientului pat-1 la a@b.ro",
        "expect": [{"function": "update_patient",
                    "args": {"updates": {"email": "a@b.ro"}, "patientId": "pat-1"}}],
    }  # fmt: skip
    assert evaluate([case], now=NOW).argument_accuracy == 1.0
    case["expect"][0]["args"]["updates"] = {"email": "other@b.ro"}  # type: ignore[index]
    assert evaluate([case], now=NOW).argument_accuracy == 0.0
