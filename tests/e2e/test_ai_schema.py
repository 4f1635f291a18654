"""The gateway's own OpenAPI document drives a fuzzer (schemathesis) against live uvicorn.

Every request the document allows (and the malformed ones it generates in negative
mode) is answered without a server error, and successful answers match the
documented response schema. PostgreSQL is real; the clinic's side is in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest_asyncio
import schemathesis
from hypothesis import HealthCheck, given, settings

from adapters.settings import Settings
from api.ai import mount_ai_gateway, run_ai_gateway
from domain.queries import (
    CheckConsent,
    GetAvailableSlots,
    GetLeadAnalytics,
    GetPatient,
    LeadAnalytics,
    LeadFigures,
)
from tests.e2e.ai_support import app_with, serve
from tests.unit.gateway_fakes import NOW, CannedQueries, MemoryCommands, RecordingWorkflows

EXAMPLES = 40


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(pg_pool: asyncpg.Pool) -> AsyncIterator[tuple[str, str]]:
    queries = CannedQueries()
    queries.answer(GetPatient, lambda q: None)
    queries.answer(CheckConsent, lambda q: None)
    queries.answer(GetAvailableSlots, lambda q: ())
    queries.answer(
        GetLeadAnalytics,
        lambda q: LeadAnalytics(start_date=q.start_date, end_date=q.end_date, totals=LeadFigures()),
    )
    settings = Settings.model_validate({"rate_limit_per_key_per_s": 10_000.0})

    def resources(app: Any) -> Any:
        return run_ai_gateway(
            app,
            pool=pg_pool,
            settings=settings,
            commands=MemoryCommands(),
            queries=queries,
            workflows=RecordingWorkflows(),
            clock=lambda: NOW,
        )

    app = app_with(resources)
    mount_ai_gateway(app)
    async with serve(app) as url:
        _, key = await app.state.api_keys.create("clinic-fuzz", {"read"}, "fuzz")
        yield url, key


async def test_the_document_is_valid_openapi_and_holds_up_to_fuzzing(live: tuple[str, str]):
    url, key = live
    headers = {"X-API-Key": key}
    async with httpx.AsyncClient(base_url=url) as http:
        doc = (await http.get("/ai/schema", headers=headers)).json()
    schema = schemathesis.openapi.from_dict(doc)
    execute = schema["/ai/execute"]["POST"]
    failures: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(case=execute.as_strategy())
    def fuzz(case: schemathesis.Case) -> None:
        response = httpx.post(
            url + "/ai/execute",
            headers={**headers, "Content-Type": "application/json"},
            json=case.body,
            timeout=10,
        )
        if response.status_code >= 500:
            failures.append(f"{response.status_code} for {case.body!r}: {response.text[:300]}")
        elif response.status_code == 200:
            body = response.json()
            if set(body) - {
                "success",
                "requestId",
                "type",
                "results",
                "totalExecutionTimeMs",
                "traceId",
                "position",
                "intent",
                "workflowId",
                "plan",
                "error",
            }:
                failures.append(f"undocumented fields in {body}")
        elif not response.headers["content-type"].startswith("application/problem+json"):
            failures.append(
                f"{response.status_code} without problem details: {response.text[:200]}"
            )

    await asyncio.to_thread(fuzz)
    assert failures == []
