"""AIPlanWorkflow: dependsOn ordering, $ref arguments, skips, approvals, continue-as-new."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

import domain.functions.leads
import domain.functions.workflows  # noqa: F401 - registers the functions the plans call
from adapters.settings import Settings
from adapters.temporal.gateway import TemporalWorkflowGateway
from domain.errors import Conflict, InvalidArguments
from domain.functions.registry import REGISTRY
from domain.workflow_port import WorkflowStatus
from tests.fixtures.temporal import World, seed_clinic
from workflows.worker import build_workers, running

HOT = [{"role": "user", "content": "Vreau All-on-4, cât costă? Am buget in euro."}]


def score(phone: str) -> dict[str, Any]:
    return {
        "function": "score_lead",
        "arguments": {"phone": phone, "channel": "whatsapp", "messages": HOT},
    }


async def finished(
    client: Client, gateway: TemporalWorkflowGateway, clinic_id: str, wid: str
) -> WorkflowStatus:
    await client.get_workflow_handle(wid).result()
    return await gateway.status(clinic_id, wid)


def by_id(status: WorkflowStatus) -> dict[str, Any]:
    return {s.step_id: s for s in status.steps}


async def test_plan_runs_dependencies_references_and_skips(
    temporal_env: WorkflowEnvironment, temporal_settings: Settings, world: World
) -> None:
    clinic = await seed_clinic(world.commands)
    gateway = TemporalWorkflowGateway(temporal_env.client, temporal_settings, registry=REGISTRY)
    plan = {
        "steps": [
            {"stepId": "s1", **score("0721 111 222")},
            {
                "stepId": "s2",
                "function": "trigger_workflow",
                "arguments": {
                    "workflow": "nurture-sequence",
                    "payload": {
                        "phone": "+40721111222",
                        "classification": "WARM",
                        "leadId": {"$ref": "steps.s1.result.leadId"},
                    },
                },
                "dependsOn": ["s1"],
            },
            {
                "stepId": "s3",
                "function": "get_workflow_status",
                "arguments": {"taskId": {"$ref": "steps.s2.result.workflowId"}},
                "dependsOn": ["s2"],
            },
            {"stepId": "bad", **score("123")},
            {
                "stepId": "after_bad",
                "function": "get_workflow_status",
                "arguments": {"taskId": {"$ref": "steps.bad.result.leadId"}},
                "dependsOn": ["bad"],
            },
        ]
    }
    async with running(build_workers(temporal_env.client, temporal_settings, world.resources)):
        started = await gateway.start_plan(clinic.context, plan)
        status = await finished(temporal_env.client, gateway, clinic.clinic_id, started.workflow_id)
    steps = by_id(status)
    assert status.status == "completed"
    assert [steps[s].status for s in ("s1", "s2", "s3")] == ["completed"] * 3
    assert steps["s1"].result["classification"] == "HOT"
    nurture_id = steps["s2"].result["workflowId"]
    assert nurture_id.startswith(f"{clinic.clinic_id}:nurture-sequence:")
    assert steps["s3"].result["workflowId"] == nurture_id  # s3 got s2's result by reference
    assert steps["s2"].finished_at <= steps["s3"].started_at
    assert steps["bad"].status == "failed" and steps["bad"].error["code"] == "INVALID_ARGUMENTS"
    assert steps["after_bad"].status == "skipped"
    assert steps["after_bad"].error["code"] == "DEPENDENCY_FAILED"
    assert "bad failed" in steps["after_bad"].error["message"]
    await temporal_env.client.get_workflow_handle(nurture_id).terminate("test over")


async def test_invalid_plans_are_refused_before_starting(
    temporal_env: WorkflowEnvironment, temporal_settings: Settings, world: World
) -> None:
    clinic = await seed_clinic(world.commands)
    gateway = TemporalWorkflowGateway(temporal_env.client, temporal_settings, registry=REGISTRY)
    cyclic = {
        "steps": [
            {"stepId": "a", **score("0721111222"), "dependsOn": ["b"]},
            {"stepId": "b", **score("0721111222"), "dependsOn": ["a"]},
        ]
    }
    with pytest.raises(InvalidArguments, match="cycle"):
        await gateway.start_plan(clinic.context, cyclic)
    not_an_ancestor = {
        "steps": [
            {"stepId": "a", **score("0721111222")},
            {
                "stepId": "b",
                "function": "get_workflow_status",
                "arguments": {"taskId": {"$ref": "steps.a.result.leadId"}},
            },
        ]
    }
    with pytest.raises(InvalidArguments, match="not in dependsOn"):
        await gateway.start_plan(clinic.context, not_an_ancestor)


async def test_outbound_steps_wait_for_approval_and_rejection_skips_dependents(
    temporal_env: WorkflowEnvironment, temporal_settings: Settings, world: World
) -> None:
    clinic = await seed_clinic(world.commands)
    # Without a registry the gateway takes each step's declared side-effect class.
    gateway = TemporalWorkflowGateway(temporal_env.client, temporal_settings)
    plan = {
        "policy": {"requireApproval": True},
        "steps": [
            {"stepId": "read", **score("0721000001"), "sideEffect": "write"},
            {
                "stepId": "send",
                **score("0721000002"),
                "sideEffect": "outbound",
                "dependsOn": ["read"],
            },
            {"stepId": "drop", **score("0721000003"), "sideEffect": "destructive"},
            {"stepId": "after_drop", **score("0721000004"), "dependsOn": ["drop"]},
        ],
    }
    async with running(build_workers(temporal_env.client, temporal_settings, world.resources)):
        started = await gateway.start_plan(clinic.context, plan)
        wid = started.workflow_id
        for _ in range(200):
            steps = by_id(await gateway.status(clinic.clinic_id, wid))
            if (
                steps["send"].status == "waiting_approval"
                and steps["drop"].status == "waiting_approval"
            ):
                break
            await asyncio.sleep(0.05)
        assert steps["read"].status == "completed"
        assert steps["after_drop"].status == "pending"
        assert not any(
            e.event_type == "LeadCreated" and e.data["phone"] == "+40721000002"
            for e in await world.all_events(clinic.clinic_id)
        )
        approved = await gateway.decide_step(
            clinic.clinic_id, wid, "send", approve=True, reason=None
        )
        assert approved.status == "completed"
        with pytest.raises(Conflict, match="not waiting for approval"):
            await gateway.decide_step(clinic.clinic_id, wid, "read", approve=True, reason=None)
        rejected = await gateway.decide_step(
            clinic.clinic_id, wid, "drop", approve=False, reason="not now"
        )
        assert rejected.status == "skipped" and rejected.error["message"] == "rejected: not now"
        status = await finished(temporal_env.client, gateway, clinic.clinic_id, wid)
        with pytest.raises(Conflict, match="no longer running"):
            await gateway.decide_step(clinic.clinic_id, wid, "drop", approve=True, reason=None)
    steps = by_id(status)
    assert steps["after_drop"].status == "skipped"
    assert steps["after_drop"].error["code"] == "DEPENDENCY_FAILED"


async def test_long_plans_continue_as_new_and_large_results_are_compacted(
    temporal_env: WorkflowEnvironment, temporal_settings: Settings, world: World
) -> None:
    clinic = await seed_clinic(world.commands)
    gateway = TemporalWorkflowGateway(temporal_env.client, temporal_settings, registry=REGISTRY)
    steps = [{"stepId": "s0", **score("0722000000")}]
    for i in range(1, 5):
        steps.append({"stepId": f"s{i}", **score(f"072200000{i}"), "dependsOn": [f"s{i - 1}"]})
    steps.append(
        {
            "stepId": "ref_big",
            "function": "get_workflow_status",
            "arguments": {"taskId": {"$ref": "steps.big.result.leadId"}},
            "dependsOn": ["big"],
        }
    )
    steps.append({"stepId": "big", **score("0722000009")})
    plan = {"policy": {"maxStepsPerRun": 2, "maxResultBytes": 64}, "steps": steps}
    async with running(build_workers(temporal_env.client, temporal_settings, world.resources)):
        started = await gateway.start_plan(clinic.context, plan)
        status = await finished(temporal_env.client, gateway, clinic.clinic_id, started.workflow_id)
        # Visibility is eventually consistent: the last runs may be listed a moment later.
        for _ in range(100):
            runs = [
                e
                async for e in temporal_env.client.list_workflows(
                    f"WorkflowId = '{started.workflow_id}'"
                )
            ]
            if len(runs) >= 3:
                break
            await asyncio.sleep(0.05)
    states = by_id(status)
    assert status.status == "completed"
    assert len(runs) >= 3  # continued as new at least twice
    assert all(states[f"s{i}"].status == "completed" for i in range(5))
    assert states["big"].result["truncated"] is True
    assert states["ref_big"].status == "failed"
    assert states["ref_big"].error["code"] == "INVALID_ARGUMENTS"
    scored = [e for e in await world.all_events(clinic.clinic_id) if e.event_type == "LeadScored"]
    assert len(scored) == 6  # each step ran exactly once across the runs


async def test_patient_changes_and_consent_withdrawals_wait_for_approval_too(
    temporal_env: WorkflowEnvironment, temporal_settings: Settings, world: World
) -> None:
    """update_patient and record_consent(withdrawn) are held; a grant runs at once."""
    clinic = await seed_clinic(world.commands)
    gateway = TemporalWorkflowGateway(temporal_env.client, temporal_settings, registry=REGISTRY)

    def consent(status: str) -> dict[str, object]:
        return {
            "function": "record_consent",
            "arguments": {
                "patientId": clinic.patient_id,
                "phone": clinic.phone,
                "consentType": "marketing_whatsapp",
                "status": status,
                "source": "in_person",
            },
        }

    plan = {
        "policy": {"requireApproval": True},
        "steps": [
            {"stepId": "grant", **consent("granted")},
            {"stepId": "withdraw", **consent("withdrawn"), "dependsOn": ["grant"]},
            {
                "stepId": "edit",
                "function": "update_patient",
                "arguments": {"patientId": clinic.patient_id, "updates": {"notes": "vip"}},
            },
        ],
    }
    async with running(build_workers(temporal_env.client, temporal_settings, world.resources)):
        started = await gateway.start_plan(clinic.context, plan)
        wid = started.workflow_id
        for _ in range(200):
            steps = by_id(await gateway.status(clinic.clinic_id, wid))
            if steps["withdraw"].status == "waiting_approval":
                break
            await asyncio.sleep(0.05)
        assert steps["grant"].status == "completed"
        assert (steps["withdraw"].status, steps["edit"].status) == (
            "waiting_approval",
            "waiting_approval",
        )
        events = await world.all_events(clinic.clinic_id)
        assert "PatientUpdated" not in [e.event_type for e in events]
        assert withdrawals(events) == 0
        rejected = await gateway.decide_step(
            clinic.clinic_id, wid, "withdraw", approve=False, reason="patient changed mind"
        )
        approved = await gateway.decide_step(
            clinic.clinic_id, wid, "edit", approve=True, reason=None
        )
        assert (rejected.status, approved.status) == ("skipped", "completed")
        await finished(temporal_env.client, gateway, clinic.clinic_id, wid)
    events = await world.all_events(clinic.clinic_id)
    assert [e.event_type for e in events].count("PatientUpdated") == 1
    assert withdrawals(events) == 0


def withdrawals(events: list[Any]) -> int:
    return sum(
        e.event_type == "ConsentRecorded" and e.data.get("status") == "withdrawn" for e in events
    )
