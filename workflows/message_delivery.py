"""Delivering an outbox message from a workflow, and the MessageDeliveryWorkflow.

``deliver`` sends a queued message through the messaging task queue; when the
provider stayed unavailable through every retry it records the failure
(WhatsAppMessageFailed, not permanent) so the outbox never keeps a silent orphan.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows.common import Steps, error_of, options

with workflow.unsafe.imports_passed_through():
    from activities.messaging import MessagingActivities
    from activities.payloads import DeliverMessagePayload, DeliveryFailurePayload
    from adapters.temporal.payloads import (
        MESSAGE_DELIVERY_WORKFLOW,
        STATUS_QUERY,
        Caller,
        MessageDeliveryInput,
        Progress,
    )


async def deliver(
    caller: Caller, message_id: str, task_queue: str | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Send one queued message: ``(delivery, None)`` or ``(None, error)``."""
    try:
        delivery = await workflow.execute_activity_method(
            MessagingActivities.deliver_message,
            DeliverMessagePayload(caller=caller, message_id=message_id),
            **options("outbound", task_queue),
        )
        return delivery.model_dump(mode="json", exclude_none=True), None
    except ActivityError as exc:
        error = error_of(exc)
        if error["code"] == "WHATSAPP_TRANSIENT" or error["code"] == "EXECUTION_ERROR":
            await workflow.execute_activity_method(
                MessagingActivities.record_delivery_failure,
                DeliveryFailurePayload(
                    caller=caller,
                    message_id=message_id,
                    error_code="RETRIES_EXHAUSTED",
                    error_message=error["message"],
                    permanent=True,
                ),
                **options("write", task_queue),
            )
        return None, error


@workflow.defn(name=MESSAGE_DELIVERY_WORKFLOW)
class MessageDeliveryWorkflow:
    """Delivers one already-queued outbox message (send_whatsapp)."""

    def __init__(self) -> None:
        self._steps = Steps([("deliver", "deliver_message")])
        self._result: dict[str, Any] | None = None
        self._error: dict[str, Any] | None = None

    @workflow.run
    async def run(self, input: MessageDeliveryInput) -> dict[str, Any]:
        self._steps.running("deliver")
        self._result, self._error = await deliver(input.caller, input.message_id, None)
        if self._error is not None:
            self._steps.failed("deliver", self._error)
            return {"messageId": input.message_id, "status": "failed", "error": self._error}
        self._steps.completed("deliver", self._result)
        return {"messageId": input.message_id, **(self._result or {})}

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> Progress:
        return self._steps.progress(self._result, self._error)
