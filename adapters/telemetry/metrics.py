"""Prometheus metrics of MedicalCor and the small helpers the code paths call.

Every metric the dashboards expect (shared/DOMAIN.md, "Metrics the dashboards
expect") lives in :class:`Metrics`. Code paths never touch metric objects; they call
``record_command(...)``, ``record_query(...)``, ``record_event_appended(...)`` and
friends, which sanitise labels (``labels.py``) and update the process-wide metrics.

Lifecycle (no side effects at import):
    The metric objects are created on the first ``get_metrics()`` call, registered in
    prometheus-client's default ``REGISTRY`` (the standard place, so ``/metrics``,
    ``start_http_server`` and the process collectors agree). Tests may build a
    private ``Metrics(CollectorRegistry())``.

Multiprocess (several uvicorn workers):
    prometheus-client decides at import whether values live in memory or in mmap
    files, from ``PROMETHEUS_MULTIPROC_DIR``. So the variable must be set in the
    environment before the processes start (the CLI does it, and calls
    :func:`prepare_multiprocess_dir` once, before forking, to wipe stale files).
    ``/metrics`` then aggregates all workers' files through a fresh registry holding
    a ``MultiProcessCollector`` (:func:`exposition_registry`); each worker calls
    :func:`mark_process_dead` at shutdown so its ``live*`` gauges disappear.
    Gauges declare how workers combine: lag gauges keep the most recent value of a
    live process, health-check gauges the minimum.

Worker and projector processes expose the same registry on their own port with
:func:`start_metrics_server`, called from their entry points only.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from adapters.telemetry.labels import (
    CACHE_RESULTS,
    CHANNELS,
    CLASSIFICATIONS,
    HTTP_METHODS,
    OTHER,
    LabelGuard,
    confidence_bucket,
    enum_label,
    status_label,
)
from adapters.telemetry.recent import external_outcomes

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Request-scale latencies: sub-millisecond diagnostics up to slow uploads.
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Calls that leave the process (LLM, WhatsApp, HubSpot) or run as activities.
SLOW_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

CANCEL_REASONS = frozenset(
    {
        "patient_request",
        "rescheduled",
        "doctor_unavailable",
        "clinic_closed",
        "no_show",
        "duplicate",
        "payment",
        "medical",
    }
)


class Metrics:
    """All MedicalCor metric objects, registered in one registry."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.guard = LabelGuard()
        self.children: dict[tuple[object, ...], Any] = {}
        """Labelled children by the raw label values the ``record_*`` functions got (see
        :func:`_children`): a hot path's metrics cost one dict lookup, not the label
        guard's checks and prometheus-client's ``labels()`` each time."""
        self._build_http(registry)
        self._build_business(registry)
        self._build_platform(registry)
        self._build_ai(registry)
        self._build_workflows(registry)

    def _build_http(self, r: CollectorRegistry) -> None:
        self.http_requests = Counter(
            "http_requests_total",
            "HTTP requests by method, route template and status code.",
            ["method", "path", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request duration by method and route template.",
            ["method", "path"],
            buckets=FAST_BUCKETS,
            registry=r,
        )

    def _build_business(self, r: CollectorRegistry) -> None:
        self.leads_created = Counter(
            "medicalcor_leads_created_total",
            "Leads created, by channel and marketing source.",
            ["channel", "source"],
            registry=r,
        )
        self.leads_scored = Counter(
            "medicalcor_leads_scored_total",
            "Lead scorings by classification.",
            ["classification"],
            registry=r,
        )
        self.leads_converted = Counter(
            "medicalcor_leads_converted_total", "Leads converted to patients.", registry=r
        )
        self.appointments_scheduled = Counter(
            "medicalcor_appointments_scheduled_total",
            "Appointments scheduled by service type.",
            ["service_type"],
            registry=r,
        )
        self.appointments_cancelled = Counter(
            "medicalcor_appointments_cancelled_total",
            "Appointments cancelled by reason category.",
            ["reason"],
            registry=r,
        )
        self.messages_received = Counter(
            "medicalcor_messages_received_total",
            "Inbound messages by channel.",
            ["channel"],
            registry=r,
        )
        self.messages_sent = Counter(
            "medicalcor_messages_sent_total",
            "Outbound messages by channel and type (text, template).",
            ["channel", "type"],
            registry=r,
        )

    def _build_platform(self, r: CollectorRegistry) -> None:
        self.external_requests = Counter(
            "medicalcor_external_service_requests_total",
            "Calls to external services by service, operation and outcome.",
            ["service", "operation", "status"],
            registry=r,
        )
        self.external_duration = Histogram(
            "medicalcor_external_service_duration_seconds",
            "External service call duration.",
            ["service", "operation"],
            buckets=SLOW_BUCKETS,
            registry=r,
        )
        self.events_appended = Counter(
            "medicalcor_events_appended_total",
            "Events appended to the event store, by event type.",
            ["type"],
            registry=r,
        )
        self.event_store_latency = Histogram(
            "medicalcor_event_store_latency_seconds",
            "Event store operation latency (append, load, read_all ...).",
            ["operation"],
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.commands = Counter(
            "medicalcor_commands_executed_total",
            "Commands executed by type and outcome (success or an error code).",
            ["type", "status"],
            registry=r,
        )
        self.command_duration = Histogram(
            "medicalcor_command_duration_seconds",
            "Command handling duration by type.",
            ["type"],
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.queries = Counter(
            "medicalcor_queries_executed_total",
            "Queries executed by type and whether the cache answered.",
            ["type", "cached"],
            registry=r,
        )
        self.query_duration = Histogram(
            "medicalcor_query_duration_seconds",
            "Query handling duration by type.",
            ["type"],
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.cache_requests = Counter(
            "medicalcor_cache_requests_total",
            "Query cache lookups by query type and result (hit, miss, stale, bypass).",
            ["query", "result"],
            registry=r,
        )
        self.projection_lag_events = Gauge(
            "medicalcor_projection_lag_events",
            "Events the projection still has to apply (head position - checkpoint).",
            ["projection"],
            multiprocess_mode="livemostrecent",
            registry=r,
        )
        self.projection_lag_seconds = Gauge(
            "medicalcor_projection_lag_seconds",
            "Age of the oldest event the projection has not applied yet.",
            ["projection"],
            multiprocess_mode="livemostrecent",
            registry=r,
        )
        self.health_check_status = Gauge(
            "medicalcor_health_check_status",
            "Last result of each registered health check (1 up, 0 down).",
            ["check"],
            multiprocess_mode="livemin",
            registry=r,
        )

    def _build_ai(self, r: CollectorRegistry) -> None:
        self.ai_calls = Counter(
            "medicalcor_ai_function_calls_total",
            "Gateway function calls by function and outcome (success or error code).",
            ["function", "status"],
            registry=r,
        )
        self.ai_duration = Histogram(
            "medicalcor_ai_function_duration_seconds",
            "Gateway function execution time.",
            ["function"],
            buckets=SLOW_BUCKETS,
            registry=r,
        )
        self.ai_intents = Counter(
            "medicalcor_ai_intent_detections_total",
            "Intent detections by detected function and confidence bucket.",
            ["detected_function", "confidence_bucket"],
            registry=r,
        )
        self.ai_tokens = Counter(
            "medicalcor_ai_tokens_total",
            "LLM tokens consumed by provider and kind (input, output).",
            ["provider", "kind"],
            registry=r,
        )

    def _build_workflows(self, r: CollectorRegistry) -> None:
        self.workflows_started = Counter(
            "medicalcor_workflows_started_total",
            "Temporal workflows started by workflow type.",
            ["workflow"],
            registry=r,
        )
        self.workflows_completed = Counter(
            "medicalcor_workflows_completed_total",
            "Workflow runs ended, by type and status (completed, failed, cancelled ...).",
            ["workflow", "status"],
            registry=r,
        )
        self.activities = Counter(
            "medicalcor_activities_total",
            "Activity executions by activity type and status.",
            ["activity", "status"],
            registry=r,
        )
        self.activity_duration = Histogram(
            "medicalcor_activity_duration_seconds",
            "Activity execution duration by activity type.",
            ["activity"],
            buckets=SLOW_BUCKETS,
            registry=r,
        )
        self.outbox_relayed = Counter(
            "medicalcor_outbox_relayed_total",
            "Queued WhatsApp messages the outbox relay acted on: started (their delivery"
            " workflow, which nothing had started), expired or abandoned (recorded failed).",
            ["outcome"],
            registry=r,
        )

    def token(self, metric: str, label: str, value: object) -> str:
        """A free-form label value, made safe and bounded (see ``labels.py``)."""
        return self.guard.token(metric, label, value)

    def families(self) -> list[MetricWrapperBase]:
        """Every metric object owned by this instance."""
        return [v for v in vars(self).values() if isinstance(v, MetricWrapperBase)]


_default: Metrics | None = None
_default_lock = threading.Lock()


def get_metrics() -> Metrics:
    """The process-wide metrics, created (and registered in ``REGISTRY``) on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Metrics(REGISTRY)
    return _default


# --- helpers the code paths call -------------------------------------------------


def record_http_request(method: str, path: str, status: int, seconds: float) -> None:
    """One served HTTP request; ``path`` must be the route template or ``<unmatched>``."""
    m = get_metrics()
    meth = method.upper() if method.upper() in HTTP_METHODS else OTHER
    m.http_requests.labels(meth, path, status_label(status)).inc()
    m.http_duration.labels(meth, path).observe(seconds)


def record_lead_created(channel: str, source: str | None = None) -> None:
    """A LeadCreated event was recorded; ``source`` is the utm source, if any."""
    m = get_metrics()
    src = m.token("leads_created", "source", source.lower()) if source else "none"
    m.leads_created.labels(enum_label(channel, CHANNELS), src).inc()


def record_lead_scored(classification: str) -> None:
    """A LeadScored event: HOT, WARM, COLD or UNQUALIFIED."""
    get_metrics().leads_scored.labels(enum_label(classification, CLASSIFICATIONS, upper=True)).inc()


def record_lead_converted() -> None:
    """A LeadConverted event."""
    get_metrics().leads_converted.inc()


def record_appointment_scheduled(service_type: str) -> None:
    """An appointment was scheduled for ``service_type`` (implant, cleaning ...)."""
    m = get_metrics()
    m.appointments_scheduled.labels(m.token("appt", "service_type", service_type.lower())).inc()


def record_appointment_cancelled(reason: str | None) -> None:
    """An appointment was cancelled; free-text reasons count as ``other``."""
    label = enum_label(reason, CANCEL_REASONS) if reason else "unspecified"
    get_metrics().appointments_cancelled.labels(label).inc()


def record_message_received(channel: str) -> None:
    """An inbound message (WhatsApp webhook, call transcript ...)."""
    get_metrics().messages_received.labels(enum_label(channel, CHANNELS)).inc()


def record_message_sent(channel: str, message_type: str) -> None:
    """An outbound message handed to the provider; ``message_type`` text or template."""
    m = get_metrics()
    kind = m.token("messages_sent", "type", message_type.lower())
    m.messages_sent.labels(enum_label(channel, CHANNELS), kind).inc()


def record_external(service: str, operation: str, status: str, seconds: float) -> None:
    """One call to an external service (whatsapp, hubspot, anthropic ...).

    ``status``: ``success``, ``error``, ``timeout`` or ``http_4xx``/``http_5xx``.
    """
    m = get_metrics()
    svc = m.token("external", "service", service)
    op = m.token("external", "operation", operation)
    m.external_requests.labels(svc, op, m.token("external", "status", status)).inc()
    m.external_duration.labels(svc, op).observe(seconds)
    external_outcomes().record(svc, status == "success", seconds)


CHILDREN_MEMO_MAX = 4096
"""Entries :attr:`Metrics.children` holds at most; past it, it starts again (raw values
may be caller-chosen, e.g. an unknown function's name: the memo must stay bounded)."""


def _children(m: Metrics, key: tuple[object, ...], make: Callable[[], Any]) -> Any:
    """``make()``'s labelled children for these raw label values, made once.

    Safe to keep: the label guard maps a raw value to the same token every time (a value
    refused or over the cap is ``other`` for good), and nothing removes children.
    """
    children = m.children
    found = children.get(key)
    if found is None:
        if len(children) >= CHILDREN_MEMO_MAX:
            children.clear()
        found = children[key] = make()
    return found


def record_event_appended(event_type: str, count: int = 1) -> None:
    """``count`` events of ``event_type`` (PascalCase) were committed to the store."""
    m = get_metrics()
    _children(
        m,
        ("events_appended", event_type),
        lambda: m.events_appended.labels(m.token("events", "type", event_type)),
    ).inc(count)


def record_event_store_latency(operation: str, seconds: float) -> None:
    """Latency of one event-store operation (append, load_stream, read_all ...)."""
    m = get_metrics()
    _children(
        m,
        ("event_store_latency", operation),
        lambda: m.event_store_latency.labels(m.token("event_store", "operation", operation)),
    ).observe(seconds)


def record_command(command_type: str, status: str, seconds: float) -> None:
    """A handled command; ``status`` is ``success`` or the domain error code."""
    m = get_metrics()

    def make() -> tuple[Any, Any]:
        kind = m.token("commands", "type", command_type)
        return (
            m.commands.labels(kind, m.token("commands", "status", status)),
            m.command_duration.labels(kind),
        )

    count, duration = _children(m, ("commands", command_type, status), make)
    count.inc()
    duration.observe(seconds)


def record_query(query_type: str, cached: bool, seconds: float) -> None:
    """A handled query; ``cached`` when the answer came from the query cache."""
    m = get_metrics()

    def make() -> tuple[Any, Any]:
        kind = m.token("queries", "type", query_type)
        return (
            m.queries.labels(kind, "true" if cached else "false"),
            m.query_duration.labels(kind),
        )

    count, duration = _children(m, ("queries", query_type, cached), make)
    count.inc()
    duration.observe(seconds)


def record_cache(query_type: str, result: str) -> None:
    """One cache lookup: ``hit``, ``miss``, ``stale`` (too old for the caller) or ``bypass``."""
    m = get_metrics()
    _children(
        m,
        ("cache_requests", query_type, result),
        lambda: m.cache_requests.labels(
            m.token("queries", "type", query_type), enum_label(result, CACHE_RESULTS)
        ),
    ).inc()


def record_ai_call(function: str, status: str, seconds: float) -> None:
    """One gateway function call; ``status`` is ``success`` or the error code."""
    m = get_metrics()

    def make() -> tuple[Any, Any]:
        fn = m.token("ai", "function", function)
        return m.ai_calls.labels(fn, m.token("ai", "status", status)), m.ai_duration.labels(fn)

    count, duration = _children(m, ("ai_calls", function, status), make)
    count.inc()
    duration.observe(seconds)


def record_intent(detected_function: str | None, confidence: float) -> None:
    """One intent detection; ``None`` when nothing was detected."""
    m = get_metrics()
    fn = m.token("ai", "function", detected_function) if detected_function else "none"
    m.ai_intents.labels(fn, confidence_bucket(confidence)).inc()


def record_ai_tokens(provider: str, input_tokens: int, output_tokens: int) -> None:
    """Tokens an LLM call consumed (no clinic or user in the labels)."""
    m = get_metrics()
    prov = m.token("ai_tokens", "provider", provider)
    m.ai_tokens.labels(prov, "input").inc(max(input_tokens, 0))
    m.ai_tokens.labels(prov, "output").inc(max(output_tokens, 0))


def set_projection_lag(name: str, events: int, seconds: float) -> None:
    """Current lag of projection ``name``: events behind and age of the oldest pending one."""
    m = get_metrics()
    proj = m.token("projections", "projection", name)
    m.projection_lag_events.labels(proj).set(max(events, 0))
    m.projection_lag_seconds.labels(proj).set(max(seconds, 0.0))


def record_workflow_started(workflow: str) -> None:
    """A workflow of type ``workflow`` was started (the client interceptor calls this)."""
    m = get_metrics()
    m.workflows_started.labels(m.token("workflows", "workflow", workflow)).inc()


def record_workflow_completed(workflow: str, status: str) -> None:
    """A workflow run ended: completed, failed, cancelled, continued_as_new, task_failed."""
    m = get_metrics()
    wf = m.token("workflows", "workflow", workflow)
    m.workflows_completed.labels(wf, m.token("workflows", "status", status)).inc()


def record_activity(activity: str, status: str, seconds: float) -> None:
    """An activity attempt ended: completed, failed, cancelled."""
    m = get_metrics()
    act = m.token("activities", "activity", activity)
    m.activities.labels(act, m.token("activities", "status", status)).inc()
    m.activity_duration.labels(act).observe(seconds)


def record_outbox_relayed(outcome: str) -> None:
    """The outbox relay started a message's delivery, or recorded it failed."""
    m = get_metrics()
    m.outbox_relayed.labels(m.token("outbox", "outcome", outcome)).inc()


def set_health_check(check: str, up: bool) -> None:
    """Export a health check's latest result (readiness alerts use it)."""
    m = get_metrics()
    m.health_check_status.labels(m.token("health", "check", check)).set(1 if up else 0)


# --- exposition ----------------------------------------------------------------


def multiprocess_dir() -> str | None:
    """The multiprocess directory when multiprocess mode is on."""
    path = os.environ.get(MULTIPROC_ENV)
    return path if path and os.path.isdir(path) else None


_exposition: CollectorRegistry | None = None


def exposition_registry() -> Collector:
    """The registry ``/metrics`` renders: all workers' files in multiprocess mode."""
    global _exposition
    get_metrics()  # the families exist (at zero) from the first scrape on
    if multiprocess_dir() is None:
        return REGISTRY
    if _exposition is None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        _exposition = registry
    return _exposition


_collect_hooks: list[Callable[[], object]] = []
_log = logging.getLogger(__name__)


def add_collect_hook(hook: Callable[[], object]) -> None:
    """Run ``hook`` before every render (e.g. to move buffered values into metrics)."""
    if hook not in _collect_hooks:
        _collect_hooks.append(hook)


def remove_collect_hook(hook: Callable[[], object]) -> None:
    """Stop running a hook given to :func:`add_collect_hook`."""
    if hook in _collect_hooks:
        _collect_hooks.remove(hook)


def _run_collect_hooks() -> None:
    for hook in list(_collect_hooks):
        try:
            hook()
        except Exception:  # a scrape still answers with what is there
            _log.exception("metrics collect hook failed")


def render_metrics(accept: str | None) -> tuple[bytes, str]:
    """Prometheus text, or OpenMetrics when ``accept`` asks for it: (body, content type)."""
    _run_collect_hooks()
    encoder, content_type = choose_encoder(accept or "")
    return encoder(exposition_registry()), content_type


def metrics_as_json(prefixes: Iterable[str] = ()) -> dict[str, Any]:
    """The exposed metrics as JSON: ``{"metrics": [{name, type, help, samples}]}``."""
    _run_collect_hooks()
    wanted = tuple(prefixes)
    families = []
    for family in exposition_registry().collect():
        if wanted and not family.name.startswith(wanted):
            continue
        families.append(
            {
                "name": family.name,
                "type": family.type,
                "help": family.documentation,
                "samples": [
                    {"name": s.name, "labels": dict(s.labels), "value": _json_number(s.value)}
                    for s in family.samples
                ],
            }
        )
    return {"metrics": families}


def _json_number(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


def start_metrics_server(port: int, addr: str = "0.0.0.0") -> tuple[WSGIServer, threading.Thread]:
    """Serve ``/metrics`` of this process on ``addr:port`` (worker, projector entry points).

    Call it from the process entry point only, never at import. Returns the
    server and its thread; ``server.shutdown()`` stops it.
    """
    get_metrics()
    server, thread = start_http_server(port, addr=addr, registry=exposition_registry())
    return server, thread


def prepare_multiprocess_dir(path: str | Path) -> Path:
    """Create ``path`` and delete stale ``*.db`` files; call once before forking workers."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    return directory


def mark_process_dead(pid: int | None = None) -> None:
    """Drop this (or ``pid``'s) live gauges in multiprocess mode; no-op otherwise."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid if pid is not None else os.getpid())
