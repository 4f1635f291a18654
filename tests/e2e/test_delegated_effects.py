"""A function's documented effects run under the authority it was granted.

schedule_appointment needs ``write`` and ``read``; the booking it starts also queues
and delivers the WhatsApp confirmation (a ``messaging`` command) and records the send.
A key holding exactly write + read books, and the confirmation goes out: the
workflow acts for the call that was allowed, it does not re-check each command of it
against the caller's scopes (plan steps, which are calls of their own, still are).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.fixtures.stack import SHARED, Stack


def confirmation_sent(status: dict[str, Any]) -> bool:
    steps = {s["stepId"]: s["status"] for s in status.get("steps", [])}
    return steps.get("confirmation") in ("completed", "failed", "skipped")


async def test_a_write_and_read_key_books_and_the_confirmation_is_sent(stack: Stack) -> None:
    key = await stack.new_key("clinic-a", ["write", "read"], name="booking-desk")
    day = stack.day + timedelta(days=9)
    booked = await stack.call(
        key,
        "schedule_appointment",
        {
            "patientId": SHARED.patient_id,
            "serviceType": "consultation",
            "preferredDate": day.isoformat(),
            "preferredTimeSlot": "afternoon",
        },
    )
    assert booked["success"], booked
    workflow_id = booked["result"]["workflowId"]
    status = await stack.until_workflow(key, workflow_id, confirmation_sent)
    steps = {s["stepId"]: s for s in status["steps"]}
    assert steps["confirm"]["status"] == "completed"
    assert steps["confirmation"]["status"] == "completed", steps["confirmation"]
    message_id = steps["confirmation"]["result"]["message_id"]
    outcomes = await stack.pool.fetch(
        "SELECT event_type FROM events WHERE clinic_id = 'clinic-a' AND stream_id = $1",
        f"message-{message_id}",
    )
    assert sorted(r["event_type"] for r in outcomes) == [
        "WhatsAppMessageQueued",
        "WhatsAppMessageSent",
    ]
