"""Figures for the diagnostics snapshot, computed from metric samples (no I/O).

``Samples`` maps a sample name (``medicalcor_commands_executed_total``,
``..._bucket``) to its ``(labels, value)`` pairs, as read from the metric objects or,
in multiprocess mode, from every worker's files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Samples = dict[str, list[tuple[Mapping[str, str], float]]]

_Where = Callable[[Mapping[str, str]], bool] | None


def total(samples: Samples, name: str, where: _Where = None) -> float:
    """Sum of the samples of ``name`` whose labels satisfy ``where``."""
    return sum((v for labels, v in samples.get(name, []) if where is None or where(labels)), 0.0)


def by_label(samples: Samples, name: str, label: str, where: _Where = None) -> dict[str, float]:
    """Sums of ``name`` grouped by one label."""
    out: dict[str, float] = {}
    for labels, value in samples.get(name, []):
        if where is None or where(labels):
            key = labels.get(label, "")
            out[key] = out.get(key, 0.0) + value
    return out


def quantile_ms(samples: Samples, histogram: str, q: float, where: _Where = None) -> float | None:
    """Prometheus-style ``histogram_quantile`` over all series of ``histogram`` (ms)."""
    buckets: dict[float, float] = {}
    for labels, value in samples.get(f"{histogram}_bucket", []):
        if where is None or where(labels):
            le = float(labels["le"])
            buckets[le] = buckets.get(le, 0.0) + value
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total == 0:
        return None
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return round(prev_bound * 1000, 3)
            within = (rank - prev_count) / (count - prev_count) if count > prev_count else 1.0
            return round((prev_bound + (bound - prev_bound) * within) * 1000, 3)
        prev_bound, prev_count = bound, count
    return round(prev_bound * 1000, 3)


def business(s: Samples) -> dict[str, Any]:
    """Lead, appointment and message figures."""
    created = total(s, "medicalcor_leads_created_total")
    converted = total(s, "medicalcor_leads_converted_total")
    return {
        "scope": "since metrics start",
        "leadsCreated": created,
        "leadsByChannel": by_label(s, "medicalcor_leads_created_total", "channel"),
        "leadsScored": by_label(s, "medicalcor_leads_scored_total", "classification"),
        "leadsConverted": converted,
        "conversionRate": round(converted / created, 4) if created else None,
        "appointmentsScheduled": total(s, "medicalcor_appointments_scheduled_total"),
        "appointmentsCancelled": total(s, "medicalcor_appointments_cancelled_total"),
        "messagesReceived": total(s, "medicalcor_messages_received_total"),
        "messagesSent": total(s, "medicalcor_messages_sent_total"),
    }


def is_failure(labels: Mapping[str, str]) -> bool:
    """Outcome labels other than ``success``."""
    return labels.get("status") != "success"


def cqrs(s: Samples) -> dict[str, Any]:
    """Commands, queries, cache and event store figures."""
    hits = total(s, "medicalcor_cache_requests_total", lambda lb: lb.get("result") == "hit")
    lookups = total(s, "medicalcor_cache_requests_total")
    return {
        "commands": {
            "total": total(s, "medicalcor_commands_executed_total"),
            "failed": total(s, "medicalcor_commands_executed_total", is_failure),
            "byType": by_label(s, "medicalcor_commands_executed_total", "type"),
            "p95Ms": quantile_ms(s, "medicalcor_command_duration_seconds", 0.95),
        },
        "queries": {
            "total": total(s, "medicalcor_queries_executed_total"),
            "cached": total(
                s, "medicalcor_queries_executed_total", lambda lb: lb.get("cached") == "true"
            ),
            "p95Ms": quantile_ms(s, "medicalcor_query_duration_seconds", 0.95),
        },
        "cache": {
            "lookups": lookups,
            "hits": hits,
            "byResult": by_label(s, "medicalcor_cache_requests_total", "result"),
            "hitRate": round(hits / lookups, 4) if lookups else None,
        },
        "eventStore": {
            "eventsAppended": total(s, "medicalcor_events_appended_total"),
            "appendP95Ms": quantile_ms(
                s,
                "medicalcor_event_store_latency_seconds",
                0.95,
                lambda lb: lb.get("operation") == "append",
            ),
        },
    }


def ai(s: Samples) -> dict[str, Any]:
    """Gateway function calls, intents and LLM tokens."""
    return {
        "functionCalls": total(s, "medicalcor_ai_function_calls_total"),
        "failed": total(s, "medicalcor_ai_function_calls_total", is_failure),
        "byFunction": by_label(s, "medicalcor_ai_function_calls_total", "function"),
        "p95Ms": quantile_ms(s, "medicalcor_ai_function_duration_seconds", 0.95),
        "intentsByConfidence": by_label(
            s, "medicalcor_ai_intent_detections_total", "confidence_bucket"
        ),
        "tokens": by_label(s, "medicalcor_ai_tokens_total", "kind"),
    }


def projections(s: Samples) -> dict[str, Any]:
    """Projection lag as this process's gauges last saw it."""
    events = by_label(s, "medicalcor_projection_lag_events", "projection")
    seconds = by_label(s, "medicalcor_projection_lag_seconds", "projection")
    return {
        "source": "gauges of this process",
        "lag": {p: {"events": events[p], "seconds": seconds.get(p)} for p in events},
    }


def workflows(s: Samples) -> dict[str, Any]:
    """Workflow starts and ends, activity outcomes (this process's counters)."""
    return {
        "started": total(s, "medicalcor_workflows_started_total"),
        "completedByStatus": by_label(s, "medicalcor_workflows_completed_total", "status"),
        "activitiesByStatus": by_label(s, "medicalcor_activities_total", "status"),
        "activitiesFailed": total(
            s, "medicalcor_activities_total", lambda lb: lb.get("status") == "failed"
        ),
    }
