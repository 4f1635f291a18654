"""`make bench`: run every benchmark, save each one's figures, write bench/REPORT.md.

Each benchmark prints its figures and, as its last line, one JSON object; each measures
its own same-run baseline (raw asyncpg INSERTs, a trivial workflow, ``GET /livez``), so
figures are comparable on a noisy machine.

Usage::

    python -m bench [--quick] [name ...]   # run (all by default), save, write the report
    python -m bench --report-only          # rewrite REPORT.md from the saved results

``--quick`` (or ``BENCH_QUICK=1``) runs each benchmark with its shortest settings: a
check that everything runs, not figures to compare with the targets.

Every benchmark's output goes to ``bench/results/<name>.log`` and its result (figures,
exit status, time, commit, machine) to ``bench/results/<name>.json``; the report is
rewritten after each benchmark, so an interrupted run still leaves one. A benchmark runs
in a session of its own with its output on pipes read by threads; once it has exited
(or timed out) whatever it left running in its process group (servers) is stopped, so
the runner can never wait forever on a pipe a leftover child still holds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
REPORT = HERE / "REPORT.md"
BENCHES = ["eventstore", "gateway", "diagnostics", "workflows", "intent_eval", "system", "soak"]

FULL_ARGS: dict[str, list[str]] = {"soak": ["--minutes", "10"]}
"""Arguments of `make bench`'s runs. The soak measures once the worker's workflow cache
is full (its warm-up waits for it) and needs ~10 minutes to judge memory: the worker's
RSS saw-tooths over ~100 s (evicted workflows freed by full garbage collections) and
the API's span buffer (2,000 traces) fills in ~5 minutes."""
QUICK_ARGS: dict[str, list[str]] = {
    "eventstore": ["--quick"],
    "gateway": ["--requests", "400", "--patients", "200"],
    "diagnostics": ["--requests", "300"],
    "workflows": ["--quick"],
    "system": ["--seconds", "10", "--warmup", "3", "--patients", "50"],
    # quick: the harness runs, no memory verdict (the cache would take ~100 s to fill)
    "soak": ["--minutes", "1", "--warmup", "10", "--fill-timeout", "0", "--patients", "50",
             "--sample-every", "5"],
}  # fmt: skip
TIMEOUT_S = 3600.0
QUICK_TIMEOUT_S = 600.0

Op = Literal["<", "<=", ">=", "=="]


@dataclass(frozen=True)
class Bound:
    """``value op limit`` passes (``==`` compares exactly, for booleans)."""

    op: Op
    limit: float | bool
    unit: str = ""

    def holds(self, value: float | bool) -> bool:
        if self.op == "==":
            return value == self.limit
        if isinstance(self.limit, bool):
            return False
        return {
            "<": value < self.limit,
            "<=": value <= self.limit,
            ">=": value >= self.limit,
        }[self.op]

    def __str__(self) -> str:
        if isinstance(self.limit, bool):
            return str(self.limit).lower()
        limit = f"{self.limit:,g}" if self.limit >= 1000 else f"{self.limit:g}"
        return f"{self.op} {limit}{' ' + self.unit if self.unit else ''}"


@dataclass(frozen=True)
class Target:
    bench: str
    figure: str
    meaning: str
    original: Bound | None  # the original design's (docs: quantum-leap-v2.md)
    ours: Bound


