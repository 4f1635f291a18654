"""Small helpers the aggregates share."""

from __future__ import annotations

from datetime import datetime

from domain.aggregate import Aggregate
from domain.errors import NotFound


def require_exists(agg: Aggregate, what: str, **details: object) -> None:
    """Raise ``NotFound`` naming ``what`` when the aggregate's stream is empty."""
    if not agg.exists:
        raise NotFound(f"{what} {agg.id!r} not found", id=agg.id, **details)


def iso(value: datetime | None) -> str | None:
    """An aware datetime as ISO 8601 text (snapshots hold JSON-ready values)."""
    return value.isoformat() if value is not None else None


def from_iso(value: str | None) -> datetime | None:
    """ISO 8601 text back to an aware datetime."""
    return datetime.fromisoformat(value) if value is not None else None
