"""The API's ``/metrics`` carries its Temporal client's SDK metrics, on the API's own port.

* The real app (``api.app.create_app``, served by uvicorn, its lifespan connecting to
  the session's Temporal dev server) answers ``/readyz`` (a gRPC health check) and a
  status request for an unknown workflow (a ``DescribeWorkflowExecution`` answered
  NOT_FOUND); its ``/metrics`` then shows ``temporal_request_total``,
  ``temporal_request_latency_seconds`` and ``temporal_request_failure_total`` grown
  by at least those calls.
* :class:`TemporalSdkMetrics` names, labels and buckets match the worker's endpoint
  (the Core runtime's own Prometheus exporter) for the same calls, so dashboards can
  sum both jobs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest_asyncio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from adapters.api_keys import ApiKeyStore
from adapters.postgres.pool import create_pool
from adapters.telemetry.temporal import temporal_runtime_with_prometheus
from adapters.telemetry.temporal_sdk import LATENCY_BUCKETS, TemporalSdkMetrics
from api.app import create_app
from tests.e2e.ai_support import serve
from tests.fixtures.stack import free_port, stack_settings, temporal_address

CLINIC = "clinic-metrics"
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass(frozen=True)
class Api:
    url: str
    key: str


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api(pg_dsn: str, temporal_env: WorkflowEnvironment) -> AsyncIterator[Api]:
    """The API app on a loopback port, and an admin key of one clinic."""
    settings = stack_settings(pg_dsn, temporal_address(temporal_env))
    pool = await create_pool(pg_dsn, min_size=1, max_size=2)
    try:
        _, key = await ApiKeyStore(pool, settings.secret_key).create(CLINIC, ["admin"], "metrics")
    finally:
        await pool.close()
    async with serve(create_app(settings)) as url:
        yield Api(url, key)


def parse(text: str) -> tuple[Series, dict[str, str]]:
    """Samples by (name, labels) and family types by family name."""
    series: Series = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            series[(s.name, frozenset(s.labels.items()))] = s.value
    return series, types


def value(series: Series, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, lbl), v in series.items() if n == name and wanted <= lbl)


async def scrape(http: httpx.AsyncClient) -> tuple[Series, dict[str, str]]:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


async def test_api_metrics_carry_the_temporal_client_metrics(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=30.0) as http:
        before, _ = await scrape(http)
        for _ in range(3):
            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["temporal"] == "ok"
        unknown = await http.post(
            "/ai/execute",
            headers={"X-API-Key": api.key},
            json={
                "type": "function_call",
                "calls": [
                    {
                        "function": "get_workflow_status",
                        "arguments": {"taskId": f"{CLINIC}:lead-scoring:no-such-run"},
                    }
                ],
            },
        )
        assert unknown.status_code == 200, unknown.text
        (call,) = unknown.json()["results"]
        assert call["error"]["code"] == "NOT_FOUND", call
        after, types = await scrape(http)

    assert types["temporal_request"] == "counter"
    assert types["temporal_request_latency_seconds"] == "histogram"
    assert types["temporal_request_failure"] == "counter"

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    core = {"service_name": "temporal-core-sdk"}
    assert grew("temporal_request_total", operation="Check", **core) >= 3
    assert grew("temporal_request_latency_seconds_count", operation="Check") >= 3
    assert value(
        after, "temporal_request_latency_seconds_bucket", operation="Check", le="+Inf"
    ) == (value(after, "temporal_request_latency_seconds_count", operation="Check"))
    assert (
        grew(
            "temporal_request_failure_total",
            operation="DescribeWorkflowExecution",
            status_code="NOT_FOUND",
            namespace="default",
        )
        >= 1
    )


async def calls(client: Client) -> None:
    """The same few RPCs, for both runtimes."""
    await client.count_workflows("")
    try:
        await client.get_workflow_handle("no-such-workflow").describe()
    except RPCError:
        pass
    else:  # pragma: no cover - the server must not know this id
        raise AssertionError("describe of an unknown workflow succeeded")


def comparable(series: Series) -> Series:
    """Empty labels dropped (Prometheus reads them as absent), ``le`` as a number."""
    out: Series = {}
    for (name, labels), v in series.items():
        kept = frozenset(
            (k, str(float(val)) if k == "le" else val) for k, val in labels if val != ""
        )
        out[(name, kept)] = v
    return out


async def test_bridge_names_labels_and_buckets_match_the_worker_endpoint(
    temporal_env: WorkflowEnvironment,
) -> None:
    address = temporal_address(temporal_env)
    registry = CollectorRegistry()
    bridge = TemporalSdkMetrics(registry)
    port = free_port()
    endpoint_runtime = temporal_runtime_with_prometheus(f"127.0.0.1:{port}")
    await calls(await Client.connect(address, runtime=bridge.runtime))
    await calls(await Client.connect(address, runtime=endpoint_runtime))
    assert bridge.drain() > 0
    ours_raw, our_types = parse(generate_latest(registry).decode())
    async with httpx.AsyncClient(timeout=10.0) as http:
        for _ in range(50):  # the exporter publishes asynchronously
            theirs_raw, their_types = parse(
                (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            )
            if value(theirs_raw, "temporal_request_failure_total"):
                break
            await asyncio.sleep(0.1)
    ours, theirs = comparable(ours_raw), comparable(theirs_raw)

    assert their_types.items() <= our_types.items()
    assert set(theirs) <= set(ours), sorted(set(theirs) - set(ours))
    for (name, labels), count in theirs.items():
        if name.endswith(("_total", "_count")):  # the same calls: the same counts
            assert ours[(name, labels)] == count, (name, labels)
    buckets = {
        dict(lbl)["le"] for (n, lbl) in ours if n == "temporal_request_latency_seconds_bucket"
    }
    assert buckets == {str(float(b)) for b in (*LATENCY_BUCKETS, float("inf"))}
    assert bridge.dropped_attributes == 0
