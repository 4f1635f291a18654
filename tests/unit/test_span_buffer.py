"""The in-process span buffer behind /diagnostics/traces, fed by a real TracerProvider."""

from __future__ import annotations

import threading
import time

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, Status, StatusCode, Tracer, set_span_in_context

from adapters.telemetry.span_buffer import CORRELATION_ID_ATTR, SpanBuffer, SpanBufferProcessor


def tracer_for(buffer: SpanBuffer) -> Tracer:
    provider = TracerProvider()
    provider.add_span_processor(SpanBufferProcessor(buffer))
    return provider.get_tracer("test")


def trace_id_of(span: object) -> str:
    return format(span.get_span_context().trace_id, "032x")  # type: ignore[attr-defined]


def test_a_trace_groups_its_spans_in_start_order_with_the_root_summarised() -> None:
    buffer = SpanBuffer()
    tracer = tracer_for(buffer)
    with tracer.start_as_current_span("POST /ai/execute") as root:
        root.set_attribute(CORRELATION_ID_ATTR, "corr-1")
        with (
            tracer.start_as_current_span("command ScoreLead"),
            tracer.start_as_current_span("INSERT medicalcor"),
        ):
            time.sleep(0.002)
    found = buffer.get(trace_id_of(root))
    assert found is not None
    assert [s["name"] for s in found["spans"]] == [
        "POST /ai/execute",
        "command ScoreLead",
        "INSERT medicalcor",
    ]
    assert found["rootName"] == "POST /ai/execute"
    assert found["spanCount"] == 3 and found["status"] == "ok"
    assert found["correlationId"] == "corr-1"
    assert found["durationMs"] >= 2.0
    parent_ids = [s["parentSpanId"] for s in found["spans"]]
    assert parent_ids[0] is None and parent_ids[1] == found["spans"][0]["spanId"]


def test_unknown_trace_is_none() -> None:
    assert SpanBuffer().get("0" * 32) is None


def test_oldest_traces_are_evicted_when_full() -> None:
    buffer = SpanBuffer(max_traces=3)
    tracer = tracer_for(buffer)
    ids = []
    for i in range(5):
        with tracer.start_as_current_span(f"req {i}") as span:
            ids.append(trace_id_of(span))
    assert len(buffer) == 3
    assert [buffer.get(t) is not None for t in ids] == [False, False, True, True, True]
    assert buffer.stats() == {"traces": 3, "spans": 3, "maxTraces": 3, "evictedTraces": 2}


def test_spans_beyond_the_per_trace_cap_are_counted_not_kept() -> None:
    buffer = SpanBuffer(max_spans=4)
    tracer = tracer_for(buffer)
    with tracer.start_as_current_span("root") as root:
        for i in range(10):
            with tracer.start_as_current_span(f"child {i}"):
                pass
    found = buffer.get(trace_id_of(root))
    assert found is not None
    assert found["spanCount"] == 4 and found["droppedSpans"] == 7


def test_search_filters_by_duration_status_correlation_and_limit() -> None:
    buffer = SpanBuffer()
    tracer = tracer_for(buffer)
    with tracer.start_as_current_span("fast") as fast:
        fast.set_attribute(CORRELATION_ID_ATTR, "corr-a")
    with tracer.start_as_current_span("slow") as slow:
        slow.set_attribute(CORRELATION_ID_ATTR, "corr-b")
        time.sleep(0.03)
    with tracer.start_as_current_span("failed") as failed:
        failed.set_status(Status(StatusCode.ERROR, "bad"))
    names = [t["rootName"] for t in buffer.search()]
    assert names == ["failed", "slow", "fast"]  # most recent first
    assert [t["rootName"] for t in buffer.search(min_duration_ms=25)] == ["slow"]
    assert [t["rootName"] for t in buffer.search(status="error")] == ["failed"]
    assert [t["rootName"] for t in buffer.search(status="ok")] == ["slow", "fast"]
    assert [t["rootName"] for t in buffer.search(correlation_id="corr-a")] == ["fast"]
    assert [t["rootName"] for t in buffer.search(limit=1)] == ["failed"]
    assert buffer.search(correlation_id="nope") == []


