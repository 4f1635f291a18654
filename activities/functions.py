"""The AI-plan step activity: one gateway function call through the registry."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from temporalio import activity

from activities.payloads import ExecuteStepPayload
from activities.support import command_context, domain_call
from domain.cqrs import CommandExecutor, QueryExecutor
from domain.functions.context import FunctionContext
from domain.functions.registry import Registry
from domain.workflow_port import WorkflowGateway


class FunctionActivities:
    """Runs plan steps as the caller, with the step's idempotency key."""

    def __init__(
        self,
        registry: Registry,
        commands: CommandExecutor,
        queries: QueryExecutor,
        workflows: WorkflowGateway,
    ) -> None:
        self._registry = registry
        self._commands = commands
        self._queries = queries
        self._workflows = workflows

    @activity.defn
    async def execute_step(self, p: ExecuteStepPayload) -> Any:
        """Authorise, validate and run ``p.function``; a compact JSON-ready result.

        The idempotency key is the workflow id and activity id, so a retried step
        (or one re-run after a worker crash) is recognised by the command bus and
        derives the same new ids (``FunctionContext.new_id``).
        """
        ctx = FunctionContext(
            command=command_context(p.caller),
            commands=self._commands,
            queries=self._queries,
            workflows=self._workflows,
            now=datetime.now(UTC),
        )
        result = await domain_call(lambda: self._registry.execute(p.function, p.arguments, ctx))
        return compact_result(result, p.max_result_bytes)


def compact_result(result: Any, max_bytes: int) -> Any:
    """The result itself when small; else a summary (size and top-level keys)."""
    size = len(json.dumps(result, separators=(",", ":"), default=str).encode())
    if size <= max_bytes:
        return result
    keys = sorted(result)[:50] if isinstance(result, dict) else None
    return {"truncated": True, "bytes": size, "keys": keys}
