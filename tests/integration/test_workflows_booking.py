"""BookingWorkflow end to end: real dev server, real command handlers and event store.

schedule → hold → confirm → WhatsApp confirmation (fake 360dialog over HTTP) →
status per step; consent refusal; cancel and reschedule updates; clinic isolation.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from adapters.settings import Settings
from adapters.temporal.gateway import TemporalWorkflowGateway
from adapters.temporal.payloads import (
    CANCEL_UPDATE,
    RESCHEDULE_UPDATE,
    CancelRequest,
    RescheduleRequest,
)
from domain.errors import NotFound
from domain.functions.registry import REGISTRY
from domain.workflow_port import WorkflowStatus
from tests.fixtures.temporal import World, next_weekday, seed_clinic
from workflows.worker import build_workers, running

FINISHED = ("completed", "failed", "skipped")


async def wait_for_step(
    gateway: TemporalWorkflowGateway,
    clinic_id: str,
    workflow_id: str,
    step: str,
    within: float = 20,
) -> WorkflowStatus:
    """Poll get_workflow_status until ``step`` finished (or the workflow closed)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        status = await gateway.status(clinic_id, workflow_id)
        steps = {s.step_id: s for s in status.steps}
        if status.status != "running" or (step in steps and steps[step].status in FINISHED):
            return status
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"step {step} did not finish: {status.model_dump()}")
        await asyncio.sleep(0.05)


def steps_of(status: WorkflowStatus) -> dict[str, Any]:
    return {s.step_id: s for s in status.steps}


async def test_booking_end_to_end(
    temporal_env: WorkflowEnvironment, temporal_settings: Settings, world: World
) -> None:
    clinic = await seed_clinic(world.commands)
    gateway = TemporalWorkflowGateway(temporal_env.client, temporal_settings, registry=REGISTRY)
    async with running(build_workers(temporal_env.client, temporal_settings, world.resources)):
        started = await gateway.start_booking(
            clinic.context,
            {
                "patientId": clinic.patient_id,
                "serviceType": "cleaning",
                "preferredDate": next_weekday().isoformat(),
                "preferredTimeSlot": "morning",
            },
        )
        assert started.workflow_id.startswith(f"{clinic.clinic_id}:booking:")
        status = await wait_for_step(gateway, clinic.clinic_id, started.workflow_id, "confirmation")
        appointment_id = started.workflow_id.rsplit(":", 1)[1]

    steps = steps_of(status)
    assert status.status == "running"  # waiting for the reminders now
    assert [steps[s].status for s in ("hold", "confirm", "confirmation")] == ["completed"] * 3
    assert steps["reminder_24h"].status == "pending"
    assert status.result["status"] == "scheduled"
    assert status.result["start"].endswith("+02:00") and "T09:00:00" in status.result["start"]
    assert await world.events(clinic.clinic_id, f"appointment-{appointment_id}") == [
        "AppointmentRequested",
        "AppointmentScheduled",
    ]
    message_id = steps["confirmation"].result["message_id"]
    assert await world.events(clinic.clinic_id, f"message-{message_id}") == [
        "WhatsAppMessageQueued",
        "WhatsAppMessageSent",
    ]
    sent = world.whatsapp.accepted
    assert len(sent) == 1 and sent[0]["template"]["name"] == "appointment_confirmation"
    params = [p["text"] for p in sent[0]["template"]["components"][0]["parameters"]]
    assert params[0] == "Ana" and params[2] == "09:00" and params[3] == "Str. Lunii 3"


