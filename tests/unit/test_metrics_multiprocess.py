"""Several API worker processes: PROMETHEUS_MULTIPROC_DIR aggregates their metrics.

prometheus-client picks its value storage when it is first imported, so each
"worker" here is a real child interpreter started with the variable set, writing to
a temporary directory; a last child serves ``/metrics`` and ``/diagnostics`` through
the real router and must report the sum of all of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from adapters.telemetry.metrics import prepare_multiprocess_dir

ROOT = Path(__file__).resolve().parents[2]

WORKER = """
from adapters.telemetry import metrics as m
for _ in range({n}):
    m.record_command("ScoreLead", "success", 0.01)
m.record_http_request("GET", "/ai/functions", 200, 0.002)
m.set_projection_lag("lead-stats", {lag}, 1.0)
if {dies}:
    m.mark_process_dead()
"""

READER = """
import asyncio, json, httpx
from fastapi import FastAPI
from adapters.telemetry.diagnostics import Diagnostics
from api.observability import install_observability

async def main():
    app = FastAPI()
    install_observability(app, Diagnostics(service="reader"), instrument=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        text = (await client.get("/metrics")).text
        snap = (await client.get("/diagnostics")).json()
    print(json.dumps({"text": text, "snapshot": snap}))

asyncio.run(main())
"""


def run_child(code: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_metrics_of_all_workers_are_summed(tmp_path: Path) -> None:
    directory = prepare_multiprocess_dir(tmp_path / "multiproc")
    (directory / "counter_999999.db").write_bytes(b"stale")  # from a previous run
    directory = prepare_multiprocess_dir(directory)
    assert list(directory.iterdir()) == []
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    run_child(WORKER.format(n=5, lag=100, dies=True), env)  # a worker that shut down
    run_child(WORKER.format(n=7, lag=40, dies=False), env)
    run_child(WORKER.format(n=11, lag=7, dies=False), env)
    out = json.loads(run_child(READER, env))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(out["text"])
        for s in family.samples
    }
    key = ("medicalcor_commands_executed_total", (("status", "success"), ("type", "ScoreLead")))
    assert samples[key] == 5 + 7 + 11
    http = (
        "http_requests_total",
        (("method", "GET"), ("path", "/ai/functions"), ("status", "200")),
    )
    assert samples[http] == 3
    # the live gauge keeps the most recent value of a live process; the dead one is gone
    assert samples[("medicalcor_projection_lag_events", (("projection", "lead-stats"),))] == 7
    snapshot = out["snapshot"]
    assert snapshot["multiprocessMetrics"] is True
    assert snapshot["cqrs"]["commands"]["total"] == 23
    assert snapshot["cqrs"]["commands"]["byType"] == {"ScoreLead": 23}
