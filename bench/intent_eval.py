"""Intent-detection accuracy on the labelled evaluation set.

Usage: ``python bench/intent_eval.py [path/to/cases.yaml] [--failures]``.
Prints the figures for the tuned cases and for the held-out ones (never tuned
against, an estimate on unseen phrasings), optionally every failing case, and
finally one line of JSON for the tuned cases:
``{"cases": N, "function_accuracy": ..., "argument_accuracy": ...}``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from domain.intent.evaluation import EvalReport

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CASES = ROOT / "tests" / "unit" / "intent_cases.yaml"


def run(path: Path) -> tuple[EvalReport, EvalReport, float]:
    """Evaluate the suite at ``path``.

    Returns the report on the cases, the report on the held-out cases and the
    mean milliseconds per case.
    """
    from domain.intent.evaluation import evaluate, load_suite

    suite = load_suite(yaml.safe_load(path.read_text(encoding="utf-8")))
    started = time.perf_counter()
    report = evaluate(suite.cases, now=suite.now)
    elapsed_ms = (time.perf_counter() - started) * 1000
    holdout = evaluate(suite.holdout, now=suite.now)
    return report, holdout, elapsed_ms / max(report.cases, 1)


def _print_report(title: str, report: EvalReport, failures: bool) -> None:
    print(f"{title}: {report.cases}")
    print(f"  function accuracy: {report.function_accuracy:.2%}")
    print(f"  argument accuracy: {report.argument_accuracy:.2%}")
    print(f"  language accuracy: {report.language_accuracy:.2%}")
    print(f"  failing cases:     {len(report.failures)}")
    if failures:
        for failure in report.failures:
            print(f"  - {failure.id}: {failure.query}")
            for problem in failure.problems:
                print(f"      {problem}")


def main(argv: list[str]) -> int:
    """Print the accuracy figures; the last line is the JSON summary."""
    if str(ROOT) not in sys.path:  # run as a script from anywhere
        sys.path.insert(0, str(ROOT))
    paths = [a for a in argv if not a.startswith("--")]
    report, holdout, ms_per_case = run(Path(paths[0]) if paths else DEFAULT_CASES)
    _print_report("cases", report, "--failures" in argv)
    print(f"mean time:         {ms_per_case:.2f} ms per query")
    if holdout.cases:
        _print_report("held-out cases (never tuned against)", holdout, "--failures" in argv)
    if holdout.cases:
        print("holdout:", json.dumps(holdout.summary()))
    print(json.dumps(report.summary()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
