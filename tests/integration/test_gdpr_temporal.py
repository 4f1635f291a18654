"""Erasure deletes a patient's Temporal histories (real dev server), and only theirs."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from adapters.gdpr import TemporalHistoryEraser
from adapters.temporal.search_attributes import workflow_attributes

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow]

DELETION_WAIT_S = 120.0
VISIBILITY_WAIT_S = 15.0


@workflow.defn(name="GdprProbe")
class ProbeWorkflow:
    """Holds its input in its history; waits for a signal when asked to."""

    def __init__(self) -> None:
        self._done = False

    @workflow.run
    async def run(self, text: str) -> str:
        if text.startswith("wait"):
            await workflow.wait_condition(lambda: self._done)
        return text

    @workflow.signal
    def finish(self) -> None:
        self._done = True


async def exists(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def gone(client: Client, workflow_id: str) -> bool:
    """Deletion is asynchronous on the server (about 30 s on the dev server): wait."""
    deadline = asyncio.get_running_loop().time() + DELETION_WAIT_S
    while await exists(client, workflow_id):
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.5)
    return True


async def visible(client: Client, query: str, count: int) -> None:
    deadline = asyncio.get_running_loop().time() + VISIBILITY_WAIT_S
    while len([e async for e in client.list_workflows(query)]) < count:
        assert asyncio.get_running_loop().time() < deadline, f"not visible: {query}"
        await asyncio.sleep(0.1)


async def test_a_patients_workflows_are_deleted_and_no_one_elses(
    temporal_env: WorkflowEnvironment,
) -> None:
    client = temporal_env.client
    clinic = f"clinic-{uuid.uuid4().hex[:10]}"
    queue = f"gdpr-{uuid.uuid4().hex[:10]}"
    ids = {name: f"{clinic}:{name}:{uuid.uuid4().hex[:6]}" for name in ("plan", "lead", "other")}
    booking = f"{clinic}:booking:a1"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[ProbeWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        starts = [
            (
                ids["plan"],
                "Ioana +40721234567",
                workflow_attributes(clinic, "plan", patient_id="p1"),
            ),
            (ids["lead"], "wait: lead text", workflow_attributes(clinic, "nurture", lead_id="l1")),
            (booking, "booking", workflow_attributes(clinic, "booking")),
            (ids["other"], "Radu", workflow_attributes(clinic, "plan", patient_id="p2")),
        ]
        for workflow_id, text, attributes in starts:
            await client.start_workflow(
                ProbeWorkflow.run,
                text,
                id=workflow_id,
                task_queue=queue,
                search_attributes=attributes,
                execution_timeout=timedelta(minutes=5),
            )
        await client.get_workflow_handle(ids["plan"]).result()
        await visible(client, f"ClinicId = '{clinic}'", 4)

        deleted = await TemporalHistoryEraser(client).erase(
            clinic,
            patient_id="p1",
            lead_ids=["l1"],
            workflow_ids=[booking, f"{clinic}:message-delivery:never-started"],
        )

    assert sorted(deleted) == sorted([ids["plan"], ids["lead"], booking])
    results = await asyncio.gather(*(gone(client, w) for w in deleted))
    assert all(results), dict(zip(deleted, results, strict=True))
    assert await exists(client, ids["other"])  # another patient's history stays