TARGETS: list[Target] = [
    Target("eventstore", "commands_per_s_c8", "commands/s through the bus, concurrency 8",
           None, Bound(">=", 5000, "/s")),
    Target("eventstore", "ratio_to_raw", "commands/s ÷ raw asyncpg INSERTs/s, c=8",
           None, Bound(">=", 0.6)),
    Target("eventstore", "command_p95_ms_c8", "command p95, c=8 (design: command execution)",
           Bound("<", 100, "ms"), Bound("<=", 5, "ms")),
    Target("eventstore", "catchup_events_per_s", "projection catch-up from zero",
           None, Bound(">=", 20000, "events/s")),
    Target("gateway", "write_p95_ms", "update_patient p95, server (design: AI function call)",
           Bound("<", 500, "ms"), Bound("<=", 10, "ms")),
    Target("gateway", "cached_read_p95_ms", "get_patient p95 from the query cache, server",
           Bound("<", 50, "ms"), Bound("<=", 3, "ms")),
    Target("gateway", "writes_per_s", "update_patient requests/s, concurrency 16",
           None, Bound(">=", 1500, "/s")),
    Target("workflows", "booking_p50_ms", "schedule_appointment to confirmation sent, unloaded",
           None, Bound("<=", 250, "ms")),
    Target("workflows", "ratio_to_baseline", "booking burst/s ÷ trivial workflow burst/s",
           None, Bound(">=", 0.8)),
    Target("diagnostics", "quick_p95_ms", "/diagnostics/quick p95 under write load, server",
           Bound("<", 10, "ms"), Bound("<=", 2, "ms")),
    Target("diagnostics", "snapshot_p95_ms", "/diagnostics p95 under write load, server",
           Bound("<", 100, "ms"), Bound("<=", 20, "ms")),
    Target("intent_eval", "function_accuracy", "intent cases: right function",
           None, Bound(">=", 0.95)),
    Target("intent_eval", "argument_accuracy", "intent cases: exact key arguments",
           None, Bound(">=", 0.90)),
    Target("system", "effects_ok", "every accepted request's effects stored, exactly once",
           None, Bound("==", True)),
    Target("soak", "memory_flat", "RSS of api, worker, projector flat (see Soak)",
           None, Bound("==", True)),
    Target("soak", "effects_ok", "every accepted request's effects stored, exactly once",
           None, Bound("==", True)),
]  # fmt: skip


@dataclass(frozen=True)
class Baseline:
    bench: str
    figure: str
    meaning: str
    compared: str  # the measured figure it is the floor or ceiling for


BASELINES: list[Baseline] = [
    Baseline("eventstore", "raw_inserts_per_s_c8", "raw asyncpg single-row INSERTs/s, c=8",
             "commands_per_s_c8"),
    Baseline("eventstore", "raw_inserts_per_s_c1", "raw asyncpg single-row INSERTs/s, c=1",
             "commands_per_s_c1"),
    Baseline("eventstore", "raw_p95_ms_c8", "raw INSERT p95 ms, c=8", "command_p95_ms_c8"),
    Baseline("gateway", "tools_per_s", "GET /ai/openai/tools/s (HTTP + auth, no database)",
             "writes_per_s"),
    Baseline("workflows", "baseline_workflows_per_s",
             "trivial three-activity workflows/s, same burst", "bookings_per_s"),
    Baseline("system", "livez_per_s", "GET /livez/s on the same API, same concurrency",
             "requests_per_s"),
]  # fmt: skip

SOAK_PROCESSES = ("api", "worker", "projector")


# --- results ---------------------------------------------------------------------------


@dataclass
class Result:
    """One benchmark run: its JSON figures (None when it gave none) and how it went."""

    name: str
    figures: dict[str, Any] | None
    returncode: int | None  # None: killed after the timeout
    seconds: float
    quick: bool = False
    args: list[str] = field(default_factory=list)
    finished_at: str = ""
    commit: str = ""
    machine: dict[str, Any] = field(default_factory=dict)
    tail: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.figures is not None


def last_json(output: str) -> dict[str, Any] | None:
    """The last line of ``output`` that is a JSON object (a benchmark's figures)."""
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(line)
            if isinstance(value, dict):
                return value
    return None


def save(result: Result, directory: Path = RESULTS) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{result.name}.json"
    path.write_text(json.dumps(asdict(result), indent=2) + "\n", encoding="utf-8")


def load_results(directory: Path = RESULTS) -> dict[str, Result]:
    """The saved result of each benchmark (those never run are absent)."""
    out: dict[str, Result] = {}
    for name in BENCHES:
        path = directory / f"{name}.json"
        if path.exists():
            out[name] = Result(**json.loads(path.read_text(encoding="utf-8")))
    return out


# --- the machine -------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def memory_gib() -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count() or 0,
        "cpu_model": cpu_model(),
        "memory_gib": memory_gib(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average": round(os.getloadavg()[0], 2),
    }


