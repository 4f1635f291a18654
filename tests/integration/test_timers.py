"""Durable timers on the time-skipping server: reminders, cancellation, nurture cadences."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio.testing import WorkflowEnvironment

from adapters.settings import Settings
from adapters.temporal.gateway import TemporalWorkflowGateway
from adapters.temporal.payloads import CANCEL_UPDATE, CancelRequest
from domain.functions.registry import REGISTRY
from domain.workflow_port import StepStatus, WorkflowStatus
from tests.fixtures.temporal import World, next_weekday, seed_clinic
from workflows.worker import build_workers, running


async def booked(gateway: TemporalWorkflowGateway, clinic_id: str, wid: str) -> WorkflowStatus:
    for _ in range(400):
        status = await gateway.status(clinic_id, wid)
        if {s.step_id: s.status for s in status.steps}.get("confirm") == "completed":
            return status
        await asyncio.sleep(0.05)
    raise AssertionError("the booking was not confirmed")


async def skip_to_end(env: WorkflowEnvironment, workflow_id: str, booked: WorkflowStatus) -> None:
    """Skip time past the appointment's end, then wait for the workflow's result.

    (A handle from ``get_workflow_handle`` does not unlock time skipping by itself.)
    """
    end = datetime.fromisoformat(booked.result["end"])
    await env.sleep(end + timedelta(minutes=1) - await env.get_current_time())
    await env.client.get_workflow_handle(workflow_id).result()


def steps(status: WorkflowStatus) -> dict[str, StepStatus]:
    return {s.step_id: s for s in status.steps}


def at(step: StepStatus) -> datetime:
    assert step.started_at is not None
    return step.started_at


async def test_reminders_fire_24h_and_2h_before_then_the_visit_completes(
    time_skipping_env: WorkflowEnvironment, temporal_settings: Settings, timer_world: World
) -> None:
    env = time_skipping_env
    clinic = await seed_clinic(timer_world.commands)
    gateway = TemporalWorkflowGateway(
        env.client, temporal_settings, registry=REGISTRY, search_attributes=False
    )
    async with running(build_workers(env.client, temporal_settings, timer_world.resources)):
        started = await gateway.start_booking(
            clinic.context,
            {
                "patientId": clinic.patient_id,
                "serviceType": "cleaning",
                "preferredDate": next_weekday(after=await env.get_current_time()).isoformat(),
            },
        )
        first = await booked(gateway, clinic.clinic_id, started.workflow_id)
        await skip_to_end(env, started.workflow_id, first)
        status = await gateway.status(clinic.clinic_id, started.workflow_id)
    start = datetime.fromisoformat(first.result["start"])
    s = steps(status)
    assert status.status == "completed" and status.result["status"] == "completed"
    assert abs(at(s["reminder_24h"]) - (start - timedelta(hours=24))) < timedelta(seconds=5)
    assert abs(at(s["reminder_2h"]) - (start - timedelta(hours=2))) < timedelta(seconds=5)
    assert s["complete"].status == "completed" and at(s["complete"]) >= start
    sent = [m["template"]["name"] for m in timer_world.whatsapp.accepted]
    assert sent == [
        "appointment_confirmation",
        "appointment_reminder_24h",
        "appointment_reminder_2h",
    ]
    appointment = started.workflow_id.rsplit(":", 1)[1]
    assert await timer_world.events(clinic.clinic_id, f"appointment-{appointment}") == [
        "AppointmentRequested",
        "AppointmentScheduled",
        "AppointmentReminderSent",
        "AppointmentReminderSent",
        "AppointmentCompleted",
    ]


async def test_cancel_stops_the_remaining_reminders(
    time_skipping_env: WorkflowEnvironment, temporal_settings: Settings, timer_world: World
) -> None:
    env = time_skipping_env
    clinic = await seed_clinic(timer_world.commands)
    gateway = TemporalWorkflowGateway(
        env.client, temporal_settings, registry=REGISTRY, search_attributes=False
    )
    async with running(build_workers(env.client, temporal_settings, timer_world.resources)):
        started = await gateway.start_booking(
            clinic.context,
            {
                "patientId": clinic.patient_id,
                "serviceType": "cleaning",
                "preferredDate": next_weekday(after=await env.get_current_time()).isoformat(),
            },
        )
        first = await booked(gateway, clinic.clinic_id, started.workflow_id)
        start = datetime.fromisoformat(first.result["start"])
        await env.sleep(start - timedelta(hours=12) - await env.get_current_time())
        handle = env.client.get_workflow_handle(started.workflow_id)
        await handle.execute_update(CANCEL_UPDATE, CancelRequest(reason="sick"), result_type=dict)
        await handle.result()
        status = await gateway.status(clinic.clinic_id, started.workflow_id)
    s = steps(status)
    assert s["reminder_24h"].status == "completed"
    assert s["reminder_2h"].status == "skipped" and s["reminder_2h"].error["code"] == "CANCELLED"
    assert s["complete"].status == "skipped"
    assert s["cancellation_notice"].status == "completed"
    kinds = [m.get("template", {}).get("name", m["type"]) for m in timer_world.whatsapp.accepted]
    assert kinds == ["appointment_confirmation", "appointment_reminder_24h", "text"]


async def test_reminders_without_consent_are_skipped_with_the_reason(
    time_skipping_env: WorkflowEnvironment, temporal_settings: Settings, timer_world: World
) -> None:
    env = time_skipping_env
    clinic = await seed_clinic(timer_world.commands, consents=("data_processing",))
    gateway = TemporalWorkflowGateway(
        env.client, temporal_settings, registry=REGISTRY, search_attributes=False
    )
    async with running(build_workers(env.client, temporal_settings, timer_world.resources)):
        started = await gateway.start_booking(
            clinic.context,
            {
                "patientId": clinic.patient_id,
                "serviceType": "cleaning",
                "preferredDate": next_weekday(after=await env.get_current_time()).isoformat(),
            },
        )
        first = await booked(gateway, clinic.clinic_id, started.workflow_id)
        await skip_to_end(env, started.workflow_id, first)
        status = await gateway.status(clinic.clinic_id, started.workflow_id)
    s = steps(status)
    for kind in ("reminder_24h", "reminder_2h"):
        assert s[kind].status == "skipped"
        assert s[kind].error["code"] == "CONSENT_REQUIRED"
        assert "appointment_reminders" in s[kind].error["message"]
    assert [m["template"]["name"] for m in timer_world.whatsapp.accepted] == [
        "appointment_confirmation"
    ]


async def test_nurture_cadences_warm_and_cold(
    time_skipping_env: WorkflowEnvironment, temporal_settings: Settings, timer_world: World
) -> None:
    env = time_skipping_env
    warm = await seed_clinic(
        timer_world.commands, consents=("data_processing", "marketing_whatsapp")
    )
    gateway = TemporalWorkflowGateway(
        env.client, temporal_settings, registry=REGISTRY, search_attributes=False
    )
    async with running(build_workers(env.client, temporal_settings, timer_world.resources)):
        results = {}
        for classification, patient in (("WARM", warm.patient_id), ("COLD", None)):
            started = await gateway.start_catalogue(
                warm.context,
                "nurture-sequence",
                {"phone": warm.phone, "classification": classification, "patientId": patient},
            )
            began = await env.get_current_time()
            await env.sleep(timedelta(days=15))
            await env.client.get_workflow_handle(started.workflow_id).result()
            results[classification] = (
                began,
                await gateway.status(warm.clinic_id, started.workflow_id),
            )
    began, status = results["WARM"]
    s = steps(status)
    assert list(s) == ["touch_24h", "touch_72h", "touch_168h"]
    for hours in (24, 72, 168):
        step = s[f"touch_{hours}h"]
        assert step.status == "completed"
        assert abs(at(step) - began - timedelta(hours=hours)) < timedelta(minutes=1)
    began, status = results["COLD"]
    s = steps(status)
    assert list(s) == ["touch_48h", "touch_168h", "touch_336h"]
    assert all(x.status == "skipped" and x.error["code"] == "CONSENT_REQUIRED" for x in s.values())
    assert abs(s["touch_336h"].finished_at - began - timedelta(hours=336)) < timedelta(minutes=1)
    offers = [
        m for m in timer_world.whatsapp.accepted if m["template"]["name"] == "consultation_offer"
    ]
    assert len(offers) == 3
