"""The trigger_workflow catalogue: lead-scoring, nurture-sequence, patient-journey, booking-agent.

Each is a real workflow whose steps run domain commands through activities:

* **lead-scoring** — ScoreLead → HubSpot upsert → HOT: a human task (LeadAssigned to
  the front desk, due in 30 minutes); WARM/COLD: starts the nurture sequence.
* **nurture-sequence** — consent-gated offers at 24/72/168 h (warm) or 48/168/336 h
  (cold); stops when the lead closes or on the ``stop`` signal.
* **patient-journey** — after a visit: a follow-up message, then a recall reminder.
* **booking-agent** — books through a child BookingWorkflow, moving to the first
  alternative slot when the preferred one is taken.
"""

from __future__ import annotations

import contextlib
from datetime import date as Date
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

from workflows.common import Steps, error_of, options
from workflows.message_delivery import deliver

with workflow.unsafe.imports_passed_through():
    from activities.leads import HubSpotActivities, LeadActivities
    from activities.messaging import MessagingActivities
    from activities.payloads import (
        AssignLeadPayload,
        HubSpotUpsertPayload,
        LeadPayload,
        QueueMessagePayload,
        ScoreLeadPayload,
    )
    from adapters.temporal.payloads import (
        BOOKING_AGENT_WORKFLOW,
        BOOKING_WORKFLOW,
        LEAD_SCORING_WORKFLOW,
        NURTURE_WORKFLOW,
        PATIENT_JOURNEY_WORKFLOW,
        STATUS_QUERY,
        STOP_SIGNAL,
        BookingAgentInput,
        BookingInput,
        Caller,
        LeadScoringInput,
        NurtureInput,
        PatientJourneyInput,
        Progress,
    )
    from adapters.temporal.search_attributes import workflow_attributes

HOT_TASK_DUE = timedelta(minutes=30)
HOT_ASSIGNEE = "front-desk"
CADENCES: dict[str, tuple[int, ...]] = {"WARM": (24, 72, 168), "COLD": (48, 168, 336)}
"""Hours after the start of the sequence at which each nurture message goes out."""
GREETING = {"ro": "dumneavoastră", "en": "there", "de": "Sie"}
OFFER = {
    "ro": "Vă oferim o consultație gratuită.",
    "en": "We offer you a free consultation.",
    "de": "Wir bieten Ihnen eine kostenlose Beratung an.",
}
BOOKING_OUTCOME_SIGNAL = "booking_outcome"


def _date(at: Any) -> str:
    return str(at.strftime("%d.%m.%Y"))


async def _message(
    steps: Steps, step: str, caller: Caller, queue: str | None, payload: QueueMessagePayload
) -> bool:
    """Queue (consent-gated) and deliver one message, recording the outcome on ``step``."""
    steps.running(step)
    try:
        queued = await workflow.execute_activity_method(
            MessagingActivities.queue_message, payload, **options("write")
        )
    except ActivityError as exc:
        steps.failed(step, error_of(exc))
        return False
    if not queued.queued:
        skipped = queued.skipped or {}
        steps.skipped(step, skipped.get("code", "SKIPPED"), skipped.get("message", ""))
        return False
    delivery, error = await deliver(caller, payload.message_id, queue)
    if error is not None:
        steps.failed(step, error)
        return False
    steps.completed(step, delivery)
    return True


# --- lead-scoring -------------------------------------------------------------------------


