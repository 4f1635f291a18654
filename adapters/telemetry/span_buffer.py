"""A bounded in-process store of recent traces, fed by a span processor.

``/diagnostics/traces`` answers from here without any I/O. The buffer keeps at most
``max_traces`` traces (least recently updated evicted first) and ``max_spans`` spans
per trace; spans are redacted before they are stored (``redaction.py``), so the
buffer never holds patient data. It only sees the spans this process ended: a trace
that continues in the worker shows the API's part here and the whole in the OTLP
backend.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import StatusCode

from adapters.telemetry.redaction import redact_attributes, redact_text

CORRELATION_ID_ATTR = "medicalcor.correlation_id"
CLINIC_ID_ATTR = "medicalcor.clinic_id"
"""Set on the server span once the caller is authenticated; traces are clinic-scoped."""


@dataclass(frozen=True)
class SpanRecord:
    """One finished span, redacted, in the shape ``/diagnostics/traces/{id}`` returns."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status: str
    status_message: str | None
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    service: str | None

    @property
    def duration_ms(self) -> float:
        """Wall time of the span in milliseconds."""
        return (self.end_ns - self.start_ns) / 1e6

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (camelCase keys, like every API body)."""
        return {
            "traceId": self.trace_id,
            "spanId": self.span_id,
            "parentSpanId": self.parent_span_id,
            "name": self.name,
            "kind": self.kind,
            "service": self.service,
            "startTimeUnixNano": self.start_ns,
            "durationMs": round(self.duration_ms, 3),
            "status": self.status,
            "statusMessage": self.status_message,
            "attributes": self.attributes,
            "events": self.events,
        }


def span_record(span: ReadableSpan) -> SpanRecord | None:
    """Redacted record of a finished SDK span (``None`` for spans without context)."""
    ctx = span.context
    if ctx is None or span.start_time is None or span.end_time is None:
        return None
    status = span.status.status_code
    return SpanRecord(
        trace_id=format(ctx.trace_id, "032x"),
        span_id=format(ctx.span_id, "016x"),
        parent_span_id=format(span.parent.span_id, "016x") if span.parent else None,
        name=redact_text(span.name),
        kind=span.kind.name.lower(),
        start_ns=span.start_time,
        end_ns=span.end_time,
        status="error" if status is StatusCode.ERROR else "ok",
        status_message=redact_text(span.status.description or "") or None,
        attributes=redact_attributes(span.attributes),
        events=[
            {
                "name": e.name,
                "timeUnixNano": e.timestamp,
                "attributes": redact_attributes(e.attributes),
            }
            for e in span.events
        ],
        service=_service_name(span),
    )


def _service_name(span: ReadableSpan) -> str | None:
    value = span.resource.attributes.get("service.name")
    return str(value) if value is not None else None


@dataclass
class _Trace:
    trace_id: str
    spans: list[SpanRecord] = field(default_factory=list)
    dropped: int = 0
    correlation_id: str | None = None
    clinics: set[str] = field(default_factory=set)

    def visible_to(self, clinic_id: str | None) -> bool:
        """Every trace for operators (None); only its own clinic's traces for a clinic."""
        return clinic_id is None or self.clinics == {clinic_id}

    def add(self, record: SpanRecord, max_spans: int) -> None:
        if len(self.spans) >= max_spans:
            self.dropped += 1
        else:
            self.spans.append(record)
        clinic = record.attributes.get(CLINIC_ID_ATTR)
        if clinic:
            self.clinics.add(str(clinic))
        corr = record.attributes.get(CORRELATION_ID_ATTR)
        if corr and self.correlation_id is None:
            self.correlation_id = str(corr)

    def summary(self) -> dict[str, Any]:
        start = min(s.start_ns for s in self.spans)
        end = max(s.end_ns for s in self.spans)
        root = _root(self.spans)
        return {
            "traceId": self.trace_id,
            "rootName": root.name,
            "service": root.service,
            "startTimeUnixNano": start,
            "durationMs": round((end - start) / 1e6, 3),
            "status": self.status,
            "spanCount": len(self.spans),
            "droppedSpans": self.dropped,
            "correlationId": self.correlation_id,
        }

    @property
    def status(self) -> str:
        return "error" if any(s.status == "error" for s in self.spans) else "ok"

    @property
    def duration_ms(self) -> float:
        return (max(s.end_ns for s in self.spans) - min(s.start_ns for s in self.spans)) / 1e6