def test_a_trace_updated_later_becomes_most_recent_and_survives_eviction() -> None:
    buffer = SpanBuffer(max_traces=2)
    tracer = tracer_for(buffer)
    with tracer.start_as_current_span("long") as long_root:
        with tracer.start_as_current_span("first child"):
            pass
        with tracer.start_as_current_span("other"):
            pass  # same trace: context is current
    long_id = trace_id_of(long_root)
    with tracer.start_as_current_span("b"):
        pass
    # a late span of the first trace refreshes it
    parent = set_span_in_context(NonRecordingSpan(long_root.get_span_context()))
    with tracer.start_as_current_span("late", context=parent):
        pass
    with tracer.start_as_current_span("c"):
        pass
    assert buffer.get(long_id) is not None
    assert [t["rootName"] for t in buffer.search()][-1] == "long"


def test_spans_are_redacted_before_they_are_stored() -> None:
    buffer = SpanBuffer()
    tracer = tracer_for(buffer)
    with tracer.start_as_current_span("GET /patients/0721234567") as span:
        span.set_attribute("http.url", "http://api/patients?phone=%2B40721234567&x=1")
        span.set_attribute("patient.email", "ion@example.com")
        span.set_attribute("medicalcor.patient_id", "p-123")
        span.add_event("note", {"message": "client ion@example.com called from 0722 111 222"})
        span.set_status(Status(StatusCode.ERROR, "no slot for +40 721 234 567"))
    found = buffer.get(trace_id_of(span))
    assert found is not None
    text = repr(found)
    for leaked in ("0721234567", "ion@example.com", "40721234567", "0722 111 222", "721 234"):
        assert leaked not in text, leaked
    stored = found["spans"][0]
    assert stored["attributes"]["medicalcor.patient_id"] == "p-123"  # pseudonymous ids stay
    assert stored["attributes"]["patient.email"] == "[redacted]"
    assert stored["status"] == "error"


def test_concurrent_writers_keep_the_bounds() -> None:
    buffer = SpanBuffer(max_traces=50)
    tracer = tracer_for(buffer)

    def work() -> None:
        for _ in range(200):
            with tracer.start_as_current_span("r"), tracer.start_as_current_span("c"):
                pass

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = buffer.stats()
    assert stats["traces"] == 50
    # a child may end before its root and the trace be evicted in between, so a
    # trace can be created twice: evictions are at least, not exactly, 1600 - 50
    assert stats["evictedTraces"] >= 8 * 200 - 50
    assert stats["spans"] == sum(t["spanCount"] for t in buffer.search(limit=1000)) <= 100


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SpanBuffer(max_traces=0)


def test_a_clinics_view_holds_only_traces_tagged_with_that_clinic_alone() -> None:
    from adapters.telemetry.span_buffer import CLINIC_ID_ATTR, SpanBuffer, SpanRecord

    buffer = SpanBuffer()

    def span(trace_id: str, span_id: str, clinic: str | None) -> SpanRecord:
        attrs = {CLINIC_ID_ATTR: clinic} if clinic else {}
        return SpanRecord(
            trace_id=trace_id, span_id=span_id, parent_span_id=None, name="POST",
            kind="server", start_ns=1, end_ns=2, status="ok", status_message=None,
            attributes=attrs, events=[], service="medicalcor",
        )  # fmt: skip

    buffer.add(span("a" * 32, "1" * 16, "clinic-a"))
    buffer.add(span("b" * 32, "2" * 16, "clinic-b"))
    buffer.add(span("c" * 32, "3" * 16, None))
    assert [t["traceId"] for t in buffer.search(clinic_id="clinic-a")] == ["a" * 32]
    assert buffer.get("b" * 32, clinic_id="clinic-a") is None
    assert buffer.get("c" * 32, clinic_id="clinic-a") is None
    assert len(buffer.search()) == 3