def git_commit() -> str:
    """HEAD's short hash, ``+dirty`` when the checkout has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, check=True, timeout=10)  # fmt: skip
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=ROOT, capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")


# --- running -----------------------------------------------------------------------------


def _pump(stream: Any, sinks: list[Any], lines: list[str] | None, lock: threading.Lock) -> None:
    """Copy a benchmark's output, line by line, to ``sinks`` (and ``lines``) until EOF."""
    for raw in stream:
        line = raw.decode("utf-8", "replace")
        if lines is not None:
            lines.append(line)
        with lock:  # stdout and stderr share the log
            for sink in sinks:
                sink.write(line)
                sink.flush()


def _stop(proc: subprocess.Popen[bytes], *, running: bool) -> None:
    """Stop a benchmark (SIGINT first, so it shuts its servers down, when ``running``),
    then whatever it left in its process group: TERM, then KILL."""
    if running:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=60)
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def run_one(name: str, args: list[str], timeout_s: float, directory: Path = RESULTS) -> Result:
    """Run bench/<name>.py, echoing and logging its output; its Result."""
    directory.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    stdout: list[str] = []
    with (directory / f"{name}.log").open("w", encoding="utf-8") as log:
        log.write(f"$ python bench/{name}.py {' '.join(args)}  # {now()}\n")
        proc = subprocess.Popen(
            [sys.executable, str(HERE / f"{name}.py"), *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},  # its output as it comes
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        lock = threading.Lock()
        pumps = [
            threading.Thread(target=_pump, args=(proc.stdout, [log, sys.stdout], stdout, lock)),
            threading.Thread(target=_pump, args=(proc.stderr, [log, sys.stderr], None, lock)),
        ]
        for pump in pumps:
            pump.start()
        returncode: int | None = None
        try:
            returncode = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.write(f"\n[bench] no result after {timeout_s:.0f} s: stopped\n")
        finally:  # also on Ctrl-C, which reaches only this process (the bench has its session)
            # Leftover servers would hold the pipes open forever.
            _stop(proc, running=returncode is None)
            for pump in pumps:
                pump.join(timeout=10)
    tail = (directory / f"{name}.log").read_text(encoding="utf-8", errors="replace")
    return Result(
        name=name,
        figures=last_json("".join(stdout)),
        returncode=returncode,
        seconds=round(time.monotonic() - started, 1),
        args=args,
        tail="\n".join(tail.strip().splitlines()[-25:]),
    )


# --- the report ----------------------------------------------------------------------------


def fmt(value: Any) -> str:
    """A figure for the report: thousands separated, three significant digits below 100."""
    if value is None:
        return "?"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def verdict(bound: Bound | None, value: Any) -> str:
    if bound is None:
        return "–"
    if not isinstance(value, int | float):
        return "no figure"
    return "pass" if bound.holds(value) else "**FAIL**"


def _status(result: Result | None) -> str | None:
    """Why a benchmark has no figures (None when it has)."""
    if result is None:
        return "not run"
    if result.figures is None:
        return "timed out" if result.returncode is None else "failed"
    return None


def targets_table(results: Mapping[str, Result | None]) -> list[str]:
    lines = [
        "| benchmark | figure | meaning | value | original design | vs original "
        "| our target | vs ours |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in TARGETS:
        result = results.get(t.bench)
        status = _status(result)
        original = str(t.original) if t.original else "–"
        if status is not None:
            shown = "–" if t.original is None else status
            lines.append(f"| {t.bench} | `{t.figure}` | {t.meaning} | {status} | {original} "
                         f"| {shown} | {t.ours} | {status} |")  # fmt: skip
            continue
        assert result is not None and result.figures is not None
        value = result.figures.get(t.figure)
        shown = fmt(value) if value is not None else "missing"
        vs_original, vs_ours = verdict(t.original, value), verdict(t.ours, value)
        lines.append(f"| {t.bench} | `{t.figure}` | {t.meaning} | {shown} | {original} "
                     f"| {vs_original} | {t.ours} | {vs_ours} |")  # fmt: skip
    return lines


def baselines_table(results: Mapping[str, Result | None]) -> list[str]:
    lines = [
        "| benchmark | same-run baseline | value | measured figure | value | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for b in BASELINES:
        result = results.get(b.bench)
        status = _status(result)
        if status is not None:
            lines.append(f"| {b.bench} | {b.meaning} | {status} | `{b.compared}` | | |")
            continue
        assert result is not None and result.figures is not None
        base, measured = result.figures.get(b.figure), result.figures.get(b.compared)
        ratio = (
            fmt(round(measured / base, 3))
            if isinstance(base, int | float) and isinstance(measured, int | float) and base
            else ""
        )
        lines.append(f"| {b.bench} | {b.meaning} (`{b.figure}`) | {fmt(base)} "
                     f"| `{b.compared}` | {fmt(measured)} | {ratio} |")  # fmt: skip
    return lines


def soak_section(result: Result | None) -> list[str]:
    lines = ["## Soak", ""]
    status = _status(result)
    if status is not None:
        return [*lines, f"Soak: {status}.", ""]
    assert result is not None and result.figures is not None
    f = result.figures
    limit = fmt(f.get("flat_limit_pct"))
    lines += [
        f"{fmt(f.get('minutes'))} min measured after a {fmt(f.get('warmup_s'))} s warm-up "
        f"(the worker's bookings workflow cache then held "
        f"{fmt(f.get('workflow_cache_at_start'))} of {fmt(f.get('workflow_cache_bound'))} "
        f"workflows; {fmt(f.get('workflow_cache_at_end'))} at the end), "
        f"open loop at {fmt(f.get('rate_per_s'))} requests/s (bookings, lead scoring, "
        f"WhatsApp templates): {fmt(f.get('requests'))} requests, {fmt(f.get('errors'))} "
        f"errors, {fmt(f.get('bookings_accepted'))} bookings accepted (each a workflow "
        f"that then waits days for its reminders); effects stored exactly: "
        f"{fmt(f.get('effects_ok'))}; drained in {fmt(f.get('drain_s'))} s. Load average "
        f"during the run: {fmt(f.get('load_average'))}.",
        "",
        "| | p50 ms | p95 ms |",
        "|---|---|---|",
        f"| first minute | {fmt(f.get('p50_first_minute_ms'))} "
        f"| {fmt(f.get('p95_first_minute_ms'))} |",
        f"| last minute | {fmt(f.get('p50_last_minute_ms'))} "
        f"| {fmt(f.get('p95_last_minute_ms'))} |",
        "",
        "| process | RSS start MiB | RSS end MiB | whole run (last vs first minute) "
        "| second half (fitted) |",
        "|---|---|---|---|---|",
    ]
    for p in SOAK_PROCESSES:
        lines.append(
            f"| {p} | {fmt(f.get(f'rss_start_mb_{p}'))} | {fmt(f.get(f'rss_end_mb_{p}'))} "
            f"| {fmt(f.get(f'rss_growth_pct_{p}'))} % "
            f"| {fmt(f.get(f'rss_second_half_pct_{p}'))} % |"
        )
    flat = f.get("memory_flat")
    lines += [
        "",
        f"Memory **{'flat' if flat else 'NOT flat' if flat is not None else 'not judged'}**. "
        f"Criterion: for every process, the least-squares line through the RSS samples "
        f"of the second half of the measured run rises by less than {limit} % of its "
        f"value at half-time. The warm-up lasts until the worker's workflow cache for "
        f"bookings is full (`MEDICALCOR_WORKER_CACHED_WORKFLOWS` per task queue): every "
        f"booking waits days for its reminders, so the cache fills at the booking rate "
        f"and stays full, and each cached booking is a sandboxed workflow of ~0.16 MiB "
        f"(the worker grew ~30 MiB, 137 to 166, while it went from 19 to 200; tracemalloc "
        f"saw the Python heap flat once it was full). Evicted workflows are freed by full "
        f"garbage collections, so the worker's RSS saw-tooths by ~10-15 MiB over ~100 s; "
        f"the API's span buffer (2,000 traces) fills in ~5 minutes. The projector "
        f"allocates and frees whole batches of events; glibc kept the freed memory in its "
        f"arenas (an earlier 10-minute run: RSS 105 to 129 MiB while the bytes in use "
        f"stayed at 86-87 MiB), so it now gives free pages back every 30 s "
        f"(`malloc_trim`). Hence ~10 minutes for a verdict; a leak keeps rising through "
        f"the second half.",
        "",
    ]
    return lines


def runs_table(results: Mapping[str, Result | None]) -> list[str]:
    lines = ["| benchmark | status | mode | took | finished | commit | arguments |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name in BENCHES:
        r = results.get(name)
        if r is None:
            lines.append(f"| {name} | not run | | | | | |")
            continue
        status = _status(r) or ("ok" if r.returncode == 0 else f"exit {r.returncode}")
        args = " ".join(r.args) or "(defaults)"
        lines.append(f"| {name} | {status} | {'quick' if r.quick else 'full'} | {r.seconds:.0f} s "
                     f"| {r.finished_at} | {r.commit} | {args} |")  # fmt: skip
    return lines


def build_report(results: Mapping[str, Result | None], *, generated_at: str | None = None) -> str:
    """REPORT.md from the results (a benchmark absent or None is shown as not run)."""
    ran = [r for r in results.values() if r is not None]
    latest = max(ran, key=lambda r: r.finished_at, default=None)
    m = latest.machine if latest else {}
    commits = sorted({r.commit for r in ran if r.commit})
    lines = [
        "# Benchmark report",
        "",
        f"Written by `python -m bench` on {generated_at or now()} from the saved results in "
        "`bench/results/` (`python -m bench --report-only` rewrites it without running).",
        "",
        f"- Machine: {m.get('cpus', '?')} CPUs ({m.get('cpu_model', '?')}), "
        f"{m.get('memory_gib', '?')} GiB, {m.get('system', '?')}, Python {m.get('python', '?')}",
        f"- Commit: {', '.join(commits) or 'unknown'}",
        f"- Load average when the last benchmark finished: {m.get('load_average', '?')} "
        "(other work on the machine shows here: the figures are then pessimistic)",
    ]
    if any(r.quick for r in ran):
        lines.append(
            "- **Quick mode** (`BENCH_QUICK=1`): shortest settings, a check that the "
            "benchmarks run; these figures are not the ones to compare with the targets."
        )
    lines += ["", "## Targets", "", *targets_table(results), ""]
    lines += ["## Same-run baselines", "", *baselines_table(results), ""]
    lines += soak_section(results.get("soak"))
    lines += ["## Runs", "", *runs_table(results), ""]
    lines += ["## All figures", ""]
    for name in BENCHES:
        r = results.get(name)
        if r is not None and r.figures is not None:
            lines += [f"`{name}`: `{json.dumps(r.figures)}`", ""]
    for name in BENCHES:
        r = results.get(name)
        if r is not None and r.figures is None:
            lines += [f"## {name}: output tail", "", "```", r.tail, "```", ""]
    return "\n".join(lines)


def write_report(results: Mapping[str, Result | None], path: Path = REPORT) -> None:
    path.write_text(build_report(results), encoding="utf-8")


# --- main ----------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {BENCHES})")
    parser.add_argument("--quick", action="store_true",
                        default=os.environ.get("BENCH_QUICK", "") not in ("", "0"),
                        help="shortest settings (also BENCH_QUICK=1)")  # fmt: skip
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite REPORT.md from bench/results/ without running")  # fmt: skip
    options = parser.parse_args(argv)
    unknown = sorted(set(options.names) - set(BENCHES))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {BENCHES}")
    results: dict[str, Result | None] = dict(load_results())
    if not options.report_only:
        commit = git_commit()
        for name in options.names or BENCHES:
            results.pop(name, None)
            (RESULTS / f"{name}.json").unlink(missing_ok=True)
        for name in options.names or BENCHES:
            args = (QUICK_ARGS if options.quick else FULL_ARGS).get(name, [])
            print(f"== bench/{name}.py {' '.join(args)}", flush=True)
            result = run_one(name, args, QUICK_TIMEOUT_S if options.quick else TIMEOUT_S)
            result.quick, result.commit = options.quick, commit
            result.finished_at, result.machine = now(), machine()
            save(result)
            results[name] = result
            write_report(results)
            print(f"== {name}: {_status(result) or 'ok'} in {result.seconds:.0f} s", flush=True)
    write_report(results)
    print(f"wrote {REPORT}")
    if options.report_only:
        return 0
    ran = [results[n] for n in options.names or BENCHES if results.get(n) is not None]
    return 0 if all(r is not None and r.ok for r in ran) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