@workflow.defn(name=LEAD_SCORING_WORKFLOW)
class LeadScoringWorkflow:
    def __init__(self) -> None:
        self._steps = Steps(
            [("score", "score_lead"), ("hubspot", "hubspot_upsert"), ("route", None)]
        )
        self._result: dict[str, Any] = {}
        self._error: dict[str, Any] | None = None

    @workflow.run
    async def run(self, input: LeadScoringInput) -> dict[str, Any]:
        self._steps.running("score")
        if input.prescored is not None:
            scored = input.prescored
        else:
            scored = await self._score(input)
        self._steps.completed("score", scored)
        self._result = {k: scored.get(k) for k in ("leadId", "score", "classification")}
        await self._hubspot(input, scored["leadId"])
        await self._route(input, scored)
        return self._result

    async def _score(self, input: LeadScoringInput) -> dict[str, Any]:
        try:
            scored: dict[str, Any] = await workflow.execute_activity_method(
                LeadActivities.score_lead,
                ScoreLeadPayload(
                    caller=input.caller,
                    phone=input.phone,
                    channel=input.channel,
                    messages=input.messages,
                    utm_params=input.utm_params,
                    metadata=input.metadata,
                ),
                **options("write"),
            )
        except ActivityError as exc:
            self._error = error_of(exc)
            self._steps.failed("score", self._error)
            self._steps.skipped("hubspot", "DEPENDENCY_FAILED", "score failed")
            self._steps.skipped("route", "DEPENDENCY_FAILED", "score failed")
            raise ApplicationError(
                self._error["message"], self._error, type=self._error["code"], non_retryable=True
            ) from exc
        return scored

    async def _hubspot(self, input: LeadScoringInput, lead_id: str) -> None:
        self._steps.running("hubspot")
        try:
            synced = await workflow.execute_activity_method(
                HubSpotActivities.upsert_contact,
                HubSpotUpsertPayload(
                    caller=input.caller,
                    lead_id=lead_id,
                    phone=input.phone,
                    patient_id=input.patient_id,
                ),
                **options("outbound"),
            )
        except ActivityError as exc:
            self._steps.failed("hubspot", error_of(exc))
            return
        if "skipped" in synced:
            self._steps.skipped("hubspot", synced["skipped"]["code"], synced["skipped"]["message"])
        else:
            self._steps.completed("hubspot", synced)

    async def _route(self, input: LeadScoringInput, scored: dict[str, Any]) -> None:
        classification = scored["classification"]
        self._steps.running("route")
        if classification == "HOT":
            await workflow.execute_activity_method(
                LeadActivities.assign_lead,
                AssignLeadPayload(
                    caller=input.caller, lead_id=scored["leadId"], assignee=HOT_ASSIGNEE
                ),
                **options("write"),
            )
            task = {
                "action": "human_task",
                "assignee": HOT_ASSIGNEE,
                "dueAt": (workflow.now() + HOT_TASK_DUE).isoformat(),
            }
            self._steps.completed("route", task)
            self._result["humanTask"] = task
        elif classification in CADENCES and input.start_nurture:
            nurture_id = await self._start_nurture(input, scored["leadId"], classification)
            routed = {"action": "nurture_sequence", "workflowId": nurture_id}
            self._steps.completed("route", routed)
            self._result["nurture"] = routed
        else:
            self._steps.completed("route", {"action": "none", "classification": classification})

    async def _start_nurture(self, input: LeadScoringInput, lead_id: str, cls: str) -> str:
        clinic = input.caller.clinic_id
        child_id = f"{clinic}:nurture-sequence:{lead_id}"
        # one sequence per lead: a lead already being nurtured keeps its sequence
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await workflow.start_child_workflow(
                NURTURE_WORKFLOW,
                NurtureInput(
                    caller=input.caller,
                    phone=input.phone,
                    classification=cls,
                    lead_id=lead_id,
                    patient_id=input.patient_id,
                    language=input.language,
                    messaging_task_queue=input.messaging_task_queue,
                ),
                id=child_id,
                parent_close_policy=ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                search_attributes=workflow_attributes(
                    clinic, "nurture-sequence", lead_id=lead_id, patient_id=input.patient_id
                ),
            )
        return child_id

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> Progress:
        return self._steps.progress(self._result, self._error)


# --- nurture-sequence ---------------------------------------------------------------------


@workflow.defn(name=NURTURE_WORKFLOW)
class NurtureSequenceWorkflow:
    def __init__(self) -> None:
        self._steps = Steps([])
        self._stopped: str | None = None
        self._sent = 0

    @workflow.run
    async def run(self, input: NurtureInput) -> dict[str, Any]:
        cadence = CADENCES[input.classification]
        for hours in cadence:
            self._steps.add(f"touch_{hours}h", "send_whatsapp")
        began = workflow.now()
        for hours in cadence:
            step = f"touch_{hours}h"
            if not await self._sleep_until(began + timedelta(hours=hours)):
                break
            if await self._lead_closed(input):
                break
            if await _message(
                self._steps, step, input.caller, input.messaging_task_queue, self._offer(input)
            ):
                self._sent += 1
        for state in self._steps.all():
            if state.status == "pending":
                self._steps.skipped(state.step_id, "STOPPED", self._stopped or "sequence stopped")
        return {"sent": self._sent, "stopped": self._stopped}

    def _offer(self, input: NurtureInput) -> QueueMessagePayload:
        language = input.language
        return QueueMessagePayload(
            caller=input.caller,
            message_id=str(workflow.uuid4()),
            to=input.phone,
            patient_id=input.patient_id,
            template_name="consultation_offer",
            template_params={
                "name": input.name or GREETING[language],
                "offer": OFFER[language],
                "date": _date(workflow.now() + timedelta(days=7)),
            },
            language=language,
        )

    async def _sleep_until(self, at: Any) -> bool:
        delay = at - workflow.now()
        if delay > timedelta(0):
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._stopped is not None, timeout=delay)
        return self._stopped is None

    async def _lead_closed(self, input: NurtureInput) -> bool:
        if input.lead_id is None:
            return False
        lead = await workflow.execute_activity_method(
            LeadActivities.lead_snapshot,
            LeadPayload(caller=input.caller, lead_id=input.lead_id),
            **options("read"),
        )
        if lead.status in ("converted", "lost"):
            self._stopped = f"the lead is {lead.status}"
            return True
        return False

    @workflow.signal(name=STOP_SIGNAL)
    def stop(self, reason: str) -> None:
        """Stop the sequence (e.g. the person booked or asked not to be contacted)."""
        self._stopped = reason or "stopped"

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> Progress:
        return self._steps.progress({"sent": self._sent, "stopped": self._stopped})


# --- patient-journey ----------------------------------------------------------------------


