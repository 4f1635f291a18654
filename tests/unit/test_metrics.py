"""Metrics: names and labels the dashboards expect, helpers, label hygiene, HTTP middleware.

Runs in-process: the app is served through ``httpx.ASGITransport`` (no sockets), the
metrics are prometheus-client's real default registry, read back through the real
``/metrics`` exposition. Counters are global, so assertions compare before/after.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from adapters.telemetry import metrics as m
from adapters.telemetry.diagnostics import Diagnostics
from adapters.telemetry.labels import OTHER, LabelGuard, confidence_bucket, is_safe_token
from adapters.telemetry.tracing import TracingHandle, setup_tracing
from api.observability import UNMATCHED, install_observability

# metric -> label names, as shared/DOMAIN.md and the issue name them
EXPECTED: dict[str, set[str]] = {
    "http_requests_total": {"method", "path", "status"},
    "http_request_duration_seconds": {"method", "path"},
    "medicalcor_leads_created_total": {"channel", "source"},
    "medicalcor_leads_scored_total": {"classification"},
    "medicalcor_leads_converted_total": set(),
    "medicalcor_appointments_scheduled_total": {"service_type"},
    "medicalcor_appointments_cancelled_total": {"reason"},
    "medicalcor_messages_received_total": {"channel"},
    "medicalcor_messages_sent_total": {"channel", "type"},
    "medicalcor_external_service_requests_total": {"service", "operation", "status"},
    "medicalcor_external_service_duration_seconds": {"service", "operation"},
    "medicalcor_events_appended_total": {"type"},
    "medicalcor_event_store_latency_seconds": {"operation"},
    "medicalcor_commands_executed_total": {"type", "status"},
    "medicalcor_command_duration_seconds": {"type"},
    "medicalcor_queries_executed_total": {"type", "cached"},
    "medicalcor_query_duration_seconds": {"type"},
    "medicalcor_cache_requests_total": {"query", "result"},
    "medicalcor_ai_function_calls_total": {"function", "status"},
    "medicalcor_ai_function_duration_seconds": {"function"},
    "medicalcor_ai_intent_detections_total": {"detected_function", "confidence_bucket"},
    "medicalcor_ai_tokens_total": {"provider", "kind"},
    "medicalcor_projection_lag_events": {"projection"},
    "medicalcor_projection_lag_seconds": {"projection"},
    "medicalcor_workflows_started_total": {"workflow"},
    "medicalcor_workflows_completed_total": {"workflow", "status"},
    "medicalcor_activities_total": {"activity", "status"},
    "medicalcor_activity_duration_seconds": {"activity"},
    "medicalcor_health_check_status": {"check"},
}


def exercise_every_helper() -> None:
    """One call of each helper, with realistic category values."""
    m.record_http_request("GET", "/ai/functions", 200, 0.004)
    m.record_lead_created("whatsapp", "facebook")
    m.record_lead_scored("HOT")
    m.record_lead_converted()
    m.record_appointment_scheduled("implant")
    m.record_appointment_cancelled("patient_request")
    m.record_message_received("whatsapp")
    m.record_message_sent("whatsapp", "template")
    m.record_external("whatsapp", "send_message", "success", 0.12)
    m.record_event_appended("LeadCreated")
    m.record_event_store_latency("append", 0.002)
    m.record_command("ScoreLead", "success", 0.003)
    m.record_query("GetPatient", True, 0.0005)
    m.record_cache("GetPatient", "hit")
    m.record_ai_call("score_lead", "success", 0.02)
    m.record_intent("schedule_appointment", 0.92)
    m.record_ai_tokens("anthropic", 120, 40)
    m.set_projection_lag("lead-stats", 3, 0.4)
    m.record_workflow_started("booking-agent")
    m.record_workflow_completed("booking-agent", "completed")
    m.record_activity("schedule_appointment", "completed", 0.05)
    m.set_health_check("postgres", True)


def scrape() -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """The default exposition parsed back: family -> [(sample name, labels, value)]."""
    body, _ = m.render_metrics(None)
    return {
        f.name: [(s.name, dict(s.labels), s.value) for s in f.samples]
        for f in text_string_to_metric_families(body.decode())
    }


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_every_dashboard_metric_is_exposed_with_exactly_its_labels() -> None:
    exercise_every_helper()
    families = scrape()
    for name, labels in EXPECTED.items():
        family = name.removesuffix("_total")
        assert family in families, f"{name} missing from /metrics"
        assert families[family], f"{name} has no samples"
        for _sample, sample_labels, _v in families[family]:
            assert set(sample_labels) - {"le"} == labels, (name, sample_labels)


@pytest.mark.parametrize(
    ("call", "sample", "labels", "amount"),
    [
        (
            lambda: m.record_lead_created("WhatsApp", "Google"),
            "medicalcor_leads_created_total",
            {"channel": "whatsapp", "source": "google"},
            1,
        ),
        (
            lambda: m.record_lead_created("web"),
            "medicalcor_leads_created_total",
            {"channel": "web", "source": "none"},
            1,
        ),
        (
            lambda: m.record_lead_scored("warm"),
            "medicalcor_leads_scored_total",
            {"classification": "WARM"},
            1,
        ),
        (m.record_lead_converted, "medicalcor_leads_converted_total", {}, 1),
        (
            lambda: m.record_appointment_cancelled(None),
            "medicalcor_appointments_cancelled_total",
            {"reason": "unspecified"},
            1,
        ),
        (
            lambda: m.record_event_appended("PatientUpdated", 3),
            "medicalcor_events_appended_total",
            {"type": "PatientUpdated"},
            3,
        ),
        (
            lambda: m.record_command("CancelAppointment", "CONFLICT", 0.01),
            "medicalcor_commands_executed_total",
            {"type": "CancelAppointment", "status": "CONFLICT"},
            1,
        ),
        (
            lambda: m.record_query("GetLeadAnalytics", False, 0.01),
            "medicalcor_queries_executed_total",
            {"type": "GetLeadAnalytics", "cached": "false"},
            1,
        ),
        (
            lambda: m.record_cache("GetLeadAnalytics", "stale"),
            "medicalcor_cache_requests_total",
            {"query": "GetLeadAnalytics", "result": "stale"},
            1,
        ),
        (
            lambda: m.record_intent(None, 0.1),
            "medicalcor_ai_intent_detections_total",
            {"detected_function": "none", "confidence_bucket": "low"},
            1,
        ),
        (
            lambda: m.record_ai_tokens("anthropic", 500, 20),
            "medicalcor_ai_tokens_total",
            {"provider": "anthropic", "kind": "input"},
            500,
        ),
        (
            lambda: m.record_external("hubspot", "upsert_contact", "timeout", 5.0),
            "medicalcor_external_service_requests_total",
            {"service": "hubspot", "operation": "upsert_contact", "status": "timeout"},
            1,
        ),
        (
            lambda: m.record_workflow_completed("lead-scoring", "failed"),
            "medicalcor_workflows_completed_total",
            {"workflow": "lead-scoring", "status": "failed"},
            1,
        ),
        (
            lambda: m.record_activity("send_whatsapp", "failed", 0.2),
            "medicalcor_activities_total",
            {"activity": "send_whatsapp", "status": "failed"},
            1,
        ),
    ],
)
def test_helpers_increment_the_series_their_code_path_describes(
    call: Callable[[], None], sample: str, labels: dict[str, str], amount: float
) -> None:
    before = value(sample, **labels)
    call()
    assert value(sample, **labels) - before == amount


def test_durations_land_in_the_histograms() -> None:
    before = value("medicalcor_command_duration_seconds_count", type="BookSlot")
    sum_before = value("medicalcor_command_duration_seconds_sum", type="BookSlot")
    m.record_command("BookSlot", "success", 0.25)
    assert value("medicalcor_command_duration_seconds_count", type="BookSlot") == before + 1
    assert value("medicalcor_command_duration_seconds_sum", type="BookSlot") == pytest.approx(
        sum_before + 0.25
    )
    le = value("medicalcor_command_duration_seconds_bucket", type="BookSlot", le="0.25")
    assert le >= 1


def test_projection_lag_gauges_hold_the_latest_value() -> None:
    m.set_projection_lag("daily-metrics", 40, 2.5)
    m.set_projection_lag("daily-metrics", 7, 0.3)
    assert value("medicalcor_projection_lag_events", projection="daily-metrics") == 7
    assert value("medicalcor_projection_lag_seconds", projection="daily-metrics") == 0.3


def test_labels_never_carry_phones_emails_ids_or_free_text() -> None:
    m.record_lead_created("+40721234567", "ion.popescu@example.com")
    m.record_appointment_cancelled("pacientul a sunat, nu poate veni mâine")
    m.record_event_appended("0721234567")
    m.record_command("3f2b8c1e-9d4a-4e1b-8f0a-1b2c3d4e5f60", "success", 0.001)
    m.record_appointment_scheduled("Ion Popescu")
    m.record_message_sent("0040 721 234 567", "template")
    body = m.render_metrics(None)[0].decode()
    for leaked in (
        "0721234567",
        "40721234567",
        "ion.popescu",
        "example.com",
        "3f2b8c1e",
        "Ion Popescu",
        "pacientul",
        "721 234",
    ):
        assert leaked not in body, leaked
    assert value("medicalcor_leads_created_total", channel=OTHER, source=OTHER) >= 1
    assert value("medicalcor_appointments_cancelled_total", reason=OTHER) >= 1


@pytest.mark.parametrize(
    ("token", "safe"),
    [
        ("ScheduleAppointment", True),
        ("score_lead", True),
        ("whatsapp.send-template", True),
        ("CONFLICT", True),
        ("+40721234567", False),
        ("0721234567", False),
        ("apt 123", False),
        ("a@b.ro", False),
        ("3f2b8c1e-9d4a-4e1b-8f0a-1b2c3d4e5f60", False),
        ("4bf92f3577b34da6a3ce929d0e0e4736", False),
        ("x" * 65, False),
        ("", False),
    ],
)
def test_safe_tokens(token: str, safe: bool) -> None:
    assert is_safe_token(token) is safe


def test_label_cardinality_is_capped_per_metric_label() -> None:
    guard = LabelGuard(cap=3)
    assert [guard.token("m", "l", f"kind{c}") for c in "abcd"] == ["kinda", "kindb", "kindc", OTHER]
    assert guard.token("m", "l", "kinda") == "kinda"  # known values keep working
    assert guard.token("m", "other_label", "kindd") == "kindd"  # caps are per label


def test_confidence_buckets() -> None:
    assert [confidence_bucket(c) for c in (0.0, 0.49, 0.5, 0.79, 0.8, 1.0)] == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
    ]


# --- the HTTP surface ------------------------------------------------------------------


@pytest.fixture
def tracing() -> TracingHandle:
    handle = setup_tracing("medicalcor-test", set_global=False, instrument_libraries=False)
    yield handle  # type: ignore[misc]
    handle.shutdown()


def build_app(tracing: TracingHandle) -> FastAPI:
    app = FastAPI()

    @app.get("/patients/{patient_id}")
    async def patient(patient_id: str) -> dict[str, str]:
        return {"id": patient_id}

    @app.post("/leads")
    async def lead() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/explode")
    async def explode() -> None:
        raise RuntimeError("boom")

    sub = Starlette(routes=[Route("/items/{item_id}", lambda r: PlainTextResponse("x"))])
    app.mount("/sub", sub)
    diagnostics = Diagnostics(service="medicalcor-test", span_buffer=tracing.buffer)
    install_observability(app, diagnostics, tracer_provider=tracing.provider)
    return app


@pytest.fixture
async def client(tracing: TracingHandle) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(tracing), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c


def http_count(path: str, status: str, method: str = "GET") -> float:
    return value("http_requests_total", method=method, path=path, status=status)


async def test_path_label_is_the_route_template_never_the_raw_url(
    client: httpx.AsyncClient,
) -> None:
    before = http_count("/patients/{patient_id}", "200")
    for pid in ("p-1", "p-2", "0721234567"):
        assert (await client.get(f"/patients/{pid}?phone=0721234567")).status_code == 200
    assert http_count("/patients/{patient_id}", "200") - before == 3
    hist = value("http_request_duration_seconds_count", method="GET", path="/patients/{patient_id}")
    assert hist >= 3
    body = (await client.get("/metrics")).text
    assert "p-1" not in body and "0721234567" not in body


async def test_unmatched_routes_share_one_label(client: httpx.AsyncClient) -> None:
    before = http_count(UNMATCHED, "404")
    await client.get("/wp-admin/0721234567")
    await client.get("/no/such/thing")
    assert http_count(UNMATCHED, "404") - before == 2
    assert "wp-admin" not in (await client.get("/metrics")).text


async def test_errors_and_methods_and_mounts_are_labelled(client: httpx.AsyncClient) -> None:
    before_500 = http_count("/explode", "500")
    before_405 = http_count("/leads", "405")
    before_mount = http_count("/sub/items/{item_id}", "200")
    assert (await client.get("/explode")).status_code == 500
    assert (await client.get("/leads")).status_code == 405
    assert (await client.get("/sub/items/42")).status_code == 200
    assert http_count("/explode", "500") - before_500 == 1
    assert http_count("/leads", "405") - before_405 == 1
    assert http_count("/sub/items/{item_id}", "200") - before_mount == 1


async def test_metrics_speaks_prometheus_text_and_openmetrics_on_request(
    client: httpx.AsyncClient,
) -> None:
    plain = await client.get("/metrics")
    assert plain.headers["content-type"].startswith("text/plain")
    assert "# TYPE http_requests_total counter" in plain.text
    open_metrics = await client.get(
        "/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
    assert open_metrics.text.rstrip().endswith("# EOF")


async def test_metrics_json_lists_families_and_samples(client: httpx.AsyncClient) -> None:
    await client.get("/patients/p-9")
    payload = (await client.get("/metrics/json")).json()
    families = {f["name"]: f for f in payload["metrics"]}
    http = families["http_requests"]
    assert http["type"] == "counter"
    assert any(
        s["labels"].get("path") == "/patients/{patient_id}" and s["value"] >= 1
        for s in http["samples"]
    )


async def test_trace_id_header_continues_the_callers_w3c_trace(
    client: httpx.AsyncClient, tracing: TracingHandle
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = await client.get(
        "/patients/p-3",
        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01", "x-correlation-id": "c-77"},
    )
    assert response.headers["x-trace-id"] == trace_id
    assert response.headers["x-correlation-id"] == "c-77"
    stored = tracing.buffer.get(trace_id)
    assert stored is not None
    assert stored["rootName"] == "GET /patients/{patient_id}"
    assert stored["spans"][0]["parentSpanId"] == "00f067aa0ba902b7"
    assert stored["correlationId"] == "c-77"


async def test_new_traces_get_an_id_and_bodies_carry_it(
    client: httpx.AsyncClient, tracing: TracingHandle
) -> None:
    response = await client.get("/diagnostics")
    trace_id = response.headers["x-trace-id"]
    assert len(trace_id) == 32 and trace_id != "0" * 32
    assert response.json()["traceId"] == trace_id
    assert response.headers["server-timing"].startswith("app;dur=")
    assert tracing.buffer.get(trace_id) is not None


async def test_unsafe_correlation_ids_are_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/patients/p-4", headers={"x-correlation-id": "+40 721 234 567"})
    assert "721" not in response.headers["x-correlation-id"]
    assert len(response.headers["x-correlation-id"]) == 32


async def test_server_spans_are_named_by_the_matched_route_without_matching_twice(
    client: httpx.AsyncClient, tracing: TracingHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    import opentelemetry.instrumentation.fastapi as otel_fastapi

    def no_second_matching(scope: object) -> None:
        raise AssertionError("the instrumentation matched the routes again")

    monkeypatch.setattr(otel_fastapi, "_get_route_details", no_second_matching)
    named = {}
    for path in ["/patients/p-5", "/sub/items/7", "/explode", "/nope/1"]:
        await client.get(path)
        [latest] = tracing.buffer.search(limit=1)
        stored = tracing.buffer.get(latest["traceId"])
        assert stored is not None
        [span] = stored["spans"]
        named[path] = (span["name"], span["attributes"].get("http.route"))
    assert named == {
        "/patients/p-5": ("GET /patients/{patient_id}", "/patients/{patient_id}"),
        "/sub/items/7": ("GET /sub/items/{item_id}", "/sub/items/{item_id}"),
        "/explode": ("GET /explode", "/explode"),  # named before the 500 ends the span
        "/nope/1": ("GET", None),
    }
