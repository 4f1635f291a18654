"""The AI gateway's execution path, shared by HTTP (``/ai/execute``) and MCP (``/mcp``).

For every call: find the function (FUNCTION_NOT_FOUND suggests the nearest
names), decide whether the caller's key may run it and submit that decision to the
audit log, validate the arguments against the function's own model
(INVALID_ARGUMENTS names each bad field by JSON path), then run the handler with a
``FunctionContext`` bound to the key's clinic. A call that changes anything waits
for its audit row first (no row, nothing done); a read overlaps with the write of
its row and answers while the audit log is healthy, else waits for the row too.
Domain errors become per-call ``{code, message, details}``; an unexpected failure
is logged and answered EXECUTION_ERROR without internals.

Natural requests are interpreted by Claude (when a planner is configured; only the
functions the key may run are offered) or by the deterministic rules (always the
fallback; the intent's first evidence line says why Claude was not used, e.g. the
clinic's daily token cap); a single call runs directly, several become an AI-plan
workflow.

Claude reads text that patients wrote (messages and notes pasted into a request), so
its plan is treated as untrusted: it never widens what the key may do. A proposed
call outside the key's functions is answered FORBIDDEN or FUNCTION_NOT_FOUND (audited
as denied) and then nothing of the request runs; more calls than the per-request
limit run nothing either; and outbound or destructive steps Claude planned run as a
plan whose policy makes them wait for approval.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

from opentelemetry import propagate, trace

from adapters.anthropic_planner import PlannerUnavailable, PlanResult, TokenCapReached
from adapters.audit import AuditEntry, Decision
from adapters.settings import Settings
from adapters.telemetry.metrics import record_ai_call, record_intent
from adapters.telemetry.tracing import current_trace_id
from adapters.temporal.plan import StepLike, iter_refs, validate_plan
from adapters.transient import is_transient
from api.ai_models import (
    Call,
    CallError,
    CallResult,
    ExecuteRequest,
    ExecuteResponse,
    FunctionCallRequest,
    Intent,
    NaturalRequest,
    Plan,
    PlanStepView,
    StepDecisionResponse,
    WorkflowRequest,
)
from api.auth import Principal
from domain.cqrs import CommandContext, CommandExecutor, QueryExecutor
from domain.errors import (
    Conflict,
    DomainError,
    ExecutionError,
    InvalidArguments,
    MissingArguments,
    NoIntentDetected,
    NotFound,
    ServiceUnavailable,
)
from domain.functions import REGISTRY, FunctionContext, FunctionSpec, Registry
from domain.functions.approval import needs_approval
from domain.functions.schemas import Catalogue, describe_at
from domain.intent import IntentContext, detect_intents
from domain.workflow_port import StepStatus, WorkflowGateway

log = logging.getLogger(__name__)

INTENT_THRESHOLD = 0.5
T = TypeVar("T")


class AuditSink(Protocol):
    @property
    def healthy(self) -> bool:
        """True while entries are being written (last batch stored, backlog bounded)."""
        ...

    def submit(self, entry: AuditEntry) -> Awaitable[None]:
        """Queue ``entry``; the awaitable completes once it is durably written."""
        ...


class Planner(Protocol):
    async def plan(
        self,
        query: str,
        tools: list[dict[str, Any]],
        context: Mapping[str, Any] | None,
        allowed_functions: set[str],
        *,
        clinic_id: str,
    ) -> PlanResult: ...


@dataclass(frozen=True)
class RequestInfo:
    """Per-request facts every call of the request shares."""

    request_id: str
    trace_id: str
    surface: str = "http"
    idempotency_key: str | None = None
    min_position: int | None = None
    traceparent: str | None = None
    tracestate: str | None = None

    @classmethod
    def new(
        cls, *, surface: str, idempotency_key: str | None = None, min_position: int | None = None
    ) -> RequestInfo:
        carrier: dict[str, str] = {}
        if trace.get_current_span().get_span_context().is_valid:
            propagate.inject(carrier)
        request_id = next_request_id()
        return cls(
            request_id=request_id,
            trace_id=current_trace_id() or request_id,
            surface=surface,
            idempotency_key=idempotency_key,
            min_position=min_position,
            traceparent=carrier.get("traceparent"),
            tracestate=carrier.get("tracestate"),
        )


class _RequestIds:
    """32 hex digits: a random prefix per process (re-drawn after a fork) and a counter."""

    def __init__(self) -> None:
        self._pid = 0
        self._prefix = ""
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        if self._pid != os.getpid():
            self._pid, self._prefix = os.getpid(), uuid.uuid4().hex[:16]
            self._counter = itertools.count(1)
        return f"{self._prefix}{next(self._counter):016x}"


next_request_id = _RequestIds()


@dataclass(frozen=True)
class Detected:
    """One call understood from a natural request (rules or Claude)."""

    function: str
    arguments: dict[str, Any]
    missing: tuple[str, ...] = ()
    refusal: str | None = None
    """Why the planner did not pass this call on (Claude proposed it; it will not run)."""


DENIAL_REASONS = {"FORBIDDEN": "missing scope", "FUNCTION_NOT_FOUND": "unknown function"}


def utc_now() -> datetime:
    return datetime.now(UTC)


class Gateway:
    """Runs gateway requests for authenticated principals."""

    def __init__(
        self,
        *,
        commands: CommandExecutor,
        queries: QueryExecutor,
        workflows: WorkflowGateway,
        audit: AuditSink,
        settings: Settings,
        planner: Planner | None = None,
        registry: Registry = REGISTRY,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.registry = registry
        self.catalogue = Catalogue.build(registry)
        self.commands = commands
        self.queries = queries
        self.workflows = workflows
        self.audit = audit
        self.settings = settings
        self.planner = planner
        self.clock = clock
        self._views: dict[Hashable, Any] = {}

    def view(self, key: Hashable, build: Callable[[], T]) -> T:
        """A view derived from the registry, built once (tool lists per scope set, documents)."""
        if key not in self._views:
            self._views[key] = build()
        value: T = self._views[key]
        return value

    # --- one call ------------------------------------------------------------------

    def context(self, principal: Principal, info: RequestInfo) -> FunctionContext:
        """The function context of a request (``for_call`` derives each call's)."""
        command = CommandContext(
            clinic_id=principal.clinic_id,
            actor=principal.actor,
            idempotency_key=f"http:{info.idempotency_key}" if info.idempotency_key else None,
            correlation_id=info.request_id,
            traceparent=info.traceparent,
            tracestate=info.tracestate,
            scopes=principal.scopes,
        )
        return FunctionContext(
            command=command,
            commands=self.commands,
            queries=self.queries,
            workflows=self.workflows,
            now=self.clock(),
            min_position=info.min_position,
        )

    async def call(
        self,
        principal: Principal,
        info: RequestInfo,
        function: str,
        arguments: Mapping[str, Any] | None,
        call_id: str,
    ) -> CallResult:
        """Authorise (audited), validate and run one call; never raises for its errors."""
        started = time.perf_counter()
        outcome = await self._call(principal, info, function, arguments, call_id, started)
        record_ai_call(
            function,
            outcome.error.code if outcome.error else "success",
            time.perf_counter() - started,
        )
        return outcome

    async def _call(
        self,
        principal: Principal,
        info: RequestInfo,
        function: str,
        arguments: Mapping[str, Any] | None,
        call_id: str,
        started: float,
    ) -> CallResult:
        given = dict(arguments or {})
        try:
            spec, on_record = await self.authorize(principal, info, function, wait=False)
            if not spec.read_only:
                await on_record()  # nothing changes before its decision is on record
            args = spec.validate(given)
            ctx = self.context(principal, info).for_call(call_id)
            result = await spec.run(args, ctx)
            if not self.audit.healthy:  # an answer leaves only while the audit log keeps up
                await on_record()
        except DomainError as exc:
            return _failed(call_id, function, given, exc, started)
        except Exception as exc:
            if is_transient(exc):
                log.warning("gateway function %s: dependency unavailable (%r)", function, exc)
                return _failed(call_id, function, given, unavailable(function), started)
            log.exception("gateway function %s failed", function)
            error = ExecutionError(f"{function} failed unexpectedly; see trace {info.trace_id}")
            return _failed(call_id, function, given, error, started)
        return CallResult(
            call_id=call_id,
            function=function,
            arguments=args.model_dump(mode="json", by_alias=True, exclude_none=True),
            executed=True,
            success=True,
            result=result.wire(),
            execution_time_ms=_ms(started),
            position=ctx.position or None,
        )

    async def authorize(
        self, principal: Principal, info: RequestInfo, function: str, *, wait: bool = True
    ) -> tuple[FunctionSpec, Callable[[], Awaitable[None]]]:
        """The function's spec if the key may run it, and how to wait for its audit record.

        The decision is audited either way; a denial raises once it is recorded. With
        ``wait=False`` an allowed call may start while its record is being written
        (reads overlap with the audit write; the caller awaits it before answering).
        """
        spec = self.registry.specs.get(function)
        missing = spec.missing_scopes(principal.scopes) if spec else []
        decision: Decision = "allowed" if spec and not missing else "denied"
        reason = "unknown function" if spec is None else _missing_reason(missing)
        on_record = self._record(principal, info, function, decision, reason)
        if spec is None or missing or wait:
            await on_record()
        if spec is None:
            self.registry.get(function)  # raises FunctionNotFound with the nearest names
        assert spec is not None
        spec.authorize(principal.scopes)
        return spec, on_record

    def _record(
        self,
        principal: Principal,
        info: RequestInfo,
        function: str,
        decision: Decision,
        reason: str | None,
    ) -> Callable[[], Awaitable[None]]:
        """Submit the audit entry now; the returned function waits until it is written."""
        entry = AuditEntry(
            clinic_id=principal.clinic_id,
            actor=principal.actor,
            key_id=principal.key_id,
            function=function,
            decision=decision,
            reason=reason,
            surface=info.surface,
            request_id=info.request_id,
            trace_id=info.trace_id,
            idempotency_key=info.idempotency_key,
        )
        written = self.audit.submit(entry)

        async def recorded() -> None:
            try:
                await written
            except Exception as exc:
                log.error("audit write failed (%s); refusing %s", exc, function)
                if is_transient(exc):
                    raise ServiceUnavailable(
                        "the audit log is briefly unavailable; nothing was done;"
                        " retry with the same Idempotency-Key",
                        retryAfter=1,
                    ) from exc
                raise ExecutionError("the audit log is unavailable; nothing was done") from exc

        return recorded

    # --- requests ------------------------------------------------------------------

    async def execute(
        self, principal: Principal, request: ExecuteRequest, info: RequestInfo
    ) -> ExecuteResponse:
        """Run one ``/ai/execute`` request. Request-level input errors raise ``DomainError``."""
        started = time.perf_counter()
        if isinstance(request, FunctionCallRequest):
            response = await self._function_calls(principal, request, info)
        elif isinstance(request, NaturalRequest):
            response = await self._natural(principal, request, info)
        else:
            response = await self._workflow(principal, request, info)
        return response.model_copy(update={"total_execution_time_ms": _ms(started)})

    def _response(
        self, info: RequestInfo, kind: Any, results: list[CallResult], **extra: Any
    ) -> ExecuteResponse:
        positions = [r.position for r in results if r.position]
        return ExecuteResponse(
            success=all(r.success for r in results) and extra.get("error") is None,
            request_id=info.request_id,
            type=kind,
            results=results,
            total_execution_time_ms=0.0,
            trace_id=info.trace_id,
            position=max(positions) if positions else None,
            **extra,
        )

    async def _function_calls(
        self, principal: Principal, request: FunctionCallRequest, info: RequestInfo
    ) -> ExecuteResponse:
        calls = self._numbered(request.calls)
        if len(calls) == 1:  # no task to spawn for the common case
            ((cid, c),) = calls
            return self._response(
                info,
                "function_call",
                [await self.call(principal, info, c.function, c.arguments, cid)],
            )
        results = await asyncio.gather(
            *(self.call(principal, info, c.function, c.arguments, cid) for cid, c in calls)
        )
        return self._response(info, "function_call", list(results))

    def _numbered(self, calls: Sequence[Call]) -> list[tuple[str, Call]]:
        limit = self.settings.max_calls_per_request
        if len(calls) > limit:
            raise InvalidArguments(
                f"{len(calls)} calls in one request; the limit is {limit}: split the request",
                errors=[_error("calls", f"{len(calls)} calls", f"at most {limit} calls")],
                limit=limit,
            )
        numbered = [(c.call_id or f"c{i}", c) for i, c in enumerate(calls, 1)]
        ids = [cid for cid, _ in numbered]
        dupes = sorted({cid for cid in ids if ids.count(cid) > 1})
        if dupes:
            raise InvalidArguments(
                f"duplicate callId: {', '.join(dupes)}",
                errors=[
                    _error("calls", f"duplicate callId {d!r}", "unique callIds") for d in dupes
                ],
            )
        return numbered

    # --- natural language ----------------------------------------------------------

    async def _natural(
        self, principal: Principal, request: NaturalRequest, info: RequestInfo
    ) -> ExecuteResponse:
        detected, intent, suggestions = await self.interpret(principal, request)
        if not detected:
            error = NoIntentDetected(
                "could not tell which function the request means; rephrase or call one directly",
                suggestions=suggestions,
            )
            return self._response(info, "natural", [], intent=intent, error=_call_error(error))
        limit = self.settings.max_calls_per_request
        if len(detected) > limit:
            too_many = InvalidArguments(
                f"the request was understood as {len(detected)} calls; the limit is {limit}:"
                " split the request",
                errors=[_error("query", f"{len(detected)} calls", f"at most {limit} calls")],
                limit=limit,
            )
            return self._response(info, "natural", [], intent=intent, error=_call_error(too_many))
        results = [self._check(principal, f"c{i}", d) for i, d in enumerate(detected, 1)]
        for r in results:
            reason = DENIAL_REASONS.get(r.error.code) if r.error is not None else None
            if reason is not None:
                await self._record(principal, info, r.function, "denied", reason)()
        if any(r.error is not None for r in results) or not request.execute:
            return self._response(info, "natural", results, intent=intent)
        held = self._held_for_approval(intent, results)
        if len(results) == 1 and not held:
            only = results[0]
            ran = await self.call(principal, info, only.function, only.arguments, only.call_id)
            return self._response(info, "natural", [ran], intent=intent)
        # Detected calls run in the order they were said: each step waits for the previous.
        steps = [
            (r.call_id, r.function, r.arguments, [results[i - 1].call_id] if i else [])
            for i, r in enumerate(results)
        ]
        workflow_id, plan = await self._start_plan(principal, info, steps, bool(held))
        if held:
            evidence = [*intent.evidence, *self._approval_evidence(workflow_id, held)]
            intent = intent.model_copy(update={"evidence": evidence})
        return self._response(
            info, "natural", [], intent=intent, workflow_id=workflow_id, plan=plan
        )

    def _held_for_approval(self, intent: Intent, results: list[CallResult]) -> list[CallResult]:
        """The calls of a Claude plan whose steps wait for approval (empty: nothing waits).

        Claude may have read instructions planted in a patient's text, so what it
        planned to send out or destroy waits for a person (the plan's policy).
        """
        if intent.source != "claude":
            return []
        return [
            r
            for r in results
            if needs_approval(r.function, self.registry.get(r.function).side_effect, r.arguments)
        ]

    def _approval_evidence(self, workflow_id: str, held: list[CallResult]) -> list[str]:
        """Why each held step waits, and the route that lets it run or skips it."""
        return [
            f"{r.function} ({self.registry.get(r.function).side_effect}) was planned by Claude:"
            f" step {r.call_id} waits for approval before it runs (POST"
            f" {step_route(workflow_id, r.call_id)}/approve or .../reject)"
            for r in held
        ]

    async def interpret(
        self, principal: Principal, request: NaturalRequest
    ) -> tuple[list[Detected], Intent, list[dict[str, Any]]]:
        """What the request means: Claude when configured and available, else the rules.

        When a configured Claude was not used (the clinic's daily token cap, an outage,
        no call planned), the rules' intent says so in its first evidence line.
        """
        fallback: str | None = None
        if self.planner is not None:
            planned = await self._plan_with_claude(principal, request)
            if not isinstance(planned, str):
                return planned
            fallback = planned
        detected, intent, suggestions = self._rules(request)
        if fallback is not None:
            intent = intent.model_copy(update={"evidence": [fallback, *intent.evidence]})
        return detected, intent, suggestions

    async def _plan_with_claude(
        self, principal: Principal, request: NaturalRequest
    ) -> tuple[list[Detected], Intent, list[dict[str, Any]]] | str:
        """Claude's plan, or why the rules interpret the request instead."""
        assert self.planner is not None
        allowed = {s.name for s in self.registry.allowed(principal.scopes)}
        tools = [
            self.catalogue.anthropic[name] for name in self.registry.names() if name in allowed
        ]
        context = (
            request.context.model_dump(by_alias=True, exclude_none=True)
            if request.context
            else None
        )
        try:
            plan = await self.planner.plan(
                request.query, tools, context, allowed, clinic_id=principal.clinic_id
            )
        except TokenCapReached as exc:
            log.info("Claude not called for clinic %s: %s", principal.clinic_id, exc.reason)
            return f"Claude not called: {exc.reason}; the rules interpreted the request"
        except PlannerUnavailable as exc:
            log.warning("Claude planner unavailable, using the rules: %s", exc.reason)
            return "Claude was unavailable; the rules interpreted the request"
        except Exception:
            log.exception("Claude planner failed, using the rules")
            return "Claude was unavailable; the rules interpreted the request"
        if not plan.calls and not plan.refused:
            return "Claude planned no call; the rules interpreted the request"
        detected = [Detected(c.function, dict(c.arguments)) for c in plan.calls]
        detected += [Detected(r.function, {}, refusal=r.reason) for r in plan.refused]
        valid = sum(1 for d in detected if d.refusal is None and self._is_valid(d))
        confidence = round(valid / len(detected), 3)
        evidence = [
            f"planned by Claude ({plan.model or 'model'})",
            f"{valid} of {len(detected)} planned calls have valid arguments",
            *(
                f"refused {r.function}: {r.reason}; nothing of this request runs"
                for r in plan.refused
            ),
        ]
        for d in detected:
            if d.refusal is None:  # a refused name is the model's text: no metric label
                record_intent(d.function, confidence)
        intent = Intent(
            functions=[d.function for d in detected],
            confidence=confidence,
            evidence=evidence,
            source="claude",
        )
        return detected, intent, []

    def _rules(
        self, request: NaturalRequest
    ) -> tuple[list[Detected], Intent, list[dict[str, Any]]]:
        context = None
        if request.context is not None:
            context = IntentContext(
                patient_id=request.context.patient_id,
                phone=request.context.phone,
                language=request.context.language,
            )
        found = detect_intents(
            request.query, now=self.clock(), context=context, threshold=INTENT_THRESHOLD
        )
        for call in found.calls:
            record_intent(call.function, call.confidence)
        if not found.calls:
            record_intent(None, found.confidence)
        evidence = [e for call in found.calls for e in call.evidence] or [
            e for c in found.candidates for e in c.evidence
        ]
        intent = Intent(
            functions=found.functions,
            confidence=found.confidence,
            evidence=evidence,
            source="rules",
            language=found.language,
        )
        detected = [Detected(c.function, dict(c.arguments), tuple(c.missing)) for c in found.calls]
        suggestions: list[dict[str, Any]] = [
            {"function": c.function, "confidence": c.confidence, "evidence": c.evidence}
            for c in found.candidates
        ] or [{"function": s.name, "summary": s.summary} for s in self.registry]
        return detected, intent, suggestions

    def _is_valid(self, detected: Detected) -> bool:
        try:
            self.registry.get(detected.function).validate(detected.arguments)
        except DomainError:
            return False
        return True

    def _check(self, principal: Principal, call_id: str, detected: Detected) -> CallResult:
        """A detected call, validated but not run: MISSING/INVALID/FORBIDDEN or ready."""
        started = time.perf_counter()
        try:
            spec = self.registry.get(detected.function)
            spec.authorize(principal.scopes)
            if detected.refusal is not None:  # e.g. arguments that are not an object
                raise InvalidArguments(
                    f"{spec.name} was refused: {detected.refusal}",
                    function=spec.name,
                    errors=[_error("arguments", detected.refusal, "an object")],
                )
            missing = list(detected.missing)
            try:
                args = spec.validate(detected.arguments)
            except InvalidArguments as exc:
                missing += [e["path"] for e in exc.details["errors"] if e["message"] == "required"]
                if not missing:
                    raise
            if missing:
                raise missing_arguments(spec, missing)
        except DomainError as exc:
            return _failed(call_id, detected.function, detected.arguments, exc, started, ran=False)
        return CallResult(
            call_id=call_id,
            function=spec.name,
            arguments=args.model_dump(mode="json", by_alias=True, exclude_none=True),
            executed=False,
            success=True,
            execution_time_ms=_ms(started),
        )

    # --- durable plans -------------------------------------------------------------

    async def _workflow(
        self, principal: Principal, request: WorkflowRequest, info: RequestInfo
    ) -> ExecuteResponse:
        validate_plan([StepLike(s.step_id, s.depends_on, s.arguments) for s in request.steps])
        limit = self.settings.max_calls_per_request
        if len(request.steps) > limit:
            raise InvalidArguments(
                f"{len(request.steps)} steps in one plan; the limit is {limit}",
                errors=[_error("steps", f"{len(request.steps)} steps", f"at most {limit} steps")],
                limit=limit,
            )
        problems = []
        for step in request.steps:
            problem = await self._check_step(
                principal, info, step.step_id, step.function, step.arguments
            )
            if problem is not None:
                problems.append(problem)
        if problems:
            return self._response(info, "workflow", problems)
        steps = [(s.step_id, s.function, s.arguments, s.depends_on) for s in request.steps]
        workflow_id, plan = await self._start_plan(
            principal, info, steps, request.require_approval, audited=True
        )
        return self._response(info, "workflow", [], workflow_id=workflow_id, plan=plan)

    async def _check_step(
        self,
        principal: Principal,
        info: RequestInfo,
        step_id: str,
        function: str,
        arguments: dict[str, Any],
    ) -> CallResult | None:
        """None when the step may run (audited), else its error (nothing runs)."""
        started = time.perf_counter()
        try:
            spec, _ = await self.authorize(principal, info, function)
            validate_with_refs(spec, arguments)
        except DomainError as exc:
            return _failed(step_id, function, arguments, exc, started, ran=False)
        return None

    async def _start_plan(
        self,
        principal: Principal,
        info: RequestInfo,
        steps: list[tuple[str, str, dict[str, Any], list[str]]],
        require_approval: bool,
        *,
        audited: bool = False,
    ) -> tuple[str, Plan]:
        views = []
        for step_id, function, arguments, depends_on in steps:
            spec = self.registry.get(function)
            if not audited:
                await self._record(principal, info, function, "allowed", "planned")()
            views.append(
                PlanStepView(
                    step_id=step_id,
                    function=function,
                    arguments=arguments,
                    depends_on=depends_on,
                    side_effect=spec.side_effect,
                )
            )
        plan = {
            "steps": [v.model_dump(exclude={"status"}) for v in views],
            "policy": {"require_approval": require_approval},
        }
        ctx = self.context(principal, info)
        started = await self.workflows.start_plan(ctx.command, plan)
        return started.workflow_id, Plan(steps=views)

    # --- decisions on held plan steps -------------------------------------------------

    async def decide_step(
        self,
        principal: Principal,
        info: RequestInfo,
        workflow_id: str,
        step_id: str,
        *,
        approve: bool,
        reason: str | None = None,
    ) -> StepDecisionResponse:
        """Approve or reject a plan step that waits for approval; its state once finished.

        NOT_FOUND for a workflow of another clinic (exactly as for an unknown one) and
        for a step the plan does not have; FORBIDDEN, audited as denied, unless the key
        may run the step's function; CONFLICT with the step's status (``stepStatus``)
        unless it waits for approval. The decision is on record before the workflow
        hears of it (the operator's ``reason`` goes to the workflow only: it may name
        a person, and the audit log holds no personal data).
        """
        step = await self._step(principal.clinic_id, workflow_id, step_id)
        spec = self.registry.specs.get(step.function) if step.function else None
        if spec is None:  # not a gateway function: nothing of a plan, never held
            raise _not_waiting(workflow_id, step)
        where = f"step {step_id} of {workflow_id}"
        missing = spec.missing_scopes(principal.scopes)
        if missing:
            reason_denied = f"{_missing_reason(missing)}; {where}"
            await self._record(principal, info, spec.name, "denied", reason_denied)()
            spec.authorize(principal.scopes)  # raises Forbidden naming the missing scopes
        if step.status != "waiting_approval":
            raise _not_waiting(workflow_id, step)
        decision: Decision = "approved" if approve else "rejected"
        await self._record(principal, info, spec.name, decision, where)()
        try:
            decided = await self.workflows.decide_step(
                principal.clinic_id, workflow_id, step_id, approve=approve, reason=reason
            )
        except Conflict as exc:  # decided by someone else meanwhile, or the plan ended
            current = await self._step_or_none(principal.clinic_id, workflow_id, step_id)
            status = {"stepStatus": current.status} if current else {}
            raise Conflict(exc.message, workflowId=workflow_id, stepId=step_id, **status) from exc
        return StepDecisionResponse(
            workflow_id=workflow_id,
            step_id=step_id,
            function=spec.name,
            decision=decision,
            status=decided.status,
            result=decided.result,
            error=_step_error(decided.error),
            started_at=decided.started_at,
            finished_at=decided.finished_at,
            request_id=info.request_id,
            trace_id=info.trace_id,
        )

    async def _step(self, clinic_id: str, workflow_id: str, step_id: str) -> StepStatus:
        """The step's current state; NOT_FOUND for another clinic's workflow or no such step."""
        status = await self.workflows.status(clinic_id, workflow_id)
        for step in status.steps:
            if step.step_id == step_id:
                return step
        raise NotFound(
            f"workflow {workflow_id!r} has no step {step_id!r}",
            workflowId=workflow_id,
            stepId=step_id,
        )

    async def _step_or_none(
        self, clinic_id: str, workflow_id: str, step_id: str
    ) -> StepStatus | None:
        try:
            return await self._step(clinic_id, workflow_id, step_id)
        except Exception:  # only to enrich a CONFLICT; its absence is no error
            log.warning("status of %s after a refused decision unavailable", workflow_id)
            return None


def step_route(workflow_id: str, step_id: str) -> str:
    """The path of a plan step's decisions (append ``/approve`` or ``/reject``)."""
    return f"/ai/workflows/{quote(workflow_id, safe=':')}/steps/{quote(step_id, safe='')}"


def _step_error(error: Mapping[str, Any] | None) -> CallError | None:
    """A step's ``{code, message, details}`` as the wire's error (None: no error)."""
    if error is None:
        return None
    return CallError(
        code=str(error.get("code") or ExecutionError.code),
        message=str(error.get("message") or ""),
        details=dict(error.get("details") or {}),
    )


def _not_waiting(workflow_id: str, step: StepStatus) -> Conflict:
    return Conflict(
        f"step {step.step_id!r} is not waiting for approval: it is {step.status}",
        workflowId=workflow_id,
        stepId=step.step_id,
        stepStatus=step.status,  # "status" is the problem's HTTP status
    )


def _missing_reason(missing: list[str]) -> str | None:
    return f"missing scope(s): {', '.join(missing)}" if missing else None


def validate_with_refs(spec: FunctionSpec, arguments: Mapping[str, Any]) -> None:
    """Validate step arguments, leaving out the fields an earlier step's result will fill."""
    refs = [path.removeprefix(".") for path, _ in iter_refs(dict(arguments), path="")]
    try:
        spec.validate(arguments)
    except InvalidArguments as exc:
        left = [e for e in exc.details["errors"] if not _under_any(e["path"], refs)]
        if left:
            raise InvalidArguments(exc.message, function=spec.name, errors=left) from None


def _under_any(path: str, refs: list[str]) -> bool:
    return any(path == r or path.startswith((r + ".", r + "[")) for r in refs)


def missing_arguments(spec: FunctionSpec, paths: Sequence[str]) -> MissingArguments:
    """MISSING_ARGUMENTS naming each missing argument and what to ask the user for."""
    wanted = list(dict.fromkeys(paths))
    expected = {p: _expected(spec, p) for p in wanted}
    ask = "; ".join(f"{p.replace('|', ' or ')}: {expected[p]}" for p in wanted)
    return MissingArguments(
        f"{spec.name} needs {', '.join(p.replace('|', ' or ') for p in wanted)}",
        function=spec.name,
        missing=wanted,
        ask=f"Ask the user for {ask}",
        errors=[_error(p, "required", expected[p]) for p in wanted],
    )


def _expected(spec: FunctionSpec, path: str) -> str:
    options = path.split("|")
    described = [
        describe_at(spec.arguments, o.split("."), {"type": "missing", "msg": "required"})
        for o in options
    ]
    return " or ".join(described)


def unavailable(function: str) -> ServiceUnavailable:
    """The answer for a call cut short by a dependency restarting (retry it)."""
    return ServiceUnavailable(
        f"{function}: the database or the workflow engine is briefly unavailable;"
        " retry with the same Idempotency-Key",
        retryAfter=1,
    )


def _failed(
    call_id: str,
    function: str,
    arguments: Mapping[str, Any],
    exc: DomainError,
    started: float,
    *,
    ran: bool = True,
) -> CallResult:
    return CallResult(
        call_id=call_id,
        function=function,
        arguments=dict(arguments),
        executed=ran,
        success=False,
        error=_call_error(exc),
        execution_time_ms=_ms(started),
    )


def _call_error(exc: DomainError) -> CallError:
    return CallError(code=exc.code, message=exc.message, details=exc.details)


def _error(path: str, message: str, expected: str) -> dict[str, str]:
    return {"path": path, "message": message, "expected": expected}


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
