"""Which plan steps wait for a person when the plan's policy asks for approval."""

from __future__ import annotations

import pytest

from domain.functions.approval import needs_approval


@pytest.mark.parametrize(
    ("function", "side_effect", "arguments", "held"),
    [
        ("send_whatsapp", "outbound", {}, True),
        ("cancel_appointment", "destructive", {}, True),
        ("update_patient", "write", {"patientId": "p"}, True),
        ("record_consent", "write", {"status": "withdrawn"}, True),
        ("record_consent", "write", {"status": {"$ref": "steps.a.result.status"}}, True),
        ("record_consent", "write", {}, True),
        ("record_consent", "write", {"status": "granted"}, False),
        ("record_consent", "write", {"status": "denied"}, False),
        ("score_lead", "write", {"phone": "+40721234567"}, False),
        ("get_patient", "read", {}, False),
        ("schedule_appointment", "write", {}, False),
        ("trigger_workflow", "write", {"workflow": "nurture-sequence"}, True),
    ],
)
def test_the_rule(function: str, side_effect: str, arguments: dict[str, object], held: bool):
    assert needs_approval(function, side_effect, arguments) is held
