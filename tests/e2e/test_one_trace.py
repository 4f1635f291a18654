"""One request to ``/ai/execute`` that starts a workflow is ONE trace, end to end.

The real system (``stack``: the API served by uvicorn, the worker from
``workflows.worker.run_worker`` with the client's ``TracingInterceptor``, real
asyncpg with the official instrumentation, the Temporal dev server) shares one
tracer provider in this process; an in-memory exporter is attached to it. A real
HTTP request starts a workflow and, once the workflow's activities ran, the
finished spans must form one connected tree:

    caller ─▶ POST /ai/execute (server) ─▶ … ─▶ StartWorkflow:<type> (client)
      ├─▶ RunWorkflow:<type>
      └─▶ StartActivity:<a> ─▶ RunActivity:<a> ─▶ … ─▶ SQL (asyncpg)

(``temporalio.contrib.opentelemetry.TracingInterceptor`` ends the workflow's own
spans at once and parents them all on the workflow's header context, the
StartWorkflow span: RunWorkflow and each StartActivity are siblings. Local
activities get the same StartActivity/RunActivity pair as regular ones.)

``schedule_appointment`` (BookingWorkflow) covers local activities (hold, confirm,
queue the confirmation) and a regular one on another task queue (the WhatsApp
delivery); ``trigger_workflow`` lead-scoring covers a workflow run to completion.

The requests are sent with the test's own httpx instrumentation suppressed, so the
server sees exactly the ``traceparent`` the test wrote (or none).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_http_instrumentation
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from adapters.telemetry.span_buffer import SpanBuffer
from adapters.telemetry.tracing import TracingHandle, setup_tracing
from api.app import tracing
from tests.fixtures.stack import SHARED, Stack

ASYNCPG_SCOPE = "opentelemetry.instrumentation.asyncpg"
FASTAPI_SCOPES = ("opentelemetry.instrumentation.asgi", "opentelemetry.instrumentation.fastapi")
SPANS_TIMEOUT_S = 60.0
EXECUTION_SPANS = ("StartWorkflow:", "RunWorkflow:", "StartActivity:", "RunActivity:", "Complete")
BOOKING_LOCAL_ACTIVITIES = (
    "request_appointment",
    "confirm_appointment",
    "queue_appointment_message",
)
BOOKING_REGULAR_ACTIVITIES = ("deliver_message",)


@pytest.fixture
def spans(stack: Stack) -> Iterator[InMemorySpanExporter]:
    """Every span the process ends from now on (API and worker share the provider)."""
    handle: TracingHandle = tracing(stack.settings)
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    handle.add_processor(processor)
    try:
        yield exporter
    finally:
        handle.remove_processor(processor)


@dataclass
class Tree:
    """The finished spans of one trace, by id."""

    trace_id: str
    spans: list[ReadableSpan]

    def __post_init__(self) -> None:
        self.by_id = {s.context.span_id: s for s in self.spans if s.context is not None}

    def named(self, prefix: str, **attributes: Any) -> list[ReadableSpan]:
        return [
            s
            for s in self.spans
            if s.name.startswith(prefix)
            and all((s.attributes or {}).get(k) == v for k, v in attributes.items())
        ]

    def one(self, prefix: str, **attributes: Any) -> ReadableSpan:
        found = self.named(prefix, **attributes)
        assert len(found) == 1, f"{prefix} {attributes}: {[s.name for s in found]}\n{self.dump()}"
        return found[0]

    def ancestors(self, span: ReadableSpan) -> list[ReadableSpan]:
        """Parent, grandparent ... as far as this trace's finished spans go."""
        chain = []
        parent = span.parent
        while parent is not None and parent.span_id in self.by_id:
            current = self.by_id[parent.span_id]
            chain.append(current)
            parent = current.parent
        return chain

    def descends(self, span: ReadableSpan, ancestor: ReadableSpan) -> bool:
        return any(a is ancestor for a in self.ancestors(span))

    def dump(self) -> str:
        rows = []
        for s in sorted(self.spans, key=lambda s: s.start_time or 0):
            parent = format(s.parent.span_id, "016x") if s.parent else "-"
            own = format(s.context.span_id, "016x") if s.context else "?"
            scope = s.instrumentation_scope.name if s.instrumentation_scope else "?"
            rows.append(f"{own} <- {parent} {s.kind.name:8} {s.name} [{scope}]")
        return "\n".join(rows)


