"""Which plan steps wait for a person's approval (when the plan's policy asks for it).

Outbound (send_whatsapp) and destructive (cancel_appointment) steps always do; so do
changes to a patient's record (update_patient), a consent withdrawal (record_consent
with status ``withdrawn``), which cannot be taken back by the next step, and starting a
catalogue workflow (trigger_workflow): each of them (nurture sequence, patient journey,
lead scoring's hand-over, booking agent) goes on to message the patient over days. A
consent whose status is not known yet (a reference to an earlier step's result) is
treated as a withdrawal: when in doubt, a person decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ALWAYS_HELD = frozenset({"outbound", "destructive"})
HELD_FUNCTIONS = frozenset({"update_patient", "trigger_workflow"})


def needs_approval(function: str, side_effect: str, arguments: Mapping[str, Any]) -> bool:
    """True when a step calling ``function`` with ``arguments`` waits for approval."""
    if side_effect in ALWAYS_HELD or function in HELD_FUNCTIONS:
        return True
    if function == "record_consent":
        status = arguments.get("status")
        return not isinstance(status, str) or status == "withdrawn"
    return False
