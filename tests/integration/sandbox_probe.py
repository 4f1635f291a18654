"""The real BookingWorkflow plus one read of the host's clock, for the replay tests.

Kept in a module of its own, light to import: the sandbox re-imports the module of
every workflow it runs, so this one must not drag pytest or the test fixtures in.
"""

from __future__ import annotations

import datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from adapters.temporal.payloads import BookingInput
    from workflows.booking import BookingWorkflow


@workflow.defn(name="BookingWorkflow", sandboxed=False)
class WallClockBooking(BookingWorkflow):
    """Opted out of the sandbox like the real one, and non-deterministic: it reads the
    host's clock. Unsandboxed it replays the booking history without complaint (the read
    changes no command); only the sandbox refuses it."""

    @workflow.run
    async def run(self, input: BookingInput) -> dict[str, Any]:
        self.started_on = datetime.datetime.now()  # the bug: workflow.now() was meant
        return await super().run(input)
