"""A worker in its own process, so a chaos test can SIGKILL it mid-workflow.

``python -m tests.chaos.worker_process ADDRESS DSN PREFIX WHATSAPP_URL API_KEY``: runs
every task queue of ``PREFIX`` against PostgreSQL at ``DSN`` until SIGTERM; prints
``ready`` once polling.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from temporalio.client import Client

from adapters.temporal.client import data_converter
from adapters.whatsapp import WhatsAppClient
from domain.functions.registry import REGISTRY
from tests.fixtures.temporal import backend, settings_for_test
from workflows.worker import WorkerResources, build_workers, running


async def main(address: str, dsn: str, prefix: str, whatsapp_url: str, api_key: str) -> None:
    settings = settings_for_test(task_queue_prefix=prefix)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    client = await Client.connect(address, data_converter=data_converter(settings))
    async with (
        backend(dsn) as (store, commands, queries, pseudonymizer),
        WhatsAppClient(api_key, base_url=whatsapp_url + "/v1") as wa,
    ):
        resources = WorkerResources(
            commands=commands,
            queries=queries,
            store=store,
            pseudonymizer=pseudonymizer,
            whatsapp=wa,
            hubspot=None,
            registry=REGISTRY,
        )
        async with running(build_workers(client, settings, resources)):
            print("ready", flush=True)
            await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
    sys.stdout.flush()
    os._exit(0)  # temporalio can abort the interpreter at exit after a worker ran
