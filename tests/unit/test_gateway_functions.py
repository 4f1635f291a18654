"""The twelve handlers do their work through the ports, and refuse what they must."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from domain.commands import (
    AddDoctor,
    ConfigureClinic,
    ConfirmAppointment,
    RecordConsent,
    RegisterPatient,
    RequestAppointment,
)
from domain.cqrs import CommandContext
from domain.errors import Conflict, ConsentRequired, Forbidden, InvalidArguments, NotFound
from domain.events import (
    ConsentRecorded,
    LeadCreated,
    LeadScored,
    PatientUpdated,
    WhatsAppMessageQueued,
)
from domain.functions import REGISTRY, FunctionContext
from domain.queries import (
    AvailableSlot,
    CheckConsent,
    ConsentCheck,
    ConsentTypeStatus,
    GetAvailableSlots,
    GetLeadAnalytics,
    GetPatient,
    LeadAnalytics,
    LeadFigures,
    LeadGroup,
    PatientView,
)
from domain.services import ServiceType
from domain.workflow_port import StepStatus, WorkflowStatus
from tests.unit.gateway_fakes import (
    ALL_SCOPES,
    NOW,
    CannedQueries,
    MemoryCommands,
    RecordingWorkflows,
    context,
)

CLINIC = "clinic-1"
PHONE = "+40721234567"
SEED = CommandContext(clinic_id=CLINIC, actor="test:seed", scopes=ALL_SCOPES)


async def call(name: str, arguments: dict[str, object], ctx: FunctionContext) -> dict[str, object]:
    return await REGISTRY.execute(name, arguments, ctx)


async def seeded(*consents: str) -> MemoryCommands:
    """A configured clinic with doctor doc-1 and patient pat-1 who granted ``consents``."""
    commands = MemoryCommands()
    await commands.execute(ConfigureClinic(name="Clinica", location="Str. Lunii 3"), SEED)
    await commands.execute(AddDoctor(doctor_id="doc-1", name="Dr. Ionescu"), SEED)
    await commands.execute(
        RegisterPatient(patient_id="pat-1", first_name="Ana", phone=PHONE, email="ana@example.ro"),
        SEED,
    )
    for consent in consents:
        await commands.execute(
            RecordConsent(
                patient_id="pat-1",
                phone=PHONE,
                consent_type=consent,  # type: ignore[arg-type]
                status="granted",
                source="test",
            ),
            SEED,
        )
    return commands


def consent_check(status: str = "granted", found: bool = True) -> ConsentCheck | None:
    if not found:
        return None
    state = ConsentTypeStatus(
        consent_type="data_processing",
        status=status,
        granted=status == "granted",  # type: ignore[arg-type]
    )
    return ConsentCheck(patient_id="pat-1", consents=(state,), all_granted=status == "granted")


def patient_view() -> PatientView:
    return PatientView(patient_id="pat-1", first_name="Ana", phone=PHONE, tags=("vip",))


def next_monday() -> date:
    day = NOW.date() + timedelta(days=7)
    return day - timedelta(days=day.weekday())


# --- leads ------------------------------------------------------------------------------


async def test_score_lead_creates_and_scores_the_lead():
    commands = MemoryCommands()
    ctx = context(commands=commands)
    result = await call(
        "score_lead",
        {
            "phone": "0721 234 567",
            "channel": "whatsapp",
            "messages": [
                {"role": "user", "content": "Cât costă un All-on-4? Am buget de 5000 euro"}
            ],
        },
        ctx,
    )
    assert result["score"] == 5 and result["classification"] == "HOT"
    assert result["created"] is True and result["suggestedAction"]
    events = await commands.events(CLINIC)
    assert [type(e) for e in events] == [LeadCreated, LeadScored]
    assert isinstance(events[0], LeadCreated) and events[0].phone == PHONE
    assert ctx.position == 2


# --- patients ---------------------------------------------------------------------------


async def test_get_patient_reads_the_query_side_at_the_callers_position():
    queries = CannedQueries()
    queries.answer(GetPatient, lambda q: patient_view() if q.phone == PHONE else None)
    ctx = context(queries=queries, min_position=41)

    found = await call("get_patient", {"phone": "0721 234 567"}, ctx)
    assert found["found"] is True
    assert found["patient"]["patientId"] == "pat-1" and found["patient"]["tags"] == ["vip"]
    missing = await call("get_patient", {"email": "x@example.ro"}, ctx)
    assert missing == {"found": False, "patient": None}
    assert [position for _, position in queries.asked] == [41, 41]


async def test_update_patient_records_only_what_changes():
    commands = await seeded()
    result = await call(
        "update_patient",
        {"patientId": "pat-1", "updates": {"email": "ANA@example.ro", "firstName": "Ana"}},
        context(commands=commands),
    )
    assert result["updated"] is False  # e-mail is normalised to the stored one, name unchanged
    result = await call(
        "update_patient",
        {"patientId": "pat-1", "updates": {"phone": "0722 111 222", "tags": ["vip"]}},
        context(commands=commands),
    )
    assert result == {
        "patientId": "pat-1",
        "updated": True,
        "changedFields": ["phone", "tags"],
        "message": None,
    }
    updated = [e for e in await commands.events(CLINIC) if isinstance(e, PatientUpdated)]
    assert [e.changes for e in updated] == [{"phone": "+40722111222", "tags": ["vip"]}]


async def test_update_of_an_unknown_patient_is_not_found():
    with pytest.raises(NotFound):
        await call("update_patient", {"patientId": "nobody", "updates": {"notes": "x"}}, context())


# --- appointments -----------------------------------------------------------------------


def schedule_args() -> dict[str, object]:
    return {"patientId": "pat-1", "serviceType": "cleaning", "preferredDate": "2025-03-17"}


async def test_scheduling_without_data_processing_consent_is_refused_and_starts_nothing():
    queries, workflows = CannedQueries(), RecordingWorkflows()
    queries.answer(CheckConsent, lambda q: consent_check("withdrawn"))
    with pytest.raises(ConsentRequired) as refused:
        await call(
            "schedule_appointment", schedule_args(), context(queries=queries, workflows=workflows)
        )
    details = refused.value.details
    assert details["missing"] == ["data_processing"]
    assert details["statuses"] == {"data_processing": "withdrawn"}
    assert "personal data" in details["ask"]
    assert workflows.calls == []
    ((asked, _),) = queries.asked
    assert asked == CheckConsent(patient_id="pat-1", consent_types=("data_processing",))


@pytest.mark.parametrize(
    ("day", "why"), [("2025-03-09", "in the past"), ("2026-03-11", "more than 365 days ahead")]
)
async def test_a_day_that_cannot_be_booked_is_refused_at_once(day: str, why: str):
    """Yesterday (clinic time) or beyond the one-year horizon: no consent read, no workflow."""
    queries, workflows = CannedQueries(), RecordingWorkflows()
    queries.answer(CheckConsent, lambda q: consent_check())
    with pytest.raises(InvalidArguments) as refused:
        await call(
            "schedule_appointment",
            {**schedule_args(), "preferredDate": day},
            context(queries=queries, workflows=workflows),
        )
    (error,) = refused.value.details["errors"]
    assert error["path"] == "preferredDate" and why in error["message"]
    assert error["expected"] == "a day from 2025-03-10 to 2026-03-10 (clinic time)"
    assert workflows.calls == [] and queries.asked == []


@pytest.mark.parametrize("day", ["2025-03-10", "2026-03-10"])
async def test_today_and_the_last_day_of_the_horizon_can_be_booked(day: str):
    queries, workflows = CannedQueries(), RecordingWorkflows()
    queries.answer(CheckConsent, lambda q: consent_check())
    await call(
        "schedule_appointment",
        {**schedule_args(), "preferredDate": day},
        context(queries=queries, workflows=workflows),
    )
    assert len(workflows.of("booking")) == 1


async def test_scheduling_an_unknown_patient_is_not_found():
    queries, workflows = CannedQueries(), RecordingWorkflows()
    queries.answer(CheckConsent, lambda q: None)
    with pytest.raises(NotFound):
        await call(
            "schedule_appointment", schedule_args(), context(queries=queries, workflows=workflows)
        )
    assert workflows.calls == []


async def test_scheduling_starts_the_booking_workflow_and_says_what_happens_next():
    queries, workflows = CannedQueries(), RecordingWorkflows()
    queries.answer(CheckConsent, lambda q: consent_check())
    ctx = context(queries=queries, workflows=workflows, idempotency_key="k1")
    result = await call(
        "schedule_appointment",
        {**schedule_args(), "preferredTimeSlot": "morning", "duration": 45},
        ctx,
    )
    (request,) = workflows.of("booking")
    assert request["patient_id"] == "pat-1" and request["service_type"] == "cleaning"
    assert request["preferred_date"] == "2025-03-17" and request["preferred_time_slot"] == "morning"
    assert request["duration_minutes"] == 45 and request["urgency"] == "normal"
    assert result["status"] == "pending"
    assert result["appointmentId"] == request["appointment_id"]
    assert result["workflowId"] == f"booking-{request['appointment_id']}"
    assert any("WhatsApp confirmation" in step for step in result["nextSteps"])  # type: ignore[union-attr]

    again = context(queries=queries, workflows=RecordingWorkflows(), idempotency_key="k1")
    retried = await call("schedule_appointment", schedule_args(), again)
    assert retried["appointmentId"] == result["appointmentId"]  # a retry books the same id


async def test_available_slots_come_from_the_query_side():
    queries = CannedQueries()
    start = datetime(2025, 3, 17, 9, 0, tzinfo=UTC)
    slot = AvailableSlot(
        doctor_id="doc-1", start=start, end=start + timedelta(minutes=30), duration_minutes=30
    )
    queries.answer(GetAvailableSlots, lambda q: (slot, slot))
    result = await call(
        "get_available_slots",
        {"startDate": "2025-03-17", "endDate": "2025-03-21", "serviceType": "cleaning"},
        context(queries=queries),
    )
    assert result["count"] == 2
    assert result["slots"][0] == {  # type: ignore[index]
        "doctorId": "doc-1",
        "start": "2025-03-17T09:00:00Z",
        "end": "2025-03-17T09:30:00Z",
        "durationMinutes": 30,
    }
    ((asked, _),) = queries.asked
    assert isinstance(asked, GetAvailableSlots) and asked.service_type is ServiceType.CLEANING


async def booked(commands: MemoryCommands) -> str:
    await commands.execute(
        RequestAppointment(
            appointment_id="apt-1",
            patient_id="pat-1",
            service_type=ServiceType.CLEANING,
            preferred_date=next_monday(),
        ),
        SEED,
    )
    await commands.execute(ConfirmAppointment(appointment_id="apt-1"), SEED)
    return "apt-1"


async def test_cancel_frees_the_slot_and_stops_the_booking_workflows_reminders():
    commands = await seeded("data_processing")
    appointment = await booked(commands)
    workflows = RecordingWorkflows(running_bookings={appointment})
    ctx = context(commands=commands, workflows=workflows)

    result = await call("cancel_appointment", {"appointmentId": appointment, "reason": "sick"}, ctx)
    assert result == {
        "appointmentId": appointment,
        "status": "cancelled",
        "slotReleased": True,
        "notifyPatient": True,
        "remindersStopped": True,
    }
    assert workflows.of("cancel_booking") == [(appointment, "sick", True)]
    with pytest.raises(Conflict):
        await call("cancel_appointment", {"appointmentId": appointment}, ctx)
    assert len(workflows.of("cancel_booking")) == 1  # a refused cancel signals nothing


async def test_cancel_of_an_unknown_appointment_is_not_found_and_signals_nothing():
    workflows = RecordingWorkflows()
    with pytest.raises(NotFound):
        await call("cancel_appointment", {"appointmentId": "apt-x"}, context(workflows=workflows))
    assert workflows.calls == []


# --- messaging --------------------------------------------------------------------------


async def test_send_whatsapp_queues_in_the_outbox_then_starts_delivery():
    commands, queries, workflows = (
        await seeded("data_processing"),
        CannedQueries(),
        RecordingWorkflows(),
    )
    queries.answer(GetPatient, lambda q: patient_view())
    result = await call(
        "send_whatsapp",
        {
            "to": "0721 234 567",
            "templateName": "appointment_confirmation",
            "templateParams": {
                "name": "Ana",
                "date": "17.03.2025",
                "time": "09:00",
                "location": "Str. Lunii 3",
            },
        },
        context(commands=commands, queries=queries, workflows=workflows),
    )
    queued = [e for e in await commands.events(CLINIC) if isinstance(e, WhatsAppMessageQueued)]
    assert len(queued) == 1 and queued[0].to == PHONE and queued[0].patient_id == "pat-1"
    assert queued[0].template_params == ["Ana", "17.03.2025", "09:00", "Str. Lunii 3"]
    assert workflows.of("delivery") == [queued[0].message_id]
    assert result["messageId"] == queued[0].message_id and result["status"] == "queued"
    assert result["deliveryWorkflowId"] == f"message-delivery-{queued[0].message_id}"


async def test_a_marketing_message_without_marketing_consent_is_refused_and_not_queued():
    commands, workflows = await seeded("data_processing"), RecordingWorkflows()
    before = len(await commands.events(CLINIC))
    with pytest.raises(ConsentRequired) as refused:
        await call(
            "send_whatsapp",
            {
                "to": PHONE,
                "patientId": "pat-1",
                "templateName": "consultation_offer",
                "templateParams": ["Ana", "20%", "31.03.2025"],
            },
            context(commands=commands, workflows=workflows),
        )
    assert refused.value.details["missing"] == ["marketing_whatsapp"]
    assert len(await commands.events(CLINIC)) == before
    assert workflows.calls == []


async def test_bad_template_parameters_name_their_path():
    commands = await seeded("data_processing")
    with pytest.raises(InvalidArguments) as bad:
        await call(
            "send_whatsapp",
            {
                "to": PHONE,
                "patientId": "pat-1",
                "templateName": "appointment_confirmation",
                "templateParams": {
                    "name": "Ana",
                    "date": "2025-03-17",
                    "time": "9",
                    "location": "x",
                },
            },
            context(commands=commands),
        )
    paths = {e["path"] for e in bad.value.details["errors"]}
    assert {"templateParams.date", "templateParams.time"} <= paths


# --- consent ----------------------------------------------------------------------------


async def test_record_consent_records_the_decision_and_answers_its_state():
    commands = await seeded()
    result = await call(
        "record_consent",
        {
            "patientId": "pat-1",
            "phone": "0721 234 567",
            "consentType": "marketing_whatsapp",
            "status": "granted",
            "source": "whatsapp",
        },
        context(commands=commands),
    )
    assert result["status"] == "granted" and result["granted"] is True
    assert result["expiresAt"] is not None and result["policyCurrent"] is True
    recorded = [e for e in await commands.events(CLINIC) if isinstance(e, ConsentRecorded)]
    assert [(e.consent_type, e.status, e.source) for e in recorded] == [
        ("marketing_whatsapp", "granted", "whatsapp")
    ]


async def test_check_consent_maps_the_read_model_and_hides_the_ip_address():
    queries = CannedQueries()
    state = ConsentTypeStatus(
        consent_type="marketing_whatsapp", status="expired", granted=False, ip_address="10.0.0.1"
    )
    queries.answer(
        CheckConsent,
        lambda q: (
            ConsentCheck(patient_id="pat-1", consents=(state,), all_granted=False)
            if q.phone == PHONE
            else None
        ),
    )
    result = await call(
        "check_consent",
        {"phone": "0721234567", "consentTypes": ["marketing_whatsapp"]},
        context(queries=queries),
    )
    assert result["found"] is True and result["allGranted"] is False
    (consent,) = result["consents"]  # type: ignore[misc]
    assert consent["consentType"] == "marketing_whatsapp" and consent["status"] == "expired"
    assert "ipAddress" not in consent
    nobody = await call("check_consent", {"phone": "0722000000"}, context(queries=queries))
    assert nobody["found"] is False


# --- analytics and workflows ------------------------------------------------------------


async def test_lead_analytics_passes_range_grouping_and_filter():
    queries = CannedQueries()
    queries.answer(
        GetLeadAnalytics,
        lambda q: LeadAnalytics(
            start_date=q.start_date,
            end_date=q.end_date,
            group_by=q.group_by,
            channel=q.channel,
            totals=LeadFigures(leads=3, hot=1),
            groups=(LeadGroup(key="whatsapp", leads=3, hot=1),),
        ),
    )
    result = await call(
        "get_lead_analytics",
        {"startDate": "2025-03-01", "endDate": "2025-03-31", "groupBy": "channel"},
        context(queries=queries),
    )
    assert result["groupBy"] == "channel" and result["totals"]["leads"] == 3  # type: ignore[index]
    assert result["groups"][0]["key"] == "whatsapp"  # type: ignore[index]


async def test_trigger_workflow_starts_the_catalogue_workflow_with_its_payload():
    workflows = RecordingWorkflows()
    result = await call(
        "trigger_workflow",
        {"workflow": "patient-journey", "payload": {"patientId": "pat-1"}, "priority": "high"},
        context(workflows=workflows),
    )
    assert workflows.of("catalogue") == [("patient-journey", {"patientId": "pat-1"}, "high")]
    assert result["workflowId"] == "patient-journey-1" and result["status"] == "started"


async def test_workflow_status_reports_steps_and_unknown_ids():
    workflows = RecordingWorkflows()
    workflows.statuses[(CLINIC, "ai-plan-1")] = WorkflowStatus(
        workflow_id="ai-plan-1",
        workflow_type="AIPlanWorkflow",
        status="running",
        current_step="s2",
        steps=[
            StepStatus(
                step_id="s1", function="get_patient", status="completed", result={"found": True}
            ),
            StepStatus(step_id="s2", function="send_whatsapp", status="running"),
        ],
    )
    result = await call(
        "get_workflow_status", {"taskId": "ai-plan-1"}, context(workflows=workflows)
    )
    assert result["status"] == "running" and result["currentStep"] == "s2"
    assert [s["status"] for s in result["steps"]] == ["completed", "running"]  # type: ignore[union-attr]
    assert result["steps"][0]["result"] == {"found": True}  # type: ignore[index]
    with pytest.raises(NotFound):
        await call("get_workflow_status", {"taskId": "other"}, context(workflows=workflows))
    with pytest.raises(NotFound):  # another clinic's workflow is unknown too
        await call(
            "get_workflow_status",
            {"taskId": "ai-plan-1"},
            context(workflows=workflows, clinic_id="clinic-2"),
        )


# --- the execution contract the plan workflow relies on -----------------------------------


async def test_execute_refuses_a_caller_without_the_scope_before_running_anything():
    commands = MemoryCommands()
    with pytest.raises(Forbidden) as refused:
        await call(
            "score_lead",
            {"phone": PHONE, "channel": "web"},
            context(commands=commands, scopes=frozenset({"read"})),
        )
    assert refused.value.details["missing"] == ["write"]
    assert commands.executed == []


async def test_reads_see_the_calls_own_writes():
    commands, queries = await seeded(), CannedQueries()
    queries.answer(GetPatient, lambda q: patient_view())
    ctx = context(commands=commands, queries=queries, min_position=1)
    await call("update_patient", {"patientId": "pat-1", "updates": {"notes": "x"}}, ctx)
    await call("get_patient", {"patientId": "pat-1"}, ctx)
    ((_, position),) = queries.asked
    assert position == ctx.position and position > 1


def test_ids_derive_from_the_idempotency_key_per_call():
    keyed = context(idempotency_key="req-1")
    assert keyed.for_call("c1").new_id("msg") == keyed.for_call("c1").new_id("msg")
    assert keyed.for_call("c1").new_id("msg") != keyed.for_call("c2").new_id("msg")
    assert keyed.for_call("c1").command.idempotency_key == "req-1:c1"
    unkeyed = context()
    assert unkeyed.new_id("msg") != unkeyed.new_id("msg")
    assert context(clinic_id="other", idempotency_key="req-1").new_id("msg") != keyed.new_id("msg")