def trace_of(exporter: InMemorySpanExporter, trace_id: str) -> Tree:
    wanted = int(trace_id, 16)
    found = [
        s
        for s in exporter.get_finished_spans()
        if s.context is not None and s.context.trace_id == wanted
    ]
    return Tree(trace_id, found)


async def until_spans(
    exporter: InMemorySpanExporter, trace_id: str, done: Callable[[Tree], bool]
) -> Tree:
    deadline = time.monotonic() + SPANS_TIMEOUT_S
    while True:
        tree = trace_of(exporter, trace_id)
        if done(tree):
            return tree
        assert time.monotonic() < deadline, f"trace {trace_id} incomplete:\n{tree.dump()}"
        await asyncio.sleep(0.1)


async def post_uninstrumented(
    stack: Stack, key: str, body: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    """``POST /ai/execute`` as an outside caller: exactly these headers, no client span."""
    with suppress_http_instrumentation():
        async with stack.client(key, **headers) as http:
            return await http.post("/ai/execute", json=body)


def execution_spans(exporter: InMemorySpanExporter, workflow_id: str) -> list[ReadableSpan]:
    """Every finished span, of any trace, of the workflow's own execution.

    Status queries are left out: ``QueryWorkflow``/``HandleQuery`` belong to the
    trace of the request that asked (here: the test's polling)."""
    return [
        s
        for s in exporter.get_finished_spans()
        if (s.attributes or {}).get("temporalWorkflowID") == workflow_id
        and s.name.startswith(EXECUTION_SPANS)
    ]


def assert_connected(tree: Tree, root: ReadableSpan, remote_parent: int | None) -> None:
    """Every span of the trace hangs, through finished spans, from ``root``."""
    if remote_parent is None:
        assert root.parent is None, "a request without traceparent starts a new trace"
    else:
        assert root.parent is not None and root.parent.is_remote
        assert root.parent.span_id == remote_parent
    for span in tree.spans:
        if span is root:
            continue
        assert tree.descends(span, root), f"{span.name} is cut off from {root.name}:\n{tree.dump()}"


def sql_under(tree: Tree, run: ReadableSpan) -> list[ReadableSpan]:
    """The asyncpg spans below ``run``."""
    return [
        s
        for s in tree.spans
        if s.instrumentation_scope is not None
        and s.instrumentation_scope.name == ASYNCPG_SCOPE
        and s.kind is SpanKind.CLIENT
        and tree.descends(s, run)
    ]


def assert_activity(
    tree: Tree, start: ReadableSpan, name: str, workflow_id: str, *, sql: bool = True
) -> None:
    """RunActivity:<name> runs under its StartActivity, under StartWorkflow (SQL below).

    An attempt retried on a loaded host is one more RunActivity under the same
    StartActivity (a local activity re-scheduled after backoff: one more of each)."""
    scheduled = tree.named(f"StartActivity:{name}", temporalWorkflowID=workflow_id)
    runs = tree.named(f"RunActivity:{name}", temporalWorkflowID=workflow_id)
    assert scheduled and runs, f"{name}:\n{tree.dump()}"
    scheduled_ids = {s.context.span_id for s in scheduled if s.context is not None}
    for run in runs:
        assert run.kind is SpanKind.SERVER
        assert run.parent is not None and run.parent.span_id in scheduled_ids, tree.dump()
        assert tree.descends(run, start), f"{run.name} not under {start.name}:\n{tree.dump()}"
    if sql:
        assert any(sql_under(tree, run) for run in runs), f"no SQL under {name}:\n{tree.dump()}"


def server_span(tree: Tree) -> ReadableSpan:
    found = [
        s
        for s in tree.spans
        if s.kind is SpanKind.SERVER
        and s.instrumentation_scope is not None
        and s.instrumentation_scope.name in FASTAPI_SCOPES
    ]
    assert len(found) == 1, tree.dump()
    assert found[0].name == "POST /ai/execute"
    return found[0]


def random_traceparent() -> tuple[str, int, str]:
    trace_id = secrets.token_hex(16)
    span_id = secrets.token_hex(8)
    return trace_id, int(span_id, 16), f"00-{trace_id}-{span_id}-01"


def has_run_activities(workflow_id: str, names: tuple[str, ...]) -> Callable[[Tree], bool]:
    def done(tree: Tree) -> bool:
        return all(tree.named(f"RunActivity:{n}", temporalWorkflowID=workflow_id) for n in names)

    return done


async def test_booking_request_is_one_trace_from_the_callers_traceparent(
    stack: Stack, spans: InMemorySpanExporter
) -> None:
    tenant = stack.tenant("clinic-a")
    caller_trace, caller_span, traceparent = random_traceparent()
    day = stack.day + timedelta(days=7)
    response = await post_uninstrumented(
        stack,
        tenant.admin_key,
        {
            "type": "function_call",
            "calls": [
                {
                    "function": "schedule_appointment",
                    "arguments": {
                        "patientId": SHARED.patient_id,
                        "serviceType": "cleaning",
                        "preferredDate": day.isoformat(),
                        "preferredTimeSlot": "morning",
                    },
                }
            ],
        },
        {"traceparent": traceparent},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    (call,) = body["results"]
    assert call["success"], call
    workflow_id = call["result"]["workflowId"]

    # the caller's trace, in the header and the body
    assert response.headers["x-trace-id"] == caller_trace
    assert body["traceId"] == caller_trace

    await stack.until_workflow(
        tenant.admin_key,
        workflow_id,
        lambda s: any(
            step["stepId"] == "confirmation" and step["status"] in ("completed", "failed")
            for step in s["steps"]
        ),
    )
    names = BOOKING_LOCAL_ACTIVITIES + BOOKING_REGULAR_ACTIVITIES
    tree = await until_spans(spans, caller_trace, has_run_activities(workflow_id, names))

    root = server_span(tree)
    start = tree.one("StartWorkflow:BookingWorkflow", temporalWorkflowID=workflow_id)
    assert start.kind is SpanKind.CLIENT
    assert tree.descends(start, root)
    run = tree.one("RunWorkflow:BookingWorkflow", temporalWorkflowID=workflow_id)
    assert run.parent is not None and run.parent.span_id == start.context.span_id
    for name in names:
        assert_activity(tree, start, name, workflow_id)
    assert sql_under(tree, root), tree.dump()  # the request's own SQL (consent, audit row)
    audit = [
        s for s in tree.spans if "audit_log" in str((s.attributes or {}).get("db.statement", ""))
    ]
    assert audit, f"the request's audit row is written within its trace\n{tree.dump()}"

    # nothing of this workflow went to another trace, and the tree has no loose ends
    strays = [
        s.name
        for s in execution_spans(spans, workflow_id)
        if s.context.trace_id != int(caller_trace, 16)
    ]
    assert strays == []
    assert_connected(tree, root, remote_parent=caller_span)

    # the process's own span buffer (/diagnostics/traces) holds the same trace
    buffered = tracing(stack.settings).buffer.get(caller_trace)
    assert buffered is not None
    buffered_names = {s["name"] for s in buffered["spans"]}
    assert {f"RunActivity:{n}" for n in names} <= buffered_names


async def test_lead_scoring_started_without_traceparent_is_one_new_trace(
    stack: Stack, spans: InMemorySpanExporter
) -> None:
    tenant = stack.tenant("clinic-b")
    response = await post_uninstrumented(
        stack,
        tenant.admin_key,
        {
            "type": "function_call",
            "calls": [
                {
                    "function": "trigger_workflow",
                    "arguments": {
                        "workflow": "lead-scoring",
                        "payload": {
                            "phone": "+40731555111",
                            "channel": "whatsapp",
                            "messages": [
                                {"role": "user", "content": "Bună ziua, ce program aveți?"}
                            ],
                            "startNurture": False,
                        },
                    },
                }
            ],
        },
        {},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    (call,) = body["results"]
    assert call["success"], call
    workflow_id = call["result"]["workflowId"]
    trace_id = response.headers["x-trace-id"]
    assert len(trace_id) == 32 and int(trace_id, 16) != 0
    assert body["traceId"] == trace_id

    await stack.until_workflow(tenant.admin_key, workflow_id, lambda s: s["status"] == "completed")
    tree = await until_spans(
        spans,
        trace_id,
        lambda t: (
            bool(t.named("CompleteWorkflow:LeadScoringWorkflow"))
            and has_run_activities(workflow_id, ("score_lead", "upsert_contact"))(t)
        ),
    )

    root = server_span(tree)
    start = tree.one("StartWorkflow:LeadScoringWorkflow", temporalWorkflowID=workflow_id)
    assert tree.descends(start, root)
    run = tree.one("RunWorkflow:LeadScoringWorkflow", temporalWorkflowID=workflow_id)
    assert run.parent is not None and run.parent.span_id == start.context.span_id
    assert_activity(tree, start, "score_lead", workflow_id)
    # HubSpot is not configured in the stack: the activity answers "skipped" without SQL
    assert_activity(tree, start, "upsert_contact", workflow_id, sql=False)
    strays = [
        s.name
        for s in execution_spans(spans, workflow_id)
        if s.context.trace_id != int(trace_id, 16)
    ]
    assert strays == []
    assert_connected(tree, root, remote_parent=None)


async def test_a_finished_app_leaves_the_process_tracing_to_the_next(
    stack: Stack, spans: InMemorySpanExporter
) -> None:
    """Libraries trace through the global provider (set once per process): an app that
    shuts its tracing down must not take that provider with it, or the next app in the
    process (the next test module, here a second handle) would lose the Temporal and
    command spans."""
    other_buffer = SpanBuffer()
    other = setup_tracing("medicalcor-other", buffer=other_buffer, instrument_libraries=False)
    assert other.provider is tracing(stack.settings).provider
    tracer = trace.get_tracer("test.one_trace")  # what the Temporal interceptor uses
    with tracer.start_as_current_span("while both run") as first:
        pass
    other.shutdown()
    with tracer.start_as_current_span("after the other one ended") as second:
        pass
    first_id = format(first.get_span_context().trace_id, "032x")
    second_id = format(second.get_span_context().trace_id, "032x")
    assert other_buffer.get(first_id) is not None
    assert other_buffer.get(second_id) is None
    assert [s.name for s in trace_of(spans, first_id).spans] == ["while both run"]
    assert [s.name for s in trace_of(spans, second_id).spans] == ["after the other one ended"]


async def test_each_group_committed_append_is_traced_under_its_own_caller(
    stack: Stack, spans: InMemorySpanExporter
) -> None:
    """The event store's group-commit writer outlives the append that started it; the
    statement carrying a later caller's append belongs to that caller's trace."""
    from domain.events import EventMetadata, LeadAssigned
    from domain.ports import NO_STREAM, StreamAppend

    store = getattr(stack.services.store, "inner", stack.services.store)
    tracer = tracing(stack.settings).provider.get_tracer("test")
    clinic = f"clinic-trace-{secrets.token_hex(4)}"

    async def append(label: str) -> str:
        with tracer.start_as_current_span(f"caller {label}") as span:
            await store.append(
                clinic,
                [
                    StreamAppend(
                        stream_id=f"lead-{label}-{secrets.token_hex(4)}",
                        stream_type="lead",
                        expected_version=NO_STREAM,
                        events=(LeadAssigned(lead_id="l", assignee=label),),
                    )
                ],
                metadata=EventMetadata(actor="test", correlation_id=label),
            )
            return format(span.get_span_context().trace_id, "032x")

    # B queues while the writer A started is still running (it yields once after A)
    first, second = await append("a"), await append("b")
    assert first != second
    appends = [
        s
        for s in spans.get_finished_spans()
        if "mc_append" in str((s.attributes or {}).get("db.statement", ""))
        and format(s.context.trace_id, "032x") in (first, second)
    ]
    traces = sorted(format(s.context.trace_id, "032x") for s in appends)
    assert traces == sorted([first, second]), [s.name for s in appends]
