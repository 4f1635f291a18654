"""The execution path shared by /ai/execute and /mcp: audit, scopes, errors, plans."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from adapters.anthropic_planner import ClaudePlanner
from adapters.settings import Settings
from api.ai_models import (
    Call,
    FunctionCallRequest,
    NaturalContext,
    NaturalRequest,
    Step,
    WorkflowRequest,
)
from api.auth import Principal
from api.gateway import Gateway, RequestInfo
from domain.errors import InvalidArguments
from domain.queries import CheckConsent, ConsentCheck, ConsentTypeStatus, GetPatient, PatientView
from tests.fakes import FakeAnthropic
from tests.unit.gateway_fakes import (
    ALL_SCOPES,
    NOW,
    CannedQueries,
    MemoryAudit,
    MemoryCommands,
    RecordingWorkflows,
)

PHONE = "+40721234567"
WRITER = Principal("key_w", "clinic-1", ALL_SCOPES, "writer")
READER = Principal("key_r", "clinic-1", frozenset({"read"}), "reader")


class World:
    def __init__(self, *, max_calls: int = 5, planner: Any = None) -> None:
        self.commands = MemoryCommands()
        self.queries = CannedQueries()
        self.workflows = RecordingWorkflows()
        self.audit = MemoryAudit()
        self.gateway = Gateway(
            commands=self.commands,
            queries=self.queries,
            workflows=self.workflows,
            audit=self.audit,
            settings=Settings.model_validate({"max_calls_per_request": max_calls}),
            planner=planner,
            clock=lambda: NOW,
        )
        self.queries.answer(GetPatient, lambda q: PatientView(patient_id="pat-1", phone=PHONE))
        granted = ConsentTypeStatus(consent_type="data_processing", status="granted", granted=True)
        self.queries.answer(
            CheckConsent,
            lambda q: ConsentCheck(patient_id="pat-1", consents=(granted,), all_granted=True),
        )

    async def run(self, request: Any, principal: Principal = WRITER, key: str | None = None) -> Any:
        info = RequestInfo.new(surface="http", idempotency_key=key)
        return await self.gateway.execute(principal, request, info)


def calls(*items: tuple[str, dict[str, Any]]) -> FunctionCallRequest:
    return FunctionCallRequest(
        type="function_call", calls=[Call(function=f, arguments=a) for f, a in items]
    )


# --- function calls -------------------------------------------------------------------------


async def test_independent_calls_run_concurrently():
    world = World()
    world.workflows.gate = asyncio.Event()
    request = calls(
        ("trigger_workflow", {"workflow": "patient-journey", "payload": {"patientId": "a"}}),
        ("trigger_workflow", {"workflow": "nurture-sequence", "payload": {"phone": PHONE}}),
    )
    running = asyncio.create_task(world.run(request))
    for _ in range(100):  # both starts are in flight before either may finish
        if len(world.workflows.of("catalogue")) == 2:
            break
        await asyncio.sleep(0)
    assert len(world.workflows.of("catalogue")) == 2
    world.workflows.gate.set()
    response = await running
    assert response.success and [r.call_id for r in response.results] == ["c1", "c2"]


async def test_more_calls_than_allowed_is_an_explicit_error_and_nothing_runs():
    world = World(max_calls=2)
    request = calls(*[("get_patient", {"patientId": "p"})] * 3)
    with pytest.raises(InvalidArguments) as refused:
        await world.run(request)
    assert refused.value.details["limit"] == 2
    assert refused.value.details["errors"][0]["path"] == "calls"
    assert world.audit.entries == [] and world.queries.asked == []


async def test_duplicate_call_ids_are_refused():
    world = World()
    request = FunctionCallRequest(
        type="function_call",
        calls=[Call(function="get_patient", arguments={"patientId": "p"}, call_id="x")] * 2,
    )
    with pytest.raises(InvalidArguments, match="duplicate callId"):
        await world.run(request)


async def test_each_call_fails_alone_with_an_error_an_llm_can_act_on():
    world = World()
    response = await world.run(
        calls(
            ("get_patiant", {"patientId": "p"}),
            ("schedule_appointment", {"patientId": "pat-1", "preferredDate": "tomorrow"}),
            ("get_patient", {"patientId": "pat-1"}),
        )
    )
    unknown, invalid, ok = response.results
    assert response.success is False
    assert unknown.error.code == "FUNCTION_NOT_FOUND"
    assert unknown.error.details["suggestions"][0] == "get_patient"
    assert invalid.error.code == "INVALID_ARGUMENTS"
    paths = {e["path"] for e in invalid.error.details["errors"]}
    assert paths == {"serviceType", "preferredDate"}
    assert ok.success and ok.result["found"] is True and ok.arguments == {"patientId": "pat-1"}


async def test_validated_arguments_come_back_with_defaults_applied():
    world = World()
    response = await world.run(
        calls(
            (
                "schedule_appointment",
                {"patientId": "pat-1", "serviceType": "cleaning", "preferredDate": "2025-03-17"},
            )
        )
    )
    (result,) = response.results
    assert result.arguments == {
        "patientId": "pat-1",
        "serviceType": "cleaning",
        "preferredDate": "2025-03-17",
        "preferredTimeSlot": "any",
        "urgency": "normal",
    }


async def test_every_call_is_audited_before_it_runs_with_its_decision():
    world = World()
    response = await world.run(
        calls(
            ("get_patient", {"patientId": "p"}), ("score_lead", {"phone": PHONE, "channel": "web"})
        ),
        principal=READER,
        key="idem-1",
    )
    allowed, denied = world.audit.entries
    assert (allowed.function, allowed.decision, allowed.reason) == ("get_patient", "allowed", None)
    assert (denied.function, denied.decision) == ("score_lead", "denied")
    assert denied.reason == "missing scope(s): write"
    for entry in world.audit.entries:
        assert (entry.clinic_id, entry.key_id, entry.actor) == (
            "clinic-1",
            "key_r",
            "api_key:key_r",
        )
        assert entry.request_id == response.request_id and entry.trace_id == response.trace_id
        assert entry.idempotency_key == "idem-1" and entry.surface == "http"
    forbidden = response.results[1]
    assert forbidden.error.code == "FORBIDDEN" and forbidden.error.details["missing"] == ["write"]
    assert world.commands.executed == []


async def test_unknown_functions_are_audited_as_denied():
    world = World()
    await world.run(calls(("drop_tables", {})))
    (entry,) = world.audit.entries
    assert (entry.function, entry.decision, entry.reason) == (
        "drop_tables",
        "denied",
        "unknown function",
    )


async def test_without_an_audit_record_nothing_changes_and_nothing_is_disclosed():
    world = World()
    world.audit.fail = True
    response = await world.run(
        calls(
            ("score_lead", {"phone": PHONE, "channel": "web"}), ("get_patient", {"patientId": "p"})
        )
    )
    write, read = response.results
    # the audit database being away is an outage: retry later (503), nothing was done
    assert write.error.code == read.error.code == "SERVICE_UNAVAILABLE"
    assert "audit" in write.error.message and read.result is None
    assert world.commands.executed == []


async def test_an_unexpected_failure_is_execution_error_without_internals():
    world = World()
    world.queries.answer(GetPatient, lambda q: (_ for _ in ()).throw(RuntimeError("db password=x")))
    response = await world.run(calls(("get_patient", {"patientId": "p"})))
    (result,) = response.results
    assert result.error.code == "EXECUTION_ERROR"
    assert "password" not in result.error.message and response.trace_id in result.error.message


async def test_writes_report_their_position_for_later_reads():
    world = World()
    response = await world.run(calls(("score_lead", {"phone": PHONE, "channel": "web"})))
    assert response.position == response.results[0].position == 2


# --- natural language -----------------------------------------------------------------------


def natural(query: str, **extra: Any) -> NaturalRequest:
    return NaturalRequest(type="natural", query=query, **extra)


async def test_a_single_read_is_executed_directly_and_the_intent_explained():
    world = World()
    response = await world.run(
        natural("Are pacientul 0721234567 acord pentru marketing pe WhatsApp?")
    )
    assert response.success
    assert response.intent.functions == ["check_consent"] and response.intent.source == "rules"
    assert 0.5 <= response.intent.confidence <= 1 and response.intent.evidence
    (result,) = response.results
    assert result.executed and result.arguments == {
        "phone": PHONE,
        "consentTypes": ["marketing_whatsapp"],
    }
    ((asked, _),) = world.queries.asked
    assert asked == CheckConsent(phone=PHONE, consent_types=("marketing_whatsapp",))


async def test_a_call_lacking_arguments_says_what_to_ask_and_nothing_runs():
    world = World()
    response = await world.run(natural("Programează o curățare pentru mâine"))
    (result,) = response.results
    assert not result.executed and not result.success
    assert result.function == "schedule_appointment"
    assert result.arguments == {"serviceType": "cleaning", "preferredDate": "2025-03-11"}
    assert result.error.code == "MISSING_ARGUMENTS"
    assert result.error.details["missing"] == ["patientId"]
    assert "patientId" in result.error.details["ask"]
    assert world.workflows.calls == [] and world.queries.asked == []


async def test_the_callers_context_fills_the_patient():
    world = World()
    response = await world.run(
        natural("Programează o curățare pentru mâine", context=NaturalContext(patient_id="pat-1"))
    )
    (result,) = response.results
    assert result.success and result.result["status"] == "pending"
    (booking,) = world.workflows.of("booking")
    assert booking["preferred_date"] == (NOW + timedelta(days=1)).date().isoformat()


async def test_interpret_only_runs_nothing():
    world = World()
    response = await world.run(natural("Anulează programarea apt-123", execute=False))
    (result,) = response.results
    assert response.success and not result.executed
    assert result.arguments == {"appointmentId": "apt-123", "notifyPatient": True}
    assert world.commands.executed == [] and world.audit.entries == []


async def test_two_requests_become_a_plan_workflow():
    world = World()
    response = await world.run(natural("Caută pacientul pat-1 și anulează programarea apt-1"))
    assert response.success and response.workflow_id == "ai-plan-1" and response.results == []
    (plan,) = world.workflows.of("plan")
    steps = plan["steps"]
    assert [(s["step_id"], s["function"], s["depends_on"]) for s in steps] == [
        ("c1", "get_patient", []),
        ("c2", "cancel_appointment", ["c1"]),
    ]
    assert [s["side_effect"] for s in steps] == ["read", "destructive"]
    assert [s.function for s in response.plan.steps] == ["get_patient", "cancel_appointment"]
    assert [e.decision for e in world.audit.entries] == ["allowed", "allowed"]
    assert world.commands.executed == []  # the workflow runs them, not the request


async def test_no_intent_answers_with_suggestions():
    world = World()
    response = await world.run(natural("bla bla nimic"))
    assert response.success is False and response.results == []
    assert response.error.code == "NO_INTENT_DETECTED"
    suggested = [s["function"] for s in response.error.details["suggestions"]]
    assert "get_patient" in suggested
    assert response.intent.functions == []


async def test_a_detected_call_the_key_may_not_run_is_forbidden_and_nothing_runs():
    world = World()
    response = await world.run(natural("Anulează programarea apt-123"), principal=READER)
    (result,) = response.results
    assert result.error.code == "FORBIDDEN" and not result.executed
    assert [(e.function, e.decision) for e in world.audit.entries] == [
        ("cancel_appointment", "denied")
    ]


# --- Claude as the planner (local fake of the Anthropic API) --------------------------------


@pytest.fixture
def anthropic():
    with FakeAnthropic() as fake:
        yield fake


def planner_for(fake: FakeAnthropic, timeout_s: float = 5.0) -> ClaudePlanner:
    return ClaudePlanner(fake.api_key, "claude-test", base_url=fake.url, timeout_s=timeout_s)


async def test_claude_plans_with_only_the_functions_the_key_allows(anthropic: FakeAnthropic):
    anthropic.reply_with_tools(("get_patient", {"phone": "0721234567"}))
    world = World(planner=planner_for(anthropic))
    response = await world.run(natural("Găsește-o pe Ana, 0721234567"), principal=READER)
    assert response.intent.source == "claude" and response.intent.functions == ["get_patient"]
    assert response.intent.confidence == 1.0
    (result,) = response.results
    assert result.success and result.arguments == {"phone": PHONE}
    (sent,) = anthropic.requests_to("messages")
    offered = {tool["name"] for tool in sent.json()["tools"]}
    assert offered == {s.name for s in world.gateway.registry.allowed(READER.scopes)}


async def test_claudes_plan_missing_arguments_runs_nothing(anthropic: FakeAnthropic):
    anthropic.reply_with_tools(("schedule_appointment", {"serviceType": "cleaning"}))
    world = World(planner=planner_for(anthropic))
    response = await world.run(natural("Vreau o programare la curățare"))
    (result,) = response.results
    assert result.error.code == "MISSING_ARGUMENTS"
    assert set(result.error.details["missing"]) == {"patientId", "preferredDate"}
    assert response.intent.confidence == 0.0
    assert world.workflows.calls == []


async def test_the_rules_take_over_when_claude_fails(anthropic: FakeAnthropic):
    anthropic.fail_next(529, "overloaded_error")
    world = World(planner=planner_for(anthropic))
    response = await world.run(natural("Anulează programarea apt-123", execute=False))
    assert response.intent.source == "rules"
    assert response.intent.functions == ["cancel_appointment"]
    assert len(anthropic.requests_to("messages")) == 1


async def test_the_rules_take_over_when_claude_times_out(anthropic: FakeAnthropic):
    anthropic.delay_next(2.0)
    world = World(planner=planner_for(anthropic, timeout_s=0.2))
    response = await world.run(natural("Anulează programarea apt-123", execute=False))
    assert (
        response.intent.source == "rules" and response.results[0].function == "cancel_appointment"
    )


# --- workflow requests ----------------------------------------------------------------------


def workflow(*steps: Step, **extra: Any) -> WorkflowRequest:
    return WorkflowRequest(type="workflow", steps=list(steps), **extra)


async def test_a_plan_with_references_is_validated_then_started_durably():
    world = World()
    response = await world.run(
        workflow(
            Step(step_id="find", function="get_patient", arguments={"phone": "0721234567"}),
            Step(
                step_id="book",
                function="schedule_appointment",
                arguments={
                    "patientId": {"$ref": "steps.find.result.patient.patientId"},
                    "serviceType": "cleaning",
                    "preferredDate": "2025-03-17",
                },
                depends_on=["find"],
            ),
            require_approval=True,
        )
    )
    assert response.success and response.workflow_id == "ai-plan-1"
    (plan,) = world.workflows.of("plan")
    assert plan["policy"] == {"require_approval": True}
    assert plan["steps"][1]["arguments"]["patientId"] == {
        "$ref": "steps.find.result.patient.patientId"
    }
    assert [s.side_effect for s in response.plan.steps] == ["read", "write"]


async def test_a_plan_with_a_bad_step_starts_nothing_and_names_the_step():
    world = World()
    response = await world.run(
        workflow(
            Step(step_id="a", function="get_patient", arguments={"patientId": "p"}),
            Step(
                step_id="b",
                function="schedule_appointment",
                arguments={"patientId": {"$ref": "steps.a.result.patient.patientId"}},
                depends_on=["a"],
            ),
            Step(step_id="c", function="send_whatsap", arguments={}),
        )
    )
    assert response.success is False and response.workflow_id is None
    bad_args, unknown = response.results
    assert bad_args.call_id == "b" and bad_args.error.code == "INVALID_ARGUMENTS"
    assert {e["path"] for e in bad_args.error.details["errors"]} == {"serviceType", "preferredDate"}
    assert unknown.call_id == "c" and unknown.error.code == "FUNCTION_NOT_FOUND"
    assert world.workflows.calls == []


async def test_a_cyclic_plan_is_refused_with_paths():
    world = World()
    with pytest.raises(InvalidArguments) as refused:
        await world.run(
            workflow(
                Step(
                    step_id="a",
                    function="get_patient",
                    arguments={"patientId": "p"},
                    depends_on=["b"],
                ),
                Step(
                    step_id="b",
                    function="get_patient",
                    arguments={"patientId": "p"},
                    depends_on=["a"],
                ),
            )
        )
    assert "cycle" in refused.value.message
    assert world.workflows.calls == []
