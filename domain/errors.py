"""The domain's error hierarchy.

Every error carries a machine-readable ``code`` an LLM or REST client can act on,
a human message and structured ``details``. HTTP and tool surfaces map these in
one place; nothing else invents error shapes.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """Base of every error the clinic's model raises on purpose."""

    code: ClassVar[str] = "EXECUTION_ERROR"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        """The error as the gateway's ``{code, message, details}`` object."""
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidArguments(DomainError):
    """Input did not validate. ``details.errors`` lists ``{path, message, expected}``."""

    code = "INVALID_ARGUMENTS"
    http_status = 422


class MissingArguments(DomainError):
    """A call lacks required arguments. ``details.missing`` lists JSON paths to ask for."""

    code = "MISSING_ARGUMENTS"
    http_status = 422


class NotFound(DomainError):
    code = "NOT_FOUND"
    http_status = 404


class Conflict(DomainError):
    """A business rule conflict (slot taken, closed lead, already cancelled)."""

    code = "CONFLICT"
    http_status = 409


class ConcurrencyConflict(Conflict):
    """An append's expected version did not match the stream's version."""

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, expected {expected}",
            stream_id=stream_id,
            expected_version=expected,
            actual_version=actual,
        )


class IdempotencyKeyReused(Conflict):
    """The same idempotency key arrived with different content."""


class ConsentRequired(DomainError):
    """A consent the action needs is missing. ``details`` says which and what to ask."""

    code = "CONSENT_REQUIRED"
    http_status = 409


class Forbidden(DomainError):
    code = "FORBIDDEN"
    http_status = 403


class RateLimited(DomainError):
    code = "RATE_LIMITED"
    http_status = 429


class FunctionNotFound(DomainError):
    code = "FUNCTION_NOT_FOUND"
    http_status = 404


class NoIntentDetected(DomainError):
    code = "NO_INTENT_DETECTED"
    http_status = 422


class ExecutionError(DomainError):
    code = "EXECUTION_ERROR"
    http_status = 502


class ServiceUnavailable(DomainError):
    """A dependency (the database, Temporal) is briefly unreachable: retry the request.

    Nothing is known to have happened; a retry with the same Idempotency-Key is safe
    (every effect is keyed by it). ``details.retryAfter`` is the suggested wait in seconds.
    """

    code = "SERVICE_UNAVAILABLE"
    http_status = 503
