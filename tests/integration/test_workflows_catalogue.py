"""The trigger_workflow catalogue on the dev server: lead-scoring (HOT and WARM routes,
HubSpot upsert against the fake HubSpot API) and booking-agent (falls back to the
first alternative slot when the preferred one is taken)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.testing import WorkflowEnvironment

from adapters.hubspot import HubSpotClient
from adapters.settings import Settings
from adapters.temporal.gateway import TemporalWorkflowGateway
from domain.functions.registry import REGISTRY
from domain.workflow_port import WorkflowStatus
from tests.fakes import FakeHubSpot
from tests.fixtures.temporal import World, next_weekday, seed_clinic
from workflows.worker import build_workers, running

HOT = [{"role": "user", "content": "Vreau All-on-4 cat mai repede, cat costa? buget euro"}]
WARM = [{"role": "user", "content": "As vrea informatii despre albire"}]


async def finished(env: WorkflowEnvironment, gateway: TemporalWorkflowGateway, clinic: str,
                   wid: str) -> WorkflowStatus:  # fmt: skip
    with contextlib.suppress(Exception):  # a failed workflow: its status says why
        await env.client.get_workflow_handle(wid).result()
    return await gateway.status(clinic, wid)


async def confirmed(gateway: TemporalWorkflowGateway, clinic: str, wid: str) -> None:
    for _ in range(400):
        status = await gateway.status(clinic, wid)
        if {x.step_id: x.status for x in status.steps}["confirm"] == "completed":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{wid} was not confirmed")


def steps(status: WorkflowStatus) -> dict[str, Any]:
    return {s.step_id: s for s in status.steps}


async def test_hot_lead_is_scored_synced_to_hubspot_and_handed_to_a_person(
    temporal_env: WorkflowEnvironment, temporal_settings: Settings, world: World
) -> None:
    clinic = await seed_clinic(world.commands)
    gateway = TemporalWorkflowGateway(temporal_env.client, temporal_settings, registry=REGISTRY)
    with FakeHubSpot() as hubspot_api:
        async with HubSpotClient(hubspot_api.token, base_url=hubspot_api.url) as hubspot:
            resources = dataclasses.replace(world.resources, hubspot=hubspot)
            async with running(build_workers(temporal_env.client, temporal_settings, resources)):
                started = await gateway.start_catalogue(
                    clinic.context,
                    "lead-scoring",
                    {"phone": "0721 000 111", "channel": "whatsapp", "messages": HOT},
                    priority="high",
                )
                status = await finished(
                    temporal_env, gateway, clinic.clinic_id, started.workflow_id
                )
        contacts = list(hubspot_api.contacts.values())
    s = steps(status)
    assert status.status == "completed"
    assert status.result["classification"] == "HOT"
    assert s["hubspot"].status == "completed" and s["hubspot"].result["created"] is True
    assert len(contacts) == 1 and contacts[0]["properties"]["phone"] == "+40721000111"
    assert contacts[0]["properties"]["lead_status"] == "scored"
    task = status.result["humanTask"]
    due = datetime.fromisoformat(task["dueAt"])
    assert task["assignee"] == "front-desk"
    assert abs(due - datetime.now(UTC) - timedelta(minutes=30)) < timedelta(minutes=2)
    lead = status.result["leadId"]
    assert await world.events(clinic.clinic_id, f"lead-{lead}") == [
        "LeadCreated",
        "LeadScored",
        "LeadAssigned",
    ]


async def test_warm_lead_starts_its_nurture_sequence_once(
    temporal_env: WorkflowEnvironment, temporal_settings: Settings, world: World
) -> None:
    clinic = await seed_clinic(world.commands)
    gateway = TemporalWorkflowGateway(temporal_env.client, temporal_settings, registry=REGISTRY)
    async with running(build_workers(temporal_env.client, temporal_settings, world.resources)):
        ids = []
        for _ in range(2):  # the same lead twice: one nurture sequence
            started = await gateway.start_catalogue(
                clinic.context,
                "lead-scoring",
                {"phone": "0721 000 222", "channel": "web", "messages": WARM},
            )
            status = await finished(temporal_env, gateway, clinic.clinic_id, started.workflow_id)
            assert status.result["classification"] == "WARM"
            assert steps(status)["hubspot"].error["code"] == "NOT_CONFIGURED"
            ids.append(status.result["nurture"]["workflowId"])
        assert ids[0] == ids[1]
        nurture = await gateway.status(clinic.clinic_id, ids[0])
        assert nurture.status == "running" and nurture.workflow_type == "NurtureSequenceWorkflow"
        assert [s.step_id for s in nurture.steps] == ["touch_24h", "touch_72h", "touch_168h"]
        await temporal_env.client.get_workflow_handle(ids[0]).terminate("test over")


async def test_booking_agent_moves_to_the_first_alternative(
    temporal_env: WorkflowEnvironment, temporal_settings: Settings, world: World
) -> None:
    clinic = await seed_clinic(world.commands)
    gateway = TemporalWorkflowGateway(temporal_env.client, temporal_settings, registry=REGISTRY)
    day = next_weekday()
    async with running(build_workers(temporal_env.client, temporal_settings, world.resources)):
        for _ in range(2):  # take both morning slots (09:00, 10:30) of the only doctor
            taken = await gateway.start_booking(
                clinic.context,
                {"patientId": clinic.patient_id, "serviceType": "consultation",
                 "preferredDate": day.isoformat(), "preferredTimeSlot": "morning",
                 "notifyPatient": False},
            )  # fmt: skip
            await confirmed(gateway, clinic.clinic_id, taken.workflow_id)
        agent = await gateway.start_catalogue(
            clinic.context,
            "booking-agent",
            {"patientId": clinic.patient_id, "serviceType": "consultation",
             "preferredDate": day.isoformat(), "preferredTimeSlot": "morning"},
        )  # fmt: skip
        status = await finished(temporal_env, gateway, clinic.clinic_id, agent.workflow_id)
        s = steps(status)
        assert status.status == "completed"
        assert s["attempt_1"].status == "failed" and s["attempt_1"].error["code"] == "CONFLICT"
        assert s["attempt_2"].status == "completed"
        booked = status.result
        assert booked["status"] == "scheduled" and booked["start"].startswith(day.isoformat())
        assert "T14:00:00" in booked["start"]  # the first free slot that day
        child = await gateway.status(clinic.clinic_id, booked["bookingWorkflowId"])
        assert child.workflow_type == "BookingWorkflow" and child.status == "running"
