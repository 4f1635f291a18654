"""OpenTelemetry tracing: provider, span buffer, PII guard, OTLP export, instrumentation.

``setup_tracing`` is called once by each process's composition root (API, worker,
projector). It builds a ``TracerProvider`` whose spans go to

* the in-process :class:`SpanBuffer` (``/diagnostics/traces``), redacted on entry;
* an OTLP exporter when an endpoint is given (``OTEL_EXPORTER_OTLP_ENDPOINT`` read
  by the settings), behind :class:`RedactingSpanExporter`, so no phone, e-mail or
  personal field leaves the process;

and instruments asyncpg and httpx with the official instrumentations. FastAPI is
instrumented per app by ``api.observability.install_observability``. Incoming W3C
``traceparent`` headers are honoured through the default global propagator
(tracecontext + baggage), which the FastAPI instrumentation uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Status

from adapters.telemetry.redaction import redact_attributes, redact_text
from adapters.telemetry.span_buffer import SpanBuffer, SpanBufferProcessor

OTLP_GRPC = "grpc"
OTLP_HTTP = "http/protobuf"


def redact_span(span: ReadableSpan) -> ReadableSpan:
    """A copy of ``span`` with names, attributes, events and status message redacted."""
    return ReadableSpan(
        name=redact_text(span.name),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=redact_attributes(span.attributes),
        events=[
            Event(e.name, redact_attributes(e.attributes), timestamp=e.timestamp)
            for e in span.events
        ],
        links=span.links,
        kind=span.kind,
        status=Status(span.status.status_code, redact_text(span.status.description or "") or None),
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class RedactingSpanExporter(SpanExporter):
    """Redacts every span before handing it to the wrapped exporter."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export redacted copies."""
        return self.inner.export([redact_span(s) for s in spans])

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return self.inner.force_flush(timeout_millis)


def otlp_exporter(endpoint: str, protocol: str = OTLP_GRPC) -> SpanExporter:
    """An OTLP span exporter for ``endpoint`` (gRPC ``host:4317`` or HTTP ``.../4318``).

    For HTTP the endpoint is the collector's base URL, as in
    ``OTEL_EXPORTER_OTLP_ENDPOINT``; ``/v1/traces`` is appended.
    """
    if protocol == OTLP_HTTP:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
    if protocol != OTLP_GRPC:
        raise ValueError(f"unsupported OTLP protocol {protocol!r}")
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcExporter,
    )

    return GrpcExporter(endpoint=endpoint)


@dataclass
class TracingHandle:
    """What ``setup_tracing`` built; ``shutdown()`` flushes and undoes instrumentation."""

    provider: TracerProvider
    buffer: SpanBuffer
    exporting: bool
    _instrumentors: list[AsyncPGInstrumentor | HTTPXClientInstrumentor] = field(
        default_factory=list
    )

    def shutdown(self) -> None:
        """Flush pending exports, stop the provider and remove library patches."""
        for instrumentor in self._instrumentors:
            instrumentor.uninstrument()
        self._instrumentors.clear()
        self.provider.shutdown()


def setup_tracing(
    service_name: str,
    *,
    otlp_endpoint: str | None = None,
    otlp_protocol: str = OTLP_GRPC,
    service_version: str = "0.1.0",
    environment: str | None = None,
    sample_ratio: float = 1.0,
    buffer: SpanBuffer | None = None,
    exporter: SpanExporter | None = None,
    instrument_libraries: bool = True,
    set_global: bool = True,
) -> TracingHandle:
    """Build the process's tracer provider (see the module docstring).

    Args:
        service_name: ``service.name`` resource attribute (``medicalcor-api`` ...).
        otlp_endpoint: OTLP collector; ``None`` keeps traces in-process only.
        otlp_protocol: ``"grpc"`` (default) or ``"http/protobuf"``.
        sample_ratio: head sampling for new traces; callers' sampled flag wins.
        buffer: the span buffer to feed (a new 2000-trace buffer by default).
        exporter: an extra exporter (tests), also behind the redacting guard.
        instrument_libraries: patch asyncpg and httpx (once per process).
        set_global: install as the global provider (``trace.get_tracer`` users).
    """
    attributes: dict[str, str] = {"service.name": service_name, "service.version": service_version}
    if environment:
        attributes["deployment.environment"] = environment
    provider = TracerProvider(
        resource=Resource.create(attributes),
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
    )
    span_buffer = buffer if buffer is not None else SpanBuffer()
    provider.add_span_processor(SpanBufferProcessor(span_buffer))
    exporters = [e for e in (exporter,) if e is not None]
    if otlp_endpoint:
        exporters.append(otlp_exporter(otlp_endpoint, otlp_protocol))
    for exp in exporters:
        provider.add_span_processor(BatchSpanProcessor(RedactingSpanExporter(exp)))
    if set_global:
        trace.set_tracer_provider(provider)
    handle = TracingHandle(provider, span_buffer, exporting=bool(otlp_endpoint))
    if instrument_libraries:
        handle._instrumentors.extend(_instrument_libraries(provider))
    return handle


def _instrument_libraries(
    provider: TracerProvider,
) -> list[AsyncPGInstrumentor | HTTPXClientInstrumentor]:
    done: list[AsyncPGInstrumentor | HTTPXClientInstrumentor] = []
    for instrumentor in (AsyncPGInstrumentor(), HTTPXClientInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=provider)
            done.append(instrumentor)
    return done


def current_trace_id() -> str | None:
    """The active trace id as 32 hex chars (for ``X-Trace-Id`` and response bodies)."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None
