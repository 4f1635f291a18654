"""JSON structured logs with trace ids, and a filter that keeps patient data out.

``configure_logging`` (called by each entry point, never at import) replaces the
root handlers with one stream handler writing a JSON object per line::

    {"ts": "...", "level": "INFO", "logger": "api", "message": "...",
     "service": "medicalcor-api", "traceId": "...", "spanId": "...", ...extra}

:class:`RedactionFilter` runs before formatting: phones and e-mails are masked in
the message (after ``%`` interpolation) and in every extra field, and fields named
like personal data (``phone``, ``email``, ``firstName`` ...) are dropped to
``[redacted]``. Exception text is masked the same way.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from opentelemetry import trace

from adapters.telemetry.redaction import redact_text, redact_value

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class RedactionFilter(logging.Filter):
    """Masks PII in the message, the extras and the exception text of each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the log line
            message = str(record.msg)
        record.msg, record.args = redact_text(message), None
        for key, value in _extras(record).items():
            setattr(record, key, redact_value(key, value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
            record.exc_info = None  # the formatter must use the masked text
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the active trace and span ids."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """Serialise ``record`` (extras included, non-JSON values as strings)."""
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            out["traceId"] = format(ctx.trace_id, "032x")
            out["spanId"] = format(ctx.span_id, "016x")
        if record.exc_text:
            out["exception"] = record.exc_text
        elif record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        for key, value in _extras(record).items():
            out.setdefault(key, value)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure_logging(
    service: str, level: str | int = "INFO", *, stream: TextIO | None = None
) -> logging.Handler:
    """Route all logging (uvicorn's included) through one redacting JSON handler on ``stream``.

    Call from the entry point before starting uvicorn with ``log_config=None``.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactionFilter())
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    for name in UVICORN_LOGGERS:
        # uvicorn's own handlers would print raw request lines (paths with phones);
        # start uvicorn with ``log_config=None`` so it does not reinstall them
        server_logger = logging.getLogger(name)
        for old in list(server_logger.handlers):
            server_logger.removeHandler(old)
        server_logger.propagate = True
    return handler
