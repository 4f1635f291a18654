"""What a gateway function runs with: the caller, the ports, the time and a read position.

Handlers never touch I/O: they run commands (``ctx.run``), ask queries (``ctx.ask``)
and start or inspect workflows (``ctx.workflows``). ``ctx.run`` remembers the
global position its command reached, and ``ctx.ask`` passes the highest position
known (the caller's ``min_position`` or this call's own writes) to the query bus,
so a read never shows a state older than what the caller has already seen.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from domain.cqrs import Command, CommandContext, CommandExecutor, Query, QueryExecutor
from domain.workflow_port import WorkflowGateway

_IDS = uuid.UUID("6f1c1f0e-8a53-4c1b-9d0e-4d2f3b7a9c11")
"""Namespace of ids derived from idempotency keys (a retry gets the same ids)."""


@dataclass
class FunctionContext:
    """One call's world. Build one per call (``for_call``): it records the call's position."""

    command: CommandContext
    commands: CommandExecutor
    queries: QueryExecutor
    workflows: WorkflowGateway
    now: datetime
    min_position: int | None = None
    position: int = 0
    """The highest global position this call's commands reached (0: none ran)."""

    @property
    def clinic_id(self) -> str:
        return self.command.clinic_id

    @property
    def scopes(self) -> frozenset[str]:
        return self.command.scopes

    def for_call(self, call_id: str) -> FunctionContext:
        """A fresh context for one call of a request: its own idempotency key and position."""
        key = self.command.idempotency_key
        command = self.command
        if key is not None:
            command = command.model_copy(update={"idempotency_key": f"{key}:{call_id}"})
        return replace(self, command=command, position=0)

    async def run(self, command: Command) -> dict[str, Any]:
        """Execute a command as the caller; its handler's JSON-ready result."""
        outcome = await self.commands.execute(command, self.command)
        self.position = max(self.position, outcome.position)
        return outcome.result

    async def ask(self, query: Query) -> Any:
        """Ask a query, never seeing a state older than the caller's or this call's writes."""
        return await self.queries.ask(query, self.command, min_position=self.read_position)

    @property
    def read_position(self) -> int | None:
        known = max(self.min_position or 0, self.position)
        return known or None

    def new_id(self, kind: str) -> str:
        """A new id for ``kind``; the same one again when a keyed request is retried."""
        key = self.command.idempotency_key
        if key is None:
            return f"{kind}-{uuid.uuid4().hex}"
        name = f"{self.clinic_id}\x1f{key}\x1f{kind}"
        return f"{kind}-{uuid.uuid5(_IDS, name).hex}"