async def test_booking_without_consent_fails_and_holds_nothing(
    temporal_env: WorkflowEnvironment, temporal_settings: Settings, world: World
) -> None:
    clinic = await seed_clinic(world.commands, consents=())
    gateway = TemporalWorkflowGateway(temporal_env.client, temporal_settings, registry=REGISTRY)
    async with running(build_workers(temporal_env.client, temporal_settings, world.resources)):
        started = await gateway.start_booking(
            clinic.context,
            {
                "patientId": clinic.patient_id,
                "serviceType": "cleaning",
                "preferredDate": next_weekday().isoformat(),
            },
        )
        status = await wait_for_step(gateway, clinic.clinic_id, started.workflow_id, "hold")
        while status.status == "running":
            status = await gateway.status(clinic.clinic_id, started.workflow_id)
    assert status.status == "failed"
    assert status.error is not None and status.error["code"] == "CONSENT_REQUIRED"
    assert status.error["details"]["missing"] == ["data_processing"]
    steps = steps_of(status)
    assert steps["hold"].status == "failed"
    assert steps["confirm"].status == "skipped"
    assert steps["confirm"].error["code"] == "DEPENDENCY_FAILED"
    kinds = {e.event_type for e in await world.all_events(clinic.clinic_id)}
    assert not kinds & {"AppointmentRequested", "SlotHeld", "WhatsAppMessageQueued"}
    assert world.whatsapp.accepted == []


async def test_cancel_and_reschedule_updates(
    temporal_env: WorkflowEnvironment, temporal_settings: Settings, world: World
) -> None:
    clinic = await seed_clinic(world.commands)
    gateway = TemporalWorkflowGateway(temporal_env.client, temporal_settings, registry=REGISTRY)
    async with running(build_workers(temporal_env.client, temporal_settings, world.resources)):
        started = await gateway.start_booking(
            clinic.context,
            {
                "patientId": clinic.patient_id,
                "serviceType": "cleaning",
                "preferredDate": next_weekday().isoformat(),
                "notifyPatient": False,
            },
        )
        status = await wait_for_step(gateway, clinic.clinic_id, started.workflow_id, "confirm")
        handle = temporal_env.client.get_workflow_handle(started.workflow_id)
        start = datetime.fromisoformat(status.result["start"])
        moved = await handle.execute_update(
            RESCHEDULE_UPDATE,
            RescheduleRequest(new_start=start + timedelta(days=1)),
            result_type=dict,
        )
        assert moved["start"] == (start + timedelta(days=1)).isoformat()
        cancelled = await handle.execute_update(
            CANCEL_UPDATE, CancelRequest(reason="patient asked"), result_type=dict
        )
        assert cancelled["status"] == "cancelled"
        await handle.result()
        status = await gateway.status(clinic.clinic_id, started.workflow_id)
    assert status.status == "completed"
    assert status.result["status"] == "cancelled"
    steps = steps_of(status)
    assert steps["reminder_24h"].status == steps["reminder_2h"].status == "skipped"
    assert steps["complete"].error["code"] == "CANCELLED"
    appointment_id = started.workflow_id.rsplit(":", 1)[1]
    assert await world.events(clinic.clinic_id, f"appointment-{appointment_id}") == [
        "AppointmentRequested",
        "AppointmentScheduled",
        "AppointmentRescheduled",
        "AppointmentCancelled",
    ]


async def test_status_is_clinic_isolated_and_unknown_ids_are_not_found(
    temporal_env: WorkflowEnvironment, temporal_settings: Settings, world: World
) -> None:
    clinic = await seed_clinic(world.commands)
    gateway = TemporalWorkflowGateway(temporal_env.client, temporal_settings, registry=REGISTRY)
    async with running(build_workers(temporal_env.client, temporal_settings, world.resources)):
        started = await gateway.start_booking(
            clinic.context,
            {
                "patientId": clinic.patient_id,
                "serviceType": "cleaning",
                "preferredDate": next_weekday().isoformat(),
            },
        )
        await wait_for_step(gateway, clinic.clinic_id, started.workflow_id, "hold")
        other = started.workflow_id.replace(clinic.clinic_id, "clinic-other", 1)
        with pytest.raises(NotFound):
            await gateway.status("clinic-other", started.workflow_id)
        with pytest.raises(NotFound):
            await gateway.status("clinic-other", other)
        with pytest.raises(NotFound):
            await gateway.status(clinic.clinic_id, f"{clinic.clinic_id}:booking:nope")
        await temporal_env.client.get_workflow_handle(started.workflow_id).terminate("test over")
