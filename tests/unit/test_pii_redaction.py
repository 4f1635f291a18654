"""No patient data on spans or in logs: the redaction rules, the exporter guard, JSON logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from adapters.telemetry.logging import JsonFormatter, RedactionFilter, configure_logging
from adapters.telemetry.redaction import (
    EMAIL_MASK,
    PHONE_MASK,
    REDACTED,
    _mask_all,
    is_sensitive_key,
    redact_any,
    redact_text,
)
from adapters.telemetry.tracing import RedactingSpanExporter

PHONES = [
    "0721 234 567",
    "0721234567",
    "0721-234-567",
    "0721.234.567",
    "0040721234567",
    "0040 721 234 567",
    "+40721234567",
    "+40 721-234-567",
    "+40 (721) 234 567",
    "40721234567",
    "021 123 4567",
    "0312 345 678",
    "+4915123456789",
    "004915123456789",
]


@pytest.mark.parametrize("phone", PHONES)
def test_phone_forms_are_masked_inside_text(phone: str) -> None:
    masked = redact_text(f"sună la {phone}, mulțumesc")
    assert masked == f"sună la {PHONE_MASK}, mulțumesc"


@pytest.mark.parametrize(
    "email", ["ion.popescu@example.com", "a+b@clinic.ro", "MARIA_I@sub.domain.co.uk"]
)
def test_emails_are_masked(email: str) -> None:
    assert redact_text(f"<{email}>") == f"<{EMAIL_MASK}>"


@pytest.mark.parametrize(
    "kept",
    [
        "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
        "patient 3f2b8c1e-9d4a-4e1b-8f0a-1b2c3d4e5f60",
        "2025-03-14T10:30:00+02:00",
        "programare 14.03.2025 10:30",
        "position 123456 version 7",
        "took 0.004512 s, 202 events",
        "GET /patients/{patient_id}",
        "SELECT * FROM events WHERE stream_id = $1 AND version > $2",
    ],
)
def test_ids_timestamps_and_numbers_are_kept(kept: str) -> None:
    assert redact_text(kept) == kept


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        ("/patients/%2B40721234567", f"/patients/{PHONE_MASK}"),
        ("/search/0721%20234%20567/x", f"/search/{PHONE_MASK}/x"),
        ("/by-email/ion%40example.com", f"/by-email/{EMAIL_MASK}"),
        ("/q?name=Ion%20Popescu&x=1", f"/q?name={REDACTED}&x=1"),
    ],
)
def test_url_encoded_phones_and_emails_are_masked(encoded: str, expected: str) -> None:
    assert redact_text(encoded) == expected


def test_sensitive_query_parameters_lose_their_values() -> None:
    url = "https://api/patients?firstName=Ion&last_name=Popescu&clinic=c1&email=x%40y.ro"
    assert redact_text(url) == (
        f"https://api/patients?firstName={REDACTED}&last_name={REDACTED}&clinic=c1&email={REDACTED}"
    )


@pytest.mark.parametrize(
    ("key", "sensitive"),
    [
        ("phone", True),
        ("patient.firstName", True),
        ("last_name", True),
        ("dateOfBirth", True),
        ("notes", True),
        ("address", True),
        ("client.address", True),
        ("net.peer.ip", True),
        ("server.address", False),
        ("http.route", False),
        ("medicalcor.patient_id", False),
        ("db.statement", False),
    ],
)
def test_sensitive_keys(key: str, sensitive: bool) -> None:
    assert is_sensitive_key(key) is sensitive


def test_nested_values_are_redacted_by_key_and_pattern() -> None:
    payload = {
        "patientId": "p-1",
        "updates": {"firstName": "Ion", "phone": "0721234567", "tags": ["vip", "0722 111 222"]},
        "message": "scrie la ion@example.com",
    }
    assert redact_any(payload) == {
        "patientId": "p-1",
        "updates": {"firstName": REDACTED, "phone": REDACTED, "tags": ["vip", PHONE_MASK]},
        "message": f"scrie la {EMAIL_MASK}",
    }


def test_exported_spans_carry_no_patient_data_but_keep_their_identity() -> None:
    sink = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(sink)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("lookup +40721234567") as span:
        span.set_attribute("url.full", "https://waba.360dialog.io/v1/contacts?phone=0721234567")
        span.set_attribute("patient.first_name", "Ion")
        span.set_attribute("db.statement", "SELECT 1 WHERE email = 'ion@example.com'")
        span.set_attribute("medicalcor.patient_id", "p-42")
        try:
            raise ValueError("no patient with phone 0721 234 567")
        except ValueError as exc:
            span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, "lookup failed for ion@example.com"))
    [exported] = sink.get_finished_spans()
    dumped = exported.to_json()
    for leaked in ("40721234567", "0721234567", "0721 234 567", "ion@example.com", '"Ion"'):
        assert leaked not in dumped, leaked
    assert exported.context == span.get_span_context()
    assert exported.attributes["medicalcor.patient_id"] == "p-42"
    assert exported.attributes["patient.first_name"] == REDACTED
    assert exported.events[0].name == "exception"
    assert PHONE_MASK in str(exported.events[0].attributes["exception.message"])
    assert exported.status.status_code is StatusCode.ERROR


# --- logs ---------------------------------------------------------------------------------


@pytest.fixture
def log_stream() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactionFilter())
    handler.setFormatter(JsonFormatter("medicalcor-test"))
    logger = logging.getLogger("medicalcor.test.pii")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_log_lines_are_json_with_masked_message_args_and_extras(
    log_stream: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = log_stream
    logger.info(
        "lead %s scored %d",
        "0721 234 567",
        5,
        extra={"phone": "+40721234567", "clinic": "c1", "detail": "mail ion@example.com"},
    )
    [line] = lines(stream)
    assert line["message"] == f"lead {PHONE_MASK} scored 5"
    assert line["phone"] == REDACTED
    assert line["clinic"] == "c1"
    assert line["detail"] == f"mail {EMAIL_MASK}"
    assert line["level"] == "INFO" and line["service"] == "medicalcor-test"
    assert "0721" not in stream.getvalue()


def test_exception_text_is_masked(log_stream: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = log_stream
    try:
        raise KeyError("patient +40 721 234 567 not found")
    except KeyError:
        logger.exception("lookup failed")
    [line] = lines(stream)
    assert "KeyError" in str(line["exception"])
    assert "721" not in stream.getvalue()


def test_log_lines_carry_the_active_trace(
    log_stream: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = log_stream
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("req") as span:
        logger.info("inside")
    logger.info("outside")
    inside, outside = lines(stream)
    ctx = span.get_span_context()
    assert inside["traceId"] == format(ctx.trace_id, "032x")
    assert inside["spanId"] == format(ctx.span_id, "016x")
    assert "traceId" not in outside


def test_configure_logging_sends_uvicorn_access_lines_through_the_filter() -> None:
    root, access = logging.getLogger(), logging.getLogger("uvicorn.access")
    saved = (root.handlers[:], root.level, access.handlers[:], access.propagate, access.level)
    access.handlers = [logging.StreamHandler(io.StringIO())]  # as uvicorn's dictConfig does
    access.propagate = False
    access.setLevel(logging.INFO)  # uvicorn sets it from its log_level
    stream = io.StringIO()
    try:
        configure_logging("medicalcor-api", "INFO", stream=stream)
        access.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:50000",
            "GET",
            "/patients/%2B40721234567?email=ion@example.com",
            "1.1",
            200,
        )
    finally:
        root.handlers, access.handlers = saved[0], saved[2]
        root.setLevel(saved[1])
        access.propagate = saved[3]
        access.setLevel(saved[4])
    [line] = lines(stream)
    assert line["logger"] == "uvicorn.access"
    assert (
        line["message"]
        == f'127.0.0.1:50000 - "GET /patients/{PHONE_MASK}?email={REDACTED} HTTP/1.1" 200'
    )


def test_the_fast_path_only_skips_texts_no_rule_would_change() -> None:
    """``redact_text`` returns early unless a marker or eight close digits are present;
    over random texts built from what the rules look for, it masks exactly as the
    rules themselves do."""
    import random

    rng = random.Random(20260525)
    pieces = [*"0123456789", " ", "-", ".", "(", ")", "+", "/", ":", "a", "x", "_", "00", "40"]
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 24)))
        assert redact_text(text) == _mask_all(text), text
    for phone in PHONES:
        assert redact_text(f"id c3246f535f45454b {phone}") == _mask_all(
            f"id c3246f535f45454b {phone}"
        )
        assert PHONE_MASK in redact_text(phone)


def test_the_fast_path_keeps_common_span_texts_as_they_are() -> None:
    for text in (
        "http://127.0.0.1:8000/ai/execute",
        "python-httpx/0.28.1",
        "c3246f535f45454b833f9799e0f56d16",
        "patient-pat-1234",
    ):
        assert redact_text(text) is text
