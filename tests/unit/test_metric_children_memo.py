"""The record_* functions memoise labelled children: same counts, same guard, bounded."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from adapters.telemetry import metrics as m
from adapters.telemetry.labels import OTHER
from adapters.telemetry.redaction import redact_value


@pytest.fixture
def private(monkeypatch: pytest.MonkeyPatch) -> m.Metrics:
    metrics = m.Metrics(CollectorRegistry())
    monkeypatch.setattr(m, "_default", metrics)
    return metrics


def test_memoised_children_count_like_labels(private: m.Metrics) -> None:
    for _ in range(3):
        m.record_command("UpdatePatient", "success", 0.001)
    counts = [
        s.value
        for f in private.registry.collect()
        for s in f.samples
        if s.name.startswith("medicalcor_commands") and s.name.endswith("_total")
        and "UpdatePatient" in s.labels.values()
    ]  # fmt: skip
    assert counts == [3.0]
    assert len(private.children) == 1  # one memo entry, reused twice


def test_the_memo_keeps_the_label_guard_and_stays_bounded(
    private: m.Metrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(m, "CHILDREN_MEMO_MAX", 5)
    m.record_ai_call("drop table;", "success", 0.01)  # unsafe: the guard's "other"
    samples = [s for f in private.registry.collect() for s in f.samples if s.value]
    assert any(s.labels.get("function") == OTHER for s in samples)
    for i in range(20):
        m.record_ai_call(f"fn_{i}", "success", 0.01)
        assert 1 <= len(private.children) <= 5


def test_remembered_statement_masking_still_masks() -> None:
    statement = "SELECT * FROM leads WHERE phone = '+40721234567'"
    for _ in range(2):  # the second answer comes from the memo
        masked = redact_value("db.statement", statement)
        assert "40721234567" not in masked
