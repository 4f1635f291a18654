"""Replay of recorded histories (``tests/histories/*.json``, see ``record.py``).

The current workflow code must replay every committed history; a workflow changed
without ``workflow.patched`` must fail replay (NondeterminismError). Every workflow
replays inside the sandbox here, also those that run unsandboxed in the worker
(BookingWorkflow, for speed): the sandbox's restrictions (wall clock, randomness, I/O)
are checked in CI even where production skips them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.workflow import NondeterminismError

from adapters.temporal.client import data_converter
from tests.fixtures.temporal import settings_for_test
from tests.integration.sandbox_probe import WallClockBooking
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


def sandboxed_replayer(workflows: list[type]) -> Replayer:
    """A replayer that runs even ``sandboxed=False`` workflows inside the sandbox."""
    return Replayer(
        workflows=workflows,
        data_converter=data_converter(settings_for_test()),
        unsandboxed_workflow_runner=SandboxedWorkflowRunner(),
    )


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_current_code_replays_recorded_history(path: Path) -> None:
    result = await sandboxed_replayer(ALL_WORKFLOWS).replay_workflow(history(path))
    assert result.replay_failure is None


async def test_the_sandbox_still_guards_workflows_that_run_unsandboxed() -> None:
    booking = history(HISTORIES_BY_NAME["booking"])
    plain = Replayer(
        workflows=[WallClockBooking], data_converter=data_converter(settings_for_test())
    )
    # unsandboxed, the booking that reads the host's clock replays without complaint ...
    result = await plain.replay_workflow(booking, raise_on_replay_failure=False)
    assert result.replay_failure is None
    # ... inside the sandbox the read fails the workflow task, so the replay tests above
    # catch such a read in the real BookingWorkflow although the worker runs it unsandboxed
    result = await sandboxed_replayer([WallClockBooking]).replay_workflow(
        booking, raise_on_replay_failure=False
    )
    assert result.replay_failure is not None


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
