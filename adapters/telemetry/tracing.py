"""OpenTelemetry tracing: provider, span buffer, PII guard, OTLP export, instrumentation.

``setup_tracing`` is called by each process's composition root (API, worker,
projector). It attaches, to the process's global ``TracerProvider`` (created by the
first call and kept for the process's life: the Temporal ``TracingInterceptor`` and
the command bus trace through the global one), processors that send the spans to

* the in-process :class:`SpanBuffer` (``/diagnostics/traces``), redacted on entry;
* an OTLP exporter when an endpoint is given (``OTEL_EXPORTER_OTLP_ENDPOINT`` read
  by the settings), behind :class:`RedactingSpanExporter`, so no phone, e-mail or
  personal field leaves the process;

and instruments asyncpg and httpx with the official instrumentations. The returned
handle's ``shutdown()`` detaches all of it again (an app's lifespan ends; the next
app of a test process attaches its own). FastAPI is instrumented per app by
``api.observability.install_observability``. Incoming W3C ``traceparent`` headers
are honoured through the default global propagator (tracecontext + baggage), which
the FastAPI instrumentation uses.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import Status

from adapters.telemetry.redaction import redact_attributes, redact_text
from adapters.telemetry.span_buffer import SpanBuffer, SpanBufferProcessor

log = logging.getLogger(__name__)

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


class SpanProcessorSet(SpanProcessor):
    """Forwards to a replaceable set of processors (a tuple: lock-free reads).

    The SDK's provider can add processors but never remove them; the process-wide
    provider holds one of these so each :class:`TracingHandle` can attach its
    processors and take them away again at shutdown.
    """

    def __init__(self) -> None:
        self._processors: tuple[SpanProcessor, ...] = ()
        self._lock = threading.Lock()

    def add(self, processor: SpanProcessor) -> None:
        """Start feeding ``processor``."""
        with self._lock:
            self._processors += (processor,)

    def remove(self, processor: SpanProcessor) -> None:
        """Stop feeding ``processor`` (it is not shut down here)."""
        with self._lock:
            self._processors = tuple(p for p in self._processors if p is not processor)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Forward the start of a span."""
        for processor in self._processors:
            processor.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        """Forward the end of a span."""
        for processor in self._processors:
            processor.on_end(span)

    def shutdown(self) -> None:
        """Shut down every attached processor (the provider's exit hook calls this)."""
        for processor in self._processors:
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush every attached processor."""
        return all(p.force_flush(timeout_millis) for p in self._processors)


@dataclass
class _ProcessProvider:
    provider: TracerProvider
    processors: SpanProcessorSet


_process: _ProcessProvider | None = None
_process_lock = threading.Lock()


def _process_provider(resource: Resource, sampler: Sampler) -> _ProcessProvider:
    """The process's global provider, created and installed on first use.

    OpenTelemetry lets a process set its global provider once, and libraries
    (the Temporal ``TracingInterceptor``, the command bus) take their tracers from
    it. A provider that a finished app shut down would keep swallowing their spans,
    so the global one lives as long as the process and apps come and go by
    attaching and detaching processors. Its resource and sampler are the first
    caller's.
    """
    global _process
    with _process_lock:
        if _process is None:
            provider = TracerProvider(resource=resource, sampler=sampler)
            processors = SpanProcessorSet()
            provider.add_span_processor(processors)
            trace.set_tracer_provider(provider)
            if trace.get_tracer_provider() is not provider:
                log.warning("a global tracer provider was set elsewhere; spans may go there")
            _process = _ProcessProvider(provider, processors)
        return _process


@dataclass
class TracingHandle:
    """What ``setup_tracing`` built; ``shutdown()`` flushes and undoes instrumentation."""

    provider: TracerProvider
    buffer: SpanBuffer
    exporting: bool
    _processors: SpanProcessorSet
    _owns_provider: bool
    _attached: list[SpanProcessor] = field(default_factory=list)
    _instrumentors: list[AsyncPGInstrumentor | HTTPXClientInstrumentor] = field(
        default_factory=list
    )

    def add_processor(self, processor: SpanProcessor) -> None:
        """Feed ``processor`` every span ended from now on, until ``shutdown()``."""
        self._attached.append(processor)
        self._processors.add(processor)

    def remove_processor(self, processor: SpanProcessor) -> None:
        """Detach and shut down a processor given to :meth:`add_processor`."""
        self._processors.remove(processor)
        if processor in self._attached:
            self._attached.remove(processor)
        processor.shutdown()

    def shutdown(self) -> None:
        """Flush pending exports, detach this handle's processors, remove library patches.

        A private provider (``set_global=False``) is shut down with it; the global
        one stays for the process's next app (see :func:`_process_provider`).
        """
        for instrumentor in self._instrumentors:
            instrumentor.uninstrument()
        self._instrumentors.clear()
        for processor in list(self._attached):
            self.remove_processor(processor)
        if self._owns_provider:
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
    """Build the process's tracing (see the module docstring).

    Args:
        service_name: ``service.name`` resource attribute (``medicalcor-api`` ...).
        otlp_endpoint: OTLP collector; ``None`` keeps traces in-process only.
        otlp_protocol: ``"grpc"`` (default) or ``"http/protobuf"``.
        sample_ratio: head sampling for new traces; callers' sampled flag wins.
        buffer: the span buffer to feed (a new 2000-trace buffer by default).
        exporter: an extra exporter (tests), also behind the redacting guard.
        instrument_libraries: patch asyncpg and httpx (once per process).
        set_global: use the process's global provider (created on the first call,
            kept for the process's life; ``trace.get_tracer`` users and the Temporal
            interceptor write to it) instead of a private one.
    """
    attributes: dict[str, str] = {"service.name": service_name, "service.version": service_version}
    if environment:
        attributes["deployment.environment"] = environment
    resource = Resource.create(attributes)
    sampler = ParentBased(TraceIdRatioBased(sample_ratio))
    if set_global:
        shared = _process_provider(resource, sampler)
        provider, processors, owns = shared.provider, shared.processors, False
    else:
        provider = TracerProvider(resource=resource, sampler=sampler)
        processors = SpanProcessorSet()
        provider.add_span_processor(processors)
        owns = True
    span_buffer = buffer if buffer is not None else SpanBuffer()
    handle = TracingHandle(
        provider, span_buffer, bool(otlp_endpoint), _processors=processors, _owns_provider=owns
    )
    handle.add_processor(SpanBufferProcessor(span_buffer))
    exporters = [e for e in (exporter,) if e is not None]
    if otlp_endpoint:
        exporters.append(otlp_exporter(otlp_endpoint, otlp_protocol))
    for exp in exporters:
        handle.add_processor(BatchSpanProcessor(RedactingSpanExporter(exp)))
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
