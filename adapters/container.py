"""The composition root's adapter half: everything a process needs, built once from Settings.

The API, the worker, the projector, the CLI and the benchmarks all build their
resources here, so each wires the same event store (with crypto-shredding), the
same buses and the same outside-world clients. Nothing is created at import time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from adapters.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    pool: asyncpg.Pool
    store: Any
    command_bus: Any
    query_bus: Any
    pseudonymizer: Any
    whatsapp: Any
    hubspot: Any | None = None
    planner: Any | None = None
    keys: Any | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    async def aclose(self) -> None:
        """Close clients and the key listener, then the pool."""
        for client in (self.whatsapp, self.hubspot, self.planner, self.keys):
            close = getattr(client, "aclose", None) or getattr(client, "close", None)
            if close is not None:
                try:
                    await close()
                except Exception:  # closing must not mask the caller's error
                    log.exception("closing %s failed", type(client).__name__)
        key_pool = self.extras.get("key_pool")
        if key_pool is not None:
            await key_pool.close()
        await self.pool.close()


async def build_services(
    settings: Settings,
    *,
    database_url: str | None = None,
    pool_min: int = 2,
    pool_max: int = 10,
    listen: bool = True,
) -> Services:
    """Connect to PostgreSQL and build the store, the buses and the clients.

    The event store is the crypto-shredding decorator over PostgreSQL: personal fields
    are sealed with per-subject keys on append and opened on read (``listen`` keeps a
    LISTEN connection so key destruction reaches every replica at once). The command
    bus applies the outbound WhatsApp limits (``adapters.cooldowns``) and records who
    delivers an activity's message (``adapters.outbox_relay``).
    """
    from adapters.cooldowns import OutboundLimitGuard, OutboundLimits
    from adapters.cqrs import CommandBus, Middleware, QueryBus
    from adapters.crypto.keys import PostgresSubjectKeyStore
    from adapters.outbox_relay import DeliveryOwnerRecorder
    from adapters.postgres.event_store import PostgresEventStore
    from adapters.postgres.pool import create_pool
    from adapters.pseudonym import HmacPseudonymizer
    from adapters.shredding_store import CryptoShreddingEventStore
    from domain.upcasting import UPCASTERS

    dsn = database_url or settings.database_url
    if not dsn:
        raise RuntimeError("DATABASE_URL is not set")
    pool = await create_pool(dsn, min_size=pool_min, max_size=pool_max)
    keys: PostgresSubjectKeyStore | None = None
    key_pool: asyncpg.Pool | None = None
    try:
        pseudonymizer = HmacPseudonymizer(settings.secret_key.encode())
        # decrypt first, then upcast: the inner store must not upcast sealed data
        inner = PostgresEventStore(pool, upcasters=None)
        # The key store gets its own small pool: the command bus holds a connection of the
        # main pool for a whole attempt, so sharing one pool would let N concurrent
        # commands hold every connection while each waits for one more (a deadlock).
        key_pool = await create_pool(dsn, min_size=1, max_size=4)
        keys = PostgresSubjectKeyStore.from_secret(key_pool, settings.secret_key)
        if listen:
            await keys.start()
        store = CryptoShreddingEventStore(inner, keys, pseudonymizer, upcasters=UPCASTERS)
        limits = OutboundLimits(pool)
        # Every queued WhatsApp message passes the outbound limits (nothing is recorded
        # when they refuse it) and, when an activity queues it, is recorded as that
        # workflow's to deliver (the outbox relay leaves it alone while it runs).
        middlewares: list[Middleware] = [
            OutboundLimitGuard(limits, pseudonymizer),
            DeliveryOwnerRecorder(pool),
        ]
        query_bus = QueryBus(pool, pseudonymizer=pseudonymizer, keys=keys)
        # An erasure destroys keys: answers cached with the erased person's data go too.
        keys.on_invalidate(query_bus.cache.clear)
        return Services(
            settings=settings,
            pool=pool,
            store=store,
            command_bus=CommandBus(
                store, pool=pool, pseudonymizer=pseudonymizer, middlewares=middlewares
            ),
            query_bus=query_bus,
            pseudonymizer=pseudonymizer,
            whatsapp=_whatsapp(settings, pool),
            hubspot=_hubspot(settings),
            planner=_planner(settings, pool),
            keys=keys,
            extras={"key_pool": key_pool, "outbound_limits": limits},
        )
    except BaseException:
        if keys is not None:
            await keys.close()
        if key_pool is not None:
            await key_pool.close()
        await pool.close()
        raise


def _on_call() -> Any:
    from adapters.telemetry.metrics import record_external

    return record_external


def _whatsapp(settings: Settings, pool: asyncpg.Pool) -> Any:
    from adapters.whatsapp import SandboxWhatsAppTransport, WhatsAppClient

    if settings.whatsapp_api_key:
        return WhatsAppClient(
            settings.whatsapp_api_key, base_url=settings.whatsapp_base_url, on_call=_on_call()
        )
    return SandboxWhatsAppTransport(pool, on_call=_on_call())


def _hubspot(settings: Settings) -> Any:
    if not settings.hubspot_token:
        return None
    from adapters.hubspot import HubSpotClient

    return HubSpotClient(
        settings.hubspot_token, base_url=settings.hubspot_base_url, on_call=_on_call()
    )


def _planner(settings: Settings, pool: asyncpg.Pool) -> Any:
    if not settings.anthropic_api_key:
        return None
    from adapters.anthropic_planner import ClaudePlanner
    from adapters.llm_budget import PostgresLlmBudget

    # A reservation outlives the longest call the planner can make (no SDK retries).
    budget = PostgresLlmBudget(
        pool,
        settings.llm_daily_token_cap,
        reservation_ttl_s=max(60.0, 4 * settings.anthropic_timeout_s),
    )
    return ClaudePlanner(
        settings.anthropic_api_key,
        settings.anthropic_model,
        base_url=settings.anthropic_base_url,
        timeout_s=settings.anthropic_timeout_s,
        on_call=_on_call(),
        budget=budget,
    )