def _root(spans: list[SpanRecord]) -> SpanRecord:
    """The local entry span: no parent, or a parent this process did not record."""
    ids = {s.span_id for s in spans}
    local_roots = [s for s in spans if s.parent_span_id is None or s.parent_span_id not in ids]
    return min(local_roots or spans, key=lambda s: s.start_ns)


class SpanBuffer:
    """Recent traces by id, bounded, thread-safe, newest last."""

    def __init__(self, max_traces: int = 2000, max_spans: int = 256) -> None:
        if max_traces < 1 or max_spans < 1:
            raise ValueError("max_traces and max_spans must be positive")
        self.max_traces = max_traces
        self.max_spans = max_spans
        self._traces: OrderedDict[str, _Trace] = OrderedDict()
        self._lock = threading.Lock()
        self._span_count = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._traces)

    def add(self, record: SpanRecord) -> None:
        """Store one span; evicts the least recently updated trace when full."""
        with self._lock:
            trace = self._traces.get(record.trace_id)
            if trace is None:
                trace = self._traces[record.trace_id] = _Trace(record.trace_id)
            else:
                self._traces.move_to_end(record.trace_id)
            before = len(trace.spans)
            trace.add(record, self.max_spans)
            self._span_count += len(trace.spans) - before
            while len(self._traces) > self.max_traces:
                _, oldest = self._traces.popitem(last=False)
                self._span_count -= len(oldest.spans)
                self.evicted += 1

    def get(self, trace_id: str, *, clinic_id: str | None = None) -> dict[str, Any] | None:
        """The trace's summary and its spans in start order, or ``None``.

        With ``clinic_id``, a trace of another clinic (or of none) is ``None`` too."""
        with self._lock:
            trace = self._traces.get(trace_id.lower())
            if trace is None or not trace.visible_to(clinic_id):
                return None
            spans = sorted(trace.spans, key=lambda s: s.start_ns)
            summary = trace.summary()
        return {**summary, "spans": [s.to_dict() for s in spans]}

    def search(
        self,
        *,
        min_duration_ms: float | None = None,
        status: str | None = None,
        correlation_id: str | None = None,
        limit: int = 20,
        clinic_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Summaries of matching traces, most recently updated first (of ``clinic_id``)."""
        out: list[dict[str, Any]] = []
        with self._lock:
            for trace in reversed(self._traces.values()):
                if len(out) >= limit:
                    break
                if not trace.visible_to(clinic_id):
                    continue
                if correlation_id is not None and trace.correlation_id != correlation_id:
                    continue
                if status is not None and trace.status != status:
                    continue
                if min_duration_ms is not None and trace.duration_ms < min_duration_ms:
                    continue
                out.append(trace.summary())
        return out

    def stats(self) -> dict[str, int]:
        """Size figures for diagnostics."""
        return {
            "traces": len(self._traces),
            "spans": self._span_count,
            "maxTraces": self.max_traces,
            "evictedTraces": self.evicted,
        }


class SpanBufferProcessor(SpanProcessor):
    """Feeds every ended span, redacted, into a :class:`SpanBuffer`."""

    def __init__(self, buffer: SpanBuffer) -> None:
        self.buffer = buffer

    def on_end(self, span: ReadableSpan) -> None:
        """Record the span; never raises into the instrumented code."""
        try:
            record = span_record(span)
        except Exception:  # a broken attribute must not break the request being traced
            return
        if record is not None:
            self.buffer.add(record)
