"""Replay of recorded histories (``tests/histories/*.json``, see ``record.py``).

The current workflow code must replay every committed history; a workflow changed
without ``workflow.patched`` must fail replay (NondeterminismError).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from adapters.temporal.client import data_converter
from tests.fixtures.temporal import settings_for_test
from workflows.worker import ALL_WORKFLOWS

with workflow.unsafe.imports_passed_through():
    from activities.appointments import AppointmentActivities
    from activities.payloads import AppointmentPayload
    from adapters.temporal.payloads import BookingInput
    from workflows.common import options

HISTORIES = sorted((Path(__file__).parents[1] / "histories").glob("*.json"))


def history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))


def test_histories_are_committed() -> None:
    assert {p.stem for p in HISTORIES} >= {"booking", "ai_plan", "lead_scoring"}


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_current_code_replays_recorded_history(path: Path) -> None:
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=data_converter(settings_for_test()))
    result = await replayer.replay_workflow(history(path))
    assert result.replay_failure is None


@workflow.defn(name="BookingWorkflow", sandboxed=False)
class ReorderedBooking:
    """BookingWorkflow with its first two steps swapped: a non-deterministic change."""

    @workflow.run
    async def run(self, input: BookingInput) -> Any:
        payload = AppointmentPayload(caller=input.caller, appointment_id=input.appointment_id)
        await workflow.execute_activity_method(
            AppointmentActivities.confirm_appointment, payload, **options("write")
        )
        return None


async def test_a_non_deterministic_change_fails_replay() -> None:
    replayer = Replayer(
        workflows=[ReorderedBooking], data_converter=data_converter(settings_for_test())
    )
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(history(HISTORIES_BY_NAME["booking"]))


HISTORIES_BY_NAME = {p.stem: p for p in HISTORIES}