@workflow.defn(name=PATIENT_JOURNEY_WORKFLOW)
class PatientJourneyWorkflow:
    def __init__(self) -> None:
        self._steps = Steps([("follow_up", "send_whatsapp"), ("recall", "send_whatsapp")])
        self._stopped: str | None = None

    @workflow.run
    async def run(self, input: PatientJourneyInput) -> dict[str, Any]:
        visit = workflow.now()
        plan = [
            ("follow_up", timedelta(hours=input.follow_up_after_h), self._follow_up(input)),
            ("recall", timedelta(days=input.recall_after_days), self._recall(input, visit)),
        ]
        for step, after, payload in plan:
            if not await self._sleep_until(visit + after):
                self._steps.skipped(step, "STOPPED", self._stopped or "journey stopped")
                continue
            await _message(self._steps, step, input.caller, input.messaging_task_queue, payload)
        return {s.step_id: s.status for s in self._steps.all()}

    def _follow_up(self, input: PatientJourneyInput) -> QueueMessagePayload:
        return QueueMessagePayload(
            caller=input.caller,
            message_id=str(workflow.uuid4()),
            patient_id=input.patient_id,
            template_name="treatment_follow_up",
            template_params={"name": GREETING[input.language], "procedure": input.procedure},
            language=input.language,
        )

    def _recall(self, input: PatientJourneyInput, visit: Any) -> QueueMessagePayload:
        return QueueMessagePayload(
            caller=input.caller,
            message_id=str(workflow.uuid4()),
            patient_id=input.patient_id,
            template_name="recall_reminder",
            template_params={"name": GREETING[input.language], "date": _date(visit)},
            language=input.language,
        )

    async def _sleep_until(self, at: Any) -> bool:
        delay = at - workflow.now()
        if delay > timedelta(0):
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._stopped is not None, timeout=delay)
        return self._stopped is None

    @workflow.signal(name=STOP_SIGNAL)
    def stop(self, reason: str) -> None:
        self._stopped = reason or "stopped"

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> Progress:
        return self._steps.progress()


# --- booking-agent ------------------------------------------------------------------------


@workflow.defn(name=BOOKING_AGENT_WORKFLOW)
class BookingAgentWorkflow:
    """Books an appointment, falling back to the first alternative when a slot is taken."""

    def __init__(self) -> None:
        self._steps = Steps([])
        self._outcomes: dict[str, dict[str, Any]] = {}
        self._result: dict[str, Any] | None = None
        self._error: dict[str, Any] | None = None

    @workflow.run
    async def run(self, input: BookingAgentInput) -> dict[str, Any]:
        date, slot = input.preferred_date, input.preferred_time_slot
        doctor = input.doctor_id
        for attempt in range(1, input.max_attempts + 1):
            step = f"attempt_{attempt}"
            self._steps.add(step, "schedule_appointment")
            self._steps.running(step)
            outcome = await self._book(input, date, slot, doctor)
            if outcome.get("status") == "scheduled":
                self._steps.completed(step, outcome)
                self._result = outcome
                return outcome
            error = outcome.get("error") or {"code": "EXECUTION_ERROR", "message": "booking failed"}
            self._steps.failed(step, error)
            self._error = error
            alternatives = (error.get("details") or {}).get("alternatives") or []
            if error.get("code") != "CONFLICT" or not alternatives:
                break
            first = alternatives[0]
            date = Date.fromisoformat(first["start"][:10])
            slot, doctor = "any", first.get("doctorId") or doctor
        assert self._error is not None
        raise ApplicationError(
            self._error["message"], self._error, type=self._error["code"], non_retryable=True
        )

    async def _book(
        self, input: BookingAgentInput, date: Any, slot: Any, doctor: str | None
    ) -> dict[str, Any]:
        appointment_id = str(workflow.uuid4())
        clinic = input.caller.clinic_id
        child_id = f"{clinic}:booking:{appointment_id}"
        await workflow.start_child_workflow(
            BOOKING_WORKFLOW,
            BookingInput(
                caller=input.caller,
                appointment_id=appointment_id,
                patient_id=input.patient_id,
                service_type=input.service_type,
                preferred_date=date,
                doctor_id=doctor,
                preferred_time_slot=slot,
                notes=input.notes,
                language=input.language,
                messaging_task_queue=input.messaging_task_queue,
            ),
            id=child_id,
            task_queue=input.booking_task_queue or workflow.info().task_queue,
            parent_close_policy=ParentClosePolicy.ABANDON,
            search_attributes=workflow_attributes(clinic, "booking", patient_id=input.patient_id),
        )
        await workflow.wait_condition(lambda: child_id in self._outcomes)
        return {**self._outcomes[child_id], "bookingWorkflowId": child_id}

    @workflow.signal(name=BOOKING_OUTCOME_SIGNAL)
    def booking_outcome(self, outcome: dict[str, Any]) -> None:
        """A child booking reports whether its slot was booked (or why not)."""
        self._outcomes[outcome["workflowId"]] = outcome

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> Progress:
        return self._steps.progress(self._result, self._error)
