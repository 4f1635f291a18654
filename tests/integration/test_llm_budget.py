"""The per-clinic daily LLM token cap, on PostgreSQL, through the gateway and the Claude
planner (the real anthropic SDK against the local fake Messages API).

The budget counts the ``usage`` the API reports, per clinic and Europe/Bucharest day;
a clinic at its cap is interpreted by the rules and the answer says why.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from adapters.anthropic_planner import ClaudePlanner, user_message
from adapters.llm_budget import PostgresLlmBudget
from adapters.postgres.pool import create_pool
from adapters.settings import Settings
from api.ai_models import ExecuteResponse, NaturalRequest
from api.auth import Principal
from api.gateway import Gateway, RequestInfo
from tests.fakes import FakeAnthropic
from tests.unit.gateway_fakes import (
    ALL_SCOPES,
    CannedQueries,
    MemoryAudit,
    MemoryCommands,
    RecordingWorkflows,
)

QUERY = "Anulează programarea apt-123"
CANCEL = ("cancel_appointment", {"appointmentId": "apt-123"})
# 23:30 in Bucharest (UTC+2 in March): the clinic's day ends half an hour later.
LATE_EVENING = datetime(2025, 3, 10, 21, 30, tzinfo=UTC)


class Clock:
    """A settable clock (the budget's day follows it)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


@pytest_asyncio.fixture(loop_scope="session")
async def replica_pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A second pool: another API replica's connections to the same database."""
    pool = await create_pool(pg_dsn, min_size=1, max_size=12)
    try:
        yield pool
    finally:
        await pool.close()


class Replica:
    """One API process: a gateway whose Claude planner is capped by the shared budget."""

    def __init__(
        self, fake: FakeAnthropic, pool: asyncpg.Pool, cap: int, clock: Clock | None = None
    ) -> None:
        self.clock = clock or Clock(LATE_EVENING)
        self.budget = PostgresLlmBudget(pool, cap, clock=self.clock)
        self.planner = ClaudePlanner(
            fake.api_key, "claude-test", base_url=fake.url, timeout_s=10.0, budget=self.budget
        )
        self.gateway = Gateway(
            commands=MemoryCommands(),
            queries=CannedQueries(),
            workflows=RecordingWorkflows(),
            audit=MemoryAudit(),
            settings=Settings(),
            planner=self.planner,
            clock=self.clock,
        )

    async def ask(self, clinic_id: str, query: str = QUERY) -> ExecuteResponse:
        """Interpret ``query`` for a key of ``clinic_id`` (nothing runs)."""
        principal = Principal(f"key-{clinic_id}", clinic_id, ALL_SCOPES, "agent")
        request = NaturalRequest(type="natural", query=query, execute=False)
        return await self.gateway.execute(principal, request, RequestInfo.new(surface="http"))

    def estimate(self, clinic_id: str = "any", query: str = QUERY) -> int:
        """The reservation the planner makes for ``query`` (all functions offered)."""
        tools = [self.gateway.catalogue.anthropic[n] for n in self.gateway.registry.names()]
        return self.planner.upper_bound(tools, user_message(query, None))

    async def aclose(self) -> None:
        await self.planner.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def replicas() -> AsyncIterator[list[Replica]]:
    made: list[Replica] = []
    yield made
    for replica in made:
        await replica.aclose()


def clinic(name: str) -> str:
    return f"{name}-{datetime.now(UTC).timestamp():.6f}"


def tokens(kind: str) -> float:
    labels = {"provider": "anthropic", "kind": kind}
    return REGISTRY.get_sample_value("medicalcor_ai_tokens_total", labels) or 0.0


async def test_reported_usage_accumulates_per_clinic_and_day(
    fake: FakeAnthropic, pg_pool: asyncpg.Pool, replicas: list[Replica]
) -> None:
    replica = Replica(fake, pg_pool, cap=100_000)
    replicas.append(replica)
    a, b = clinic("acc-a"), clinic("acc-b")
    before = tokens("input"), tokens("output")
    fake.reply_with_tools(CANCEL, usage=(300, 40))
    fake.reply_with_tools(CANCEL, usage=(500, 60))
    fake.reply_with_tools(CANCEL, usage=(70, 7))

    first = await replica.ask(a)
    await replica.ask(a)
    await replica.ask(b)

    assert first.intent.source == "claude" and first.intent.functions == ["cancel_appointment"]
    usage = await replica.budget.usage(a)
    assert (usage.input_tokens, usage.output_tokens, usage.calls) == (800, 100, 2)
    assert usage.day == date(2025, 3, 10)
    assert (await replica.budget.usage(b)).total_tokens == 77
    assert (tokens("input") - before[0], tokens("output") - before[1]) == (870, 107)
    # Nothing is left reserved once the calls ended.
    left = await pg_pool.fetchval(
        "SELECT count(*) FROM llm_token_reservations WHERE clinic_id = ANY($1::text[])", [a, b]
    )
    assert left == 0


async def test_the_cap_stops_claude_for_that_clinic_only_and_the_rules_answer(
    fake: FakeAnthropic, pg_pool: asyncpg.Pool, replicas: list[Replica]
) -> None:
    replica = Replica(fake, pg_pool, cap=1_000)
    replicas.append(replica)
    capped, other = clinic("cap-a"), clinic("cap-b")
    fake.reply_with_tools(CANCEL, usage=(900, 150))  # 1050 >= 1000: capped from now on
    fake.reply_with_tools(CANCEL, usage=(10, 5))

    first = await replica.ask(capped)
    assert first.intent.source == "claude"
    second = await replica.ask(capped)

    assert len(fake.requests_to("messages")) == 1  # Claude was not called again
    assert second.intent.source == "rules"
    assert second.intent.functions == ["cancel_appointment"]  # the rules still understood it
    assert second.intent.evidence[0] == (
        "Claude not called: the clinic's daily LLM token cap is reached: 1050 of 1000 tokens"
        " used on 2025-03-10 (Europe/Bucharest day); the rules interpreted the request"
    )
    assert second.results[0].function == "cancel_appointment"
    assert (await replica.budget.usage(capped)).refused == 1

    # Another clinic of the same process still gets Claude.
    third = await replica.ask(other)
    assert third.intent.source == "claude"
    assert len(fake.requests_to("messages")) == 2


async def test_the_next_bucharest_day_starts_from_zero(
    fake: FakeAnthropic, pg_pool: asyncpg.Pool, replicas: list[Replica]
) -> None:
    clock = Clock(LATE_EVENING)
    replica = Replica(fake, pg_pool, cap=1_000, clock=clock)
    replicas.append(replica)
    clinic_id = clinic("day")
    fake.reply_with_tools(CANCEL, usage=(1_000, 1))
    fake.reply_with_tools(CANCEL, usage=(20, 2))

    assert (await replica.ask(clinic_id)).intent.source == "claude"
    clock.now = LATE_EVENING + timedelta(minutes=29)  # 23:59 in Bucharest: same day
    assert (await replica.ask(clinic_id)).intent.source == "rules"
    clock.now = LATE_EVENING + timedelta(minutes=30)  # 00:00 in Bucharest (22:00 UTC)
    assert (await replica.ask(clinic_id)).intent.source == "claude"

    assert len(fake.requests_to("messages")) == 2
    yesterday = await replica.budget.usage(clinic_id, date(2025, 3, 10))
    today = await replica.budget.usage(clinic_id)
    assert (yesterday.total_tokens, yesterday.refused) == (1_001, 1)
    assert (today.day, today.total_tokens) == (date(2025, 3, 11), 22)


async def test_concurrent_requests_on_two_replicas_overshoot_by_at_most_one_call(
    fake: FakeAnthropic,
    pg_pool: asyncpg.Pool,
    replica_pool: asyncpg.Pool,
    replicas: list[Replica],
) -> None:
    estimate = Replica(fake, pg_pool, cap=1).estimate()
    cap = estimate * 7 // 2  # room for three calls and a half
    one, two = Replica(fake, pg_pool, cap), Replica(fake, replica_pool, cap)
    replicas.extend([one, two])
    clinic_id = clinic("race")
    # The worst case the bound allows: every call uses all it reserved.
    for _ in range(12):
        fake.delay_next(0.3, route="messages")
        fake.reply_with_tools(CANCEL, usage=(estimate - 50, 50))

    answers = await asyncio.gather(
        *(replica.ask(clinic_id) for replica in (one, two) * 6), return_exceptions=True
    )

    assert not [a for a in answers if isinstance(a, BaseException)]
    by_claude = [a for a in answers if a.intent.source == "claude"]
    by_rules = [a for a in answers if a.intent.source == "rules"]
    usage = await one.budget.usage(clinic_id)
    assert usage.total_tokens <= cap + estimate  # over by at most one call's usage
    assert len(by_claude) == usage.calls == len(fake.requests_to("messages")) == 4
    assert len(by_rules) == 8 == usage.refused
    assert all(a.intent.evidence[0].startswith("Claude not called: ") for a in by_rules)
    assert all(a.intent.functions == ["cancel_appointment"] for a in answers)
    # At the cap, later requests of the clinic are refused on both replicas.
    for replica in (one, two):
        assert (await replica.ask(clinic_id)).intent.source == "rules"
    assert len(fake.requests_to("messages")) == 4


async def test_an_unreachable_budget_means_no_claude_call(
    fake: FakeAnthropic, pg_dsn: str, replicas: list[Replica]
) -> None:
    pool = await create_pool(pg_dsn, min_size=1, max_size=1)
    replica = Replica(fake, pool, cap=1_000_000)
    replicas.append(replica)
    await pool.close()  # the budget cannot be checked: fail closed, to the rules

    answer = await replica.ask(clinic("down"))

    assert answer.intent.source == "rules"
    assert answer.intent.evidence[0] == (
        "Claude was unavailable; the rules interpreted the request"
    )
    assert fake.requests_to("messages") == []


async def test_a_reservation_of_a_caller_that_died_expires(pg_pool: asyncpg.Pool) -> None:
    clinic_id = clinic("expiry")
    budget = PostgresLlmBudget(pg_pool, 1_000, reservation_ttl_s=0.3)

    held = await budget.reserve(clinic_id, 5_000)  # never settled: its caller died
    blocked = await budget.reserve(clinic_id, 10)
    await asyncio.sleep(0.4)
    freed = await budget.reserve(clinic_id, 10)

    assert held.admitted and (held.used, held.reserved) == (0, 0)
    assert not blocked.admitted and (blocked.used, blocked.reserved) == (0, 5_000)
    assert not blocked.exhausted  # only calls in flight hold the budget
    assert freed.admitted and freed.reserved == 0
    await budget.settle(freed, 3, 4)
    assert (await budget.usage(clinic_id)).total_tokens == 7
    with pytest.raises(ValueError, match="admitted"):
        await budget.settle(blocked, 1, 1)


async def test_a_cap_of_zero_never_calls_claude(
    fake: FakeAnthropic, pg_pool: asyncpg.Pool, replicas: list[Replica]
) -> None:
    replica = Replica(fake, pg_pool, cap=0)
    replicas.append(replica)
    answer = await replica.ask(clinic("zero"))
    assert answer.intent.source == "rules"
    assert "cap is reached: 0 of 0 tokens" in answer.intent.evidence[0]
    assert fake.requests_to("messages") == []
