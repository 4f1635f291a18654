"""Tracing setup: span buffer, redacting exporters, OTLP export, httpx/asyncpg instrumentation.

The OTLP test runs a small OTLP/HTTP receiver on loopback that decodes the real
protobuf export request, so it checks what would reach a collector.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adapters.telemetry.span_buffer import SpanBuffer
from adapters.telemetry.tracing import OTLP_GRPC, otlp_exporter, setup_tracing


class Receiver(ThreadingHTTPServer):
    """Collects OTLP/HTTP trace exports and answers 200 to everything else."""

    def __init__(self) -> None:
        self.exports: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.server.paths.append(self.path)
        if self.path == "/v1/traces":
            self.server.exports.append(ExportTraceServiceRequest.FromString(body))
        self._ok()

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        self._ok()

    def _ok(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_spans_reach_the_buffer_and_extra_exporters_redacted() -> None:
    sink = InMemorySpanExporter()
    buffer = SpanBuffer(max_traces=10)
    handle = setup_tracing(
        "medicalcor-test",
        buffer=buffer,
        exporter=sink,
        set_global=False,
        instrument_libraries=False,
    )
    tracer = handle.provider.get_tracer("test")
    with tracer.start_as_current_span("notify") as span:
        span.set_attribute("messaging.destination", "+40721234567")
    handle.shutdown()  # flushes the batch processor
    [exported] = sink.get_finished_spans()
    assert exported.attributes["messaging.destination"] == "[phone]"
    assert exported.resource.attributes["service.name"] == "medicalcor-test"
    trace_id = format(span.get_span_context().trace_id, "032x")
    stored = buffer.get(trace_id)
    assert stored is not None
    assert stored["spans"][0]["attributes"]["messaging.destination"] == "[phone]"
    assert handle.exporting is False


def test_otlp_http_export_sends_redacted_spans_to_the_collector(receiver: Receiver) -> None:
    endpoint = f"http://127.0.0.1:{receiver.server_address[1]}"
    handle = setup_tracing(
        "medicalcor-api",
        otlp_endpoint=endpoint,
        otlp_protocol="http/protobuf",
        environment="test",
        set_global=False,
        instrument_libraries=False,
    )
    assert handle.exporting is True
    tracer = handle.provider.get_tracer("test")
    with tracer.start_as_current_span("GET /patients/{patient_id}") as span:
        span.set_attribute("url.full", "http://api/patients?phone=0721234567&email=a@b.ro")
        span.set_attribute("patient.last_name", "Popescu")
    assert handle.provider.force_flush(10_000)
    handle.shutdown()
    assert receiver.paths == ["/v1/traces"]
    [request] = receiver.exports
    resource_spans = request.resource_spans[0]
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "medicalcor-api"
    assert resource["deployment.environment"] == "test"
    [sent] = resource_spans.scope_spans[0].spans
    assert sent.name == "GET /patients/{patient_id}"
    assert sent.trace_id.hex() == format(span.get_span_context().trace_id, "032x")
    attrs = {a.key: a.value.string_value for a in sent.attributes}
    assert attrs["url.full"] == "http://api/patients?phone=[redacted]&email=[redacted]"
    assert attrs["patient.last_name"] == "[redacted]"
    assert b"0721234567" not in request.SerializeToString()


def test_otlp_exporter_protocols() -> None:
    exporter = otlp_exporter("http://127.0.0.1:4317", OTLP_GRPC)
    assert type(exporter).__module__.startswith("opentelemetry.exporter.otlp.proto.grpc")
    exporter.shutdown()
    with pytest.raises(ValueError):
        otlp_exporter("http://127.0.0.1:4317", "thrift")


def test_httpx_and_asyncpg_are_instrumented_until_shutdown(receiver: Receiver) -> None:
    buffer = SpanBuffer()
    handle = setup_tracing("medicalcor-test", buffer=buffer, set_global=False)
    try:
        assert HTTPXClientInstrumentor().is_instrumented_by_opentelemetry
        assert AsyncPGInstrumentor().is_instrumented_by_opentelemetry
        port = receiver.server_address[1]
        httpx.get(f"http://127.0.0.1:{port}/contacts?phone=%2B40721234567")
    finally:
        handle.shutdown()
    assert not HTTPXClientInstrumentor().is_instrumented_by_opentelemetry
    assert not AsyncPGInstrumentor().is_instrumented_by_opentelemetry
    [summary] = buffer.search()
    trace = buffer.get(summary["traceId"])
    assert trace is not None
    [client_span] = trace["spans"]
    assert client_span["kind"] == "client"
    assert "40721234567" not in repr(client_span)
    assert any("/contacts?phone=[redacted]" in str(v) for v in client_span["attributes"].values())
