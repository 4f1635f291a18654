"""BookingWorkflow: one appointment from the held slot to its completion.

The booking phase runs its commands as local activities (one workflow task, no
task-queue round trips; still idempotent by workflow id + activity id, and re-run
after a worker crash); the WhatsApp delivery is a regular activity on the
messaging queue, with its own retries.

hold (RequestAppointment: consent check + first free slot held) → confirm
(ConfirmAppointment) → confirmation on WhatsApp (appointment_confirmation, through
the outbox) → reminders 24 h and 2 h before (durable timers; each needs the
appointment_reminders consent, otherwise it is skipped with the reason) →
complete (CompleteAppointment once the appointment has ended).

``cancel`` and ``reschedule`` arrive as updates: cancelling stops the reminders
and ends the workflow; rescheduling moves the slot and re-arms the reminders. A
failure after the hold releases the held slot (ReleaseAppointmentHold).
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.common import Steps, error_of, options
from workflows.message_delivery import deliver

with workflow.unsafe.imports_passed_through():
    from activities.appointments import AppointmentActivities
    from activities.payloads import (
        AppointmentMessagePayload,
        AppointmentPayload,
        CancelAppointmentPayload,
        ReleaseHoldPayload,
        ReminderSentPayload,
        RequestAppointmentPayload,
        RescheduleAppointmentPayload,
    )
    from adapters.temporal.payloads import (
        BOOKING_OUTCOME_SIGNAL,
        BOOKING_WORKFLOW,
        CANCEL_UPDATE,
        CANCELLED_SIGNAL,
        RESCHEDULE_UPDATE,
        STATUS_QUERY,
        BookingInput,
        CancelRequest,
        Progress,
        RescheduleRequest,
    )

REMINDERS: tuple[tuple[str, timedelta], ...] = (
    ("24h", timedelta(hours=24)),
    ("2h", timedelta(hours=2)),
)
STEPS = [
    ("hold", "request_appointment"),
    ("confirm", "confirm_appointment"),
    ("confirmation", "send_whatsapp"),
    ("reminder_24h", "send_whatsapp"),
    ("reminder_2h", "send_whatsapp"),
    ("complete", "complete_appointment"),
]
CANCEL_NOTICE = "cancellation_notice"
LOCAL_FAILURES = (ActivityError, ApplicationError)
"""A failed local activity may surface as its ApplicationError itself."""


# Not sandboxed: the sandbox re-imports this module for every booking it starts (and
# wraps every activation): ~10-18 ms of the 30-40 ms of Python CPU a booking cost in
# bench/workflows.py's burst, on the path every appointment takes. Determinism is still
# guarded: the replay tests replay the committed booking histories inside the sandbox
# (tests/integration/test_replay.py runs opted-out workflows in a SandboxedWorkflowRunner),
# so a wall-clock read, random number or restricted import in this code still fails CI.
# Keep this module free of module-level mutable state: unsandboxed, bookings share it.
@workflow.defn(name=BOOKING_WORKFLOW, sandboxed=False)
class BookingWorkflow:
    def __init__(self) -> None:
        self._steps = Steps(STEPS)
        self._input: BookingInput | None = None
        self._booked = False
        self._closed = False
        self._cancelled: dict[str, Any] | None = None
        self._start: datetime | None = None
        self._end: datetime | None = None
        self._slot_version = 0
        self._appointment: dict[str, Any] = {}
        self._error: dict[str, Any] | None = None

    @workflow.run
    async def run(self, input: BookingInput) -> dict[str, Any]:
        self._input = input
        try:
            await self._book(input)
        except ApplicationError:
            self._closed = True
            await self._tell_parent()
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise
        await self._tell_parent()
        await self._notify_confirmation(input)
        await self._follow_until_done(input)
        self._closed = True
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._summary()

    # --- booking ----------------------------------------------------------------------

    async def _book(self, input: BookingInput) -> None:
        self._steps.running("hold")
        try:
            held = await workflow.execute_local_activity_method(
                AppointmentActivities.request_appointment,
                RequestAppointmentPayload(
                    caller=input.caller,
                    appointment_id=input.appointment_id,
                    patient_id=input.patient_id,
                    service_type=input.service_type,
                    preferred_date=input.preferred_date,
                    doctor_id=input.doctor_id,
                    preferred_time_slot=input.preferred_time_slot,
                    duration_minutes=input.duration_minutes,
                    notes=input.notes,
                    urgency=input.urgency,
                    workflow_id=workflow.info().workflow_id,
                ),
                **options("write"),
            )
        except LOCAL_FAILURES as exc:
            self._fail_step("hold", error_of(exc), ["confirm", "confirmation"])
            raise self._failure() from exc
        self._steps.completed("hold", held)
        self._set_slot(held)
        self._steps.running("confirm")
        try:
            confirmed = await workflow.execute_local_activity_method(
                AppointmentActivities.confirm_appointment,
                AppointmentPayload(caller=input.caller, appointment_id=input.appointment_id),
                **options("write"),
            )
        except LOCAL_FAILURES as exc:
            self._fail_step("confirm", error_of(exc), ["confirmation"])
            await self._release(input, "confirmation_failed")
            raise self._failure() from exc
        self._steps.completed("confirm", confirmed)
        self._appointment = confirmed
        self._booked = True

    def _fail_step(self, name: str, error: dict[str, Any], dependents: list[str]) -> None:
        self._steps.failed(name, error)
        self._error = error
        for other in [*dependents, "reminder_24h", "reminder_2h", "complete"]:
            self._steps.skipped(other, "DEPENDENCY_FAILED", f"step {name!r} failed")

    def _failure(self) -> ApplicationError:
        assert self._error is not None
        return ApplicationError(
            self._error["message"], self._error, type=self._error["code"], non_retryable=True
        )

    async def _release(self, input: BookingInput, reason: str) -> None:
        """Free the held slot; a hold already gone (e.g. cancelled meanwhile) is fine."""
        try:
            await workflow.execute_local_activity_method(
                AppointmentActivities.release_hold,
                ReleaseHoldPayload(
                    caller=input.caller, appointment_id=input.appointment_id, reason=reason
                ),
                **options("write"),
            )
        except LOCAL_FAILURES as exc:
            workflow.logger.warning("hold not released: %s", error_of(exc)["code"])

    def _set_slot(self, slot: dict[str, Any]) -> None:
        self._start = datetime.fromisoformat(slot["start"])
        self._end = datetime.fromisoformat(slot["end"])
        self._slot_version += 1

    async def _tell_parent(self) -> None:
        """A booking started by the booking agent reports the outcome of its booking phase."""
        parent = workflow.info().parent
        if parent is None:
            return
        outcome = {**self._summary(), "workflowId": workflow.info().workflow_id}
        if self._error is not None:
            outcome["error"] = self._error
        # the agent may be gone: then nobody waits for this outcome any more
        with contextlib.suppress(ApplicationError):
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(
                BOOKING_OUTCOME_SIGNAL, outcome
            )

    # --- messages ---------------------------------------------------------------------

    async def _notify_confirmation(self, input: BookingInput) -> None:
        if not input.notify_patient:
            self._steps.skipped("confirmation", "NOT_REQUESTED", "notifyPatient is false")
            return
        await self._send("confirmation", "confirmation", input)

    async def _send(self, step: str, kind: str, input: BookingInput) -> bool:
        """Queue and deliver one appointment message; the step records what happened."""
        self._steps.running(step)
        message_id = str(workflow.uuid4())
        try:
            queued = await workflow.execute_local_activity_method(
                AppointmentActivities.queue_appointment_message,
                AppointmentMessagePayload(
                    caller=input.caller,
                    appointment_id=input.appointment_id,
                    kind=kind,
                    message_id=message_id,
                    language=input.language,
                ),
                **options("write"),
            )
        except LOCAL_FAILURES as exc:
            self._steps.failed(step, error_of(exc))
            return False
        if not queued.queued:
            skipped = queued.skipped or {}
            self._steps.skipped(step, skipped.get("code", "SKIPPED"), skipped.get("message", ""))
            return False
        delivery, error = await deliver(input.caller, message_id, input.messaging_task_queue)
        if error is not None:
            self._steps.failed(step, error)
            return False
        self._steps.completed(step, delivery)
        return True

    # --- after the booking ------------------------------------------------------------

    async def _follow_until_done(self, input: BookingInput) -> None:
        """Send the reminders when due, then complete once the appointment has ended."""
        while self._cancelled is None:
            version = self._slot_version
            due = self._next_reminder()
            if due is None:
                if await self._sleep_until(self._end_time(), version):
                    await self._complete(input)
                    return
                continue
            kind, at = due
            if at <= workflow.now():
                self._steps.skipped(
                    f"reminder_{kind}", "TOO_LATE", f"booked less than {kind} before the start"
                )
                continue
            if await self._sleep_until(at, version):
                await self._remind(kind, input)
        self._steps.skipped("complete", "CANCELLED", "the appointment was cancelled")
        for kind, _ in REMINDERS:
            if self._steps.get(f"reminder_{kind}").status == "pending":
                self._steps.skipped(
                    f"reminder_{kind}", "CANCELLED", "the appointment was cancelled"
                )
        await self._notify_cancellation(input)

    async def _notify_cancellation(self, input: BookingInput) -> None:
        self._steps.add(CANCEL_NOTICE, "send_whatsapp")
        if self._cancelled is not None and self._cancelled.get("notifyPatient", True):
            await self._send(CANCEL_NOTICE, "cancellation", input)
        else:
            self._steps.skipped(CANCEL_NOTICE, "NOT_REQUESTED", "notifyPatient is false")

    def _next_reminder(self) -> tuple[str, datetime] | None:
        assert self._start is not None
        for kind, before in REMINDERS:
            if self._steps.get(f"reminder_{kind}").status == "pending":
                return kind, self._start - before
        return None

    def _end_time(self) -> datetime:
        assert self._end is not None
        return self._end

    async def _sleep_until(self, at: datetime, version: int) -> bool:
        """Durable timer; False when woken early by a cancel or a reschedule."""
        delay = at - workflow.now()
        if delay > timedelta(0):
            try:
                await workflow.wait_condition(
                    lambda: self._cancelled is not None or self._slot_version != version,
                    timeout=delay,
                )
                return False
            except TimeoutError:
                pass
        return self._cancelled is None and self._slot_version == version

    async def _remind(self, kind: str, input: BookingInput) -> None:
        step = f"reminder_{kind}"
        sent = await self._send(step, kind, input)
        if not sent:
            return
        message_id = self._steps.get(step).result["message_id"]
        await workflow.execute_activity_method(
            AppointmentActivities.record_reminder_sent,
            ReminderSentPayload(
                caller=input.caller,
                appointment_id=input.appointment_id,
                kind=kind,
                message_id=message_id,
            ),
            **options("write"),
        )

    async def _complete(self, input: BookingInput) -> None:
        self._steps.running("complete")
        try:
            done = await workflow.execute_activity_method(
                AppointmentActivities.complete_appointment,
                AppointmentPayload(caller=input.caller, appointment_id=input.appointment_id),
                **options("write"),
            )
        except LOCAL_FAILURES as exc:
            self._steps.failed("complete", error_of(exc))
            return
        self._steps.completed("complete", done)

    # --- updates and query ------------------------------------------------------------

    @workflow.update(name=CANCEL_UPDATE)
    async def cancel(self, request: CancelRequest) -> dict[str, Any]:
        """Cancel the appointment: frees the slot, stops the reminders, ends the workflow."""
        await workflow.wait_condition(lambda: self._booked or self._closed)
        self._require_active()
        assert self._input is not None
        result = await workflow.execute_activity_method(
            AppointmentActivities.cancel_appointment,
            CancelAppointmentPayload(
                caller=self._input.caller,
                appointment_id=self._input.appointment_id,
                reason=request.reason,
                notify_patient=request.notify_patient,
            ),
            **options("destructive"),
        )
        self._cancelled = {**result, "notifyPatient": request.notify_patient}
        return result

    @cancel.validator
    def _validate_cancel(self, request: CancelRequest) -> None:
        self._require_active()

    @workflow.signal(name=CANCELLED_SIGNAL)
    def appointment_cancelled(self, request: CancelRequest) -> None:
        """The appointment was cancelled by a command elsewhere: stop, maybe tell the patient."""
        if self._cancelled is None and not self._closed:
            self._cancelled = {
                "status": "cancelled",
                "reason": request.reason,
                "notifyPatient": request.notify_patient,
            }

    @workflow.update(name=RESCHEDULE_UPDATE)
    async def reschedule(self, request: RescheduleRequest) -> dict[str, Any]:
        """Move the appointment to another slot; the reminders follow the new time."""
        await workflow.wait_condition(lambda: self._booked or self._closed)
        self._require_active()
        assert self._input is not None
        result = await workflow.execute_activity_method(
            AppointmentActivities.reschedule_appointment,
            RescheduleAppointmentPayload(
                caller=self._input.caller,
                appointment_id=self._input.appointment_id,
                new_start=request.new_start,
                doctor_id=request.doctor_id,
            ),
            **options("write"),
        )
        self._appointment = result
        for kind, _ in REMINDERS:
            self._steps.add(f"reminder_{kind}", "send_whatsapp")
        self._set_slot(result)
        return result

    @reschedule.validator
    def _validate_reschedule(self, request: RescheduleRequest) -> None:
        self._require_active()
        if request.new_start.tzinfo is None:
            raise ApplicationError("newStart needs a time zone offset", type="INVALID_ARGUMENTS")

    def _require_active(self) -> None:
        if self._closed or self._cancelled is not None:
            raise ApplicationError(
                "the booking is no longer active",
                {"code": "CONFLICT", "message": "the booking is no longer active"},
                type="CONFLICT",
            )

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> Progress:
        return self._steps.progress(self._summary(), self._error)

    def _summary(self) -> dict[str, Any]:
        state = "cancelled" if self._cancelled is not None else None
        if state is None:
            state = "completed" if self._steps.get("complete").status == "completed" else None
        if state is None:
            state = "scheduled" if self._booked else "failed" if self._error else "requested"
        return {
            "appointmentId": self._input.appointment_id if self._input else None,
            "status": state,
            "start": self._start.isoformat() if self._start else None,
            "end": self._end.isoformat() if self._end else None,
            "doctorId": self._appointment.get("doctorId"),
        }
