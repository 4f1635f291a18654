"""Record workflow histories for the replay tests: ``python -m tests.histories.record``.

Runs real scenarios (booking through its reminders on the time-skipping server, an
AI plan with references and a skipped step, a HOT lead-scoring) with the test
secret's codec, and writes each history as JSON beside this file. Re-record after
an intended workflow change that is guarded by ``workflow.patched``; an unguarded
change makes ``tests/integration/test_replay.py`` fail, which is the point.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from adapters.temporal.client import data_converter
from adapters.temporal.gateway import TemporalWorkflowGateway
from adapters.temporal.search_attributes import ALL_KEYS, ensure_search_attributes
from tests.fixtures.temporal import (
    binary,
    next_weekday,
    seed_clinic,
    settings_for_test,
    world_context,
)
from workflows.worker import build_workers, running

HERE = Path(__file__).resolve().parent


async def save(client: Client, workflow_id: str, name: str) -> None:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    data = json.loads(history.to_json())
    (HERE / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(f"recorded {name}.json ({len(history.events)} events)")


async def record_booking() -> None:
    settings = settings_for_test()
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"),
        data_converter=data_converter(settings),
    )
    try:
        async with world_context(None) as world:
            clinic = await seed_clinic(world.commands)
            gateway = TemporalWorkflowGateway(env.client, settings, search_attributes=False)
            async with running(build_workers(env.client, settings, world.resources)):
                started = await gateway.start_booking(
                    clinic.context,
                    {
                        "appointmentId": "apt-recorded",
                        "patientId": clinic.patient_id,
                        "serviceType": "cleaning",
                        "preferredDate": next_weekday().isoformat(),
                    },
                )
                # A handle from get_workflow_handle does not unlock time skipping: sleep.
                await env.sleep(timedelta(days=30))
                await env.client.get_workflow_handle(started.workflow_id).result()
                await save(env.client, started.workflow_id, "booking")
    finally:
        await env.shutdown()


async def record_dev_server_scenarios() -> None:
    settings = settings_for_test()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"),
        data_converter=data_converter(settings),
        ui=False,
        search_attributes=ALL_KEYS,
    )
    try:
        await ensure_search_attributes(env.client, env.client.namespace)
        async with world_context(None) as world:
            clinic = await seed_clinic(world.commands)
            registry = world.resources.registry
            gateway = TemporalWorkflowGateway(env.client, settings, registry=registry)
            async with running(build_workers(env.client, settings, world.resources)):
                plan = await gateway.start_plan(clinic.context, PLAN)
                await env.client.get_workflow_handle(plan.workflow_id).result()
                await save(env.client, plan.workflow_id, "ai_plan")
                lead = await gateway.start_catalogue(
                    clinic.context,
                    "lead-scoring",
                    {"phone": "0721 999 888", "channel": "whatsapp", "messages": HOT},
                )
                await env.client.get_workflow_handle(lead.workflow_id).result()
                await save(env.client, lead.workflow_id, "lead_scoring")
    finally:
        await env.shutdown()


HOT = [{"role": "user", "content": "Vreau All-on-4 cat mai repede, cat costa? buget euro"}]
PLAN = {
    "steps": [
        {
            "stepId": "score",
            "function": "score_lead",
            "arguments": {"phone": "0721 555 444", "channel": "web", "messages": HOT},
        },
        {
            "stepId": "status",
            "function": "get_workflow_status",
            "arguments": {"taskId": {"$ref": "steps.score.result.leadId"}},
            "dependsOn": ["score"],
        },
        {
            "stepId": "after",
            "function": "score_lead",
            "arguments": {"phone": "0721 555 444", "channel": "web"},
            "dependsOn": ["status"],
        },
    ]
}


async def main() -> None:
    await record_booking()
    await record_dev_server_scenarios()


if __name__ == "__main__":
    asyncio.run(main())
    sys.stdout.flush()
    os._exit(0)  # temporalio can abort the interpreter at exit after a worker ran
