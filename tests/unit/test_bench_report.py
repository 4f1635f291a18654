"""bench/REPORT.md is built from the benchmarks' JSON lines (no benchmark runs here)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.__main__ import (
    TARGETS,
    Bound,
    Result,
    build_report,
    last_json,
    load_results,
    save,
)

EVENTSTORE_OUTPUT = """PostgreSQL: embedded server; database medicalcor_bench_1
commands  c=8                    6,100/s   p50 1.10 ms   p95 3.90 ms   p99 6.00 ms
{"commands_per_s_c8": 6100.0, "command_p95_ms_c8": 7.5, "raw_inserts_per_s_c8": 9000.0, \
"ratio_to_raw": 0.678, "catchup_events_per_s": 25000.0, "commands_per_s_c1": 900.0, \
"raw_inserts_per_s_c1": 1500.0, "raw_p95_ms_c8": 1.2}
"""
INTENT_OUTPUT = """cases: 297
holdout: {"cases": 40, "function_accuracy": 0.5, "argument_accuracy": 0.5}
{"cases": 297, "function_accuracy": 0.97, "argument_accuracy": 0.85}
"""
SOAK_FIGURES = {
    "minutes": 3,
    "requests": 1080,
    "errors": 0,
    "p50_first_minute_ms": 20.0,
    "p95_first_minute_ms": 60.0,
    "p50_last_minute_ms": 21.0,
    "p95_last_minute_ms": 61.0,
    "rss_start_mb_api": 150.0,
    "rss_end_mb_api": 152.0,
    "rss_second_half_pct_api": 0.4,
    "rss_start_mb_worker": 200.0,
    "rss_end_mb_worker": 230.0,
    "rss_second_half_pct_worker": 1.5,
    "rss_start_mb_projector": 90.0,
    "rss_end_mb_projector": 90.5,
    "rss_second_half_pct_projector": 0.1,
    "memory_flat": True,
    "flat_limit_pct": 5.0,
    "effects_ok": True,
}


def result(name: str, output: str, returncode: int = 0) -> Result:
    return Result(
        name=name,
        figures=last_json(output),
        returncode=returncode,
        seconds=12.0,
        finished_at="2026-01-01 10:00:00 UTC",
        commit="abc123",
        machine={"cpus": 2, "cpu_model": "Test CPU", "memory_gib": 4.0, "load_average": 0.5},
        tail=output[-200:],
    )


def row(report: str, bench: str, figure: str) -> list[str]:
    """The cells of the targets table's row for ``figure`` of ``bench``."""
    for line in report.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 8 and cells[0] == bench and cells[1] == f"`{figure}`":
            return cells
    raise AssertionError(f"no row for {bench} {figure}")


def sample_results() -> dict[str, Result | None]:
    return {
        "eventstore": result("eventstore", EVENTSTORE_OUTPUT),
        "intent_eval": result("intent_eval", INTENT_OUTPUT),
        "soak": result("soak", json.dumps(SOAK_FIGURES)),
        "diagnostics": result("diagnostics", "Traceback ...\nBoom\n", returncode=1),
    }


def test_last_json_is_the_last_object_line() -> None:
    figures = last_json(INTENT_OUTPUT)
    assert figures == {"cases": 297, "function_accuracy": 0.97, "argument_accuracy": 0.85}
    assert last_json("no figures\n[1, 2]\n") is None


def test_targets_pass_and_fail_against_ours_and_the_original() -> None:
    report = build_report(sample_results(), generated_at="now")
    assert row(report, "eventstore", "commands_per_s_c8")[7] == "pass"
    assert row(report, "eventstore", "ratio_to_raw")[7] == "pass"
    p95 = row(report, "eventstore", "command_p95_ms_c8")
    assert (p95[3], p95[4], p95[5], p95[6], p95[7]) == (
        "7.5", "< 100 ms", "pass", "<= 5 ms", "**FAIL**"
    )  # fmt: skip
    assert row(report, "intent_eval", "function_accuracy")[7] == "pass"
    assert row(report, "intent_eval", "argument_accuracy")[7] == "**FAIL**"
    assert row(report, "soak", "memory_flat")[3:] == ["true", "–", "–", "true", "pass"]


def test_missing_and_failed_benchmarks_are_shown_as_such() -> None:
    report = build_report(sample_results(), generated_at="now")
    write = row(report, "gateway", "write_p95_ms")
    assert write[3] == "not run" and write[7] == "not run"
    assert row(report, "workflows", "booking_p50_ms")[7] == "not run"
    assert row(report, "diagnostics", "quick_p95_ms")[7] == "failed"
    assert "## diagnostics: output tail" in report and "Boom" in report
    assert "| gateway | not run |" in report  # the runs table


def test_every_target_has_a_row_and_the_header_names_the_machine() -> None:
    report = build_report({}, generated_at="2026-01-01")
    for t in TARGETS:
        assert row(report, t.bench, t.figure)[3] == "not run"
    report = build_report(sample_results(), generated_at="2026-01-01")
    assert "2 CPUs (Test CPU)" in report and "abc123" in report and "2026-01-01" in report


def test_baselines_and_soak_are_reported() -> None:
    report = build_report(sample_results(), generated_at="now")
    baseline = next(line for line in report.splitlines() if "`raw_inserts_per_s_c8`" in line)
    assert "9,000" in baseline and "6,100" in baseline and "0.678" in baseline
    assert "Memory **flat**" in report and "less than 5 %" in report
    assert "| worker | 200 | 230 | " in report


def test_results_saved_then_reloaded_give_the_same_report(tmp_path: Path) -> None:
    results = sample_results()
    for r in results.values():
        assert r is not None
        save(r, tmp_path)
    reloaded: dict[str, Result | None] = dict(load_results(tmp_path))
    assert build_report(reloaded, generated_at="x") == build_report(results, generated_at="x")


def test_bound_edges() -> None:
    assert Bound("<=", 5).holds(5) and not Bound("<", 5).holds(5)
    assert Bound(">=", 0.6).holds(0.6) and not Bound(">=", 0.6).holds(0.59)
    assert Bound("==", True).holds(True) and not Bound("==", True).holds(False)
    assert str(Bound(">=", 20000, "events/s")) == ">= 20,000 events/s"
