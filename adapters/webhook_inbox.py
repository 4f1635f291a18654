"""Webhook items already handled, in PostgreSQL (table ``webhook_inbox``).

Providers redeliver webhooks (on any non-2xx answer, and sometimes anyway). The
commands a webhook runs are idempotent by themselves (each carries an idempotency
key derived from the provider's ids); the inbox lets a redelivery skip them, and
keeps a record of what every item led to. An item is recorded only once its work
is done, so a webhook that failed half-way is simply processed again.

Keys: ``message:<provider message id>``, ``status:<provider message id>:<status>``.
``detail`` must hold no personal data (outcome codes and CRM ids only).

``ReadModelMessages`` finds outbound messages in the ``messages`` read model
(``rm_messages``): by the id the provider gave them (delivery statuses, replies that
quote a message), or which of some message ids are a clinic's (the sandbox outbox).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import asyncpg

from domain.queries import MessageView

Outcome = Literal["processed", "ignored"]

_SEEN = """
SELECT item_key FROM webhook_inbox
 WHERE provider = $1 AND clinic_id = $2 AND item_key = ANY($3::text[])
"""

_RECORD = """
INSERT INTO webhook_inbox (provider, clinic_id, item_key, outcome, detail)
VALUES ($1, $2, $3, $4, $5::jsonb)
ON CONFLICT (provider, clinic_id, item_key) DO NOTHING
RETURNING true
"""

_GET = """
SELECT item_key, outcome, detail, processed_at FROM webhook_inbox
 WHERE provider = $1 AND clinic_id = $2 AND item_key = $3
"""


@dataclass(frozen=True)
class InboxEntry:
    """What an item led to, and when."""

    item_key: str
    outcome: Outcome
    detail: dict[str, Any] = field(default_factory=dict)
    processed_at: datetime | None = None


class WebhookInbox:
    """Handled webhook items of one provider, per clinic."""

    def __init__(self, pool: asyncpg.Pool, provider: str = "whatsapp") -> None:
        self._pool = pool
        self._provider = provider

    async def seen(self, clinic_id: str, keys: Sequence[str]) -> set[str]:
        """The keys among ``keys`` already handled for the clinic."""
        if not keys:
            return set()
        rows = await self._pool.fetch(_SEEN, self._provider, clinic_id, list(keys))
        return {row["item_key"] for row in rows}

    async def record(
        self, clinic_id: str, key: str, outcome: Outcome, detail: Mapping[str, Any]
    ) -> bool:
        """Record a handled item; False when it was already recorded (kept as it was)."""
        inserted = await self._pool.fetchval(
            _RECORD, self._provider, clinic_id, key, outcome, dict(detail)
        )
        return bool(inserted)

    async def get(self, clinic_id: str, key: str) -> InboxEntry | None:
        """The recorded entry of one item, if any."""
        row = await self._pool.fetchrow(_GET, self._provider, clinic_id, key)
        if row is None:
            return None
        return InboxEntry(row["item_key"], row["outcome"], dict(row["detail"]), row["processed_at"])

    async def purge(self, before: datetime) -> int:
        """Forget items handled before ``before`` (older than any provider retry window)."""
        status = await self._pool.execute(
            "DELETE FROM webhook_inbox WHERE provider = $1 AND processed_at < $2",
            self._provider,
            before,
        )
        return int(status.split()[-1])


_BY_PROVIDER_ID = """
SELECT message_id, direction, patient_id, template_name, status, provider_message_id,
       error_code, error_message, queued_at, sent_at, delivered_at, read_at, failed_at,
       received_at, updated_at
  FROM rm_messages
 WHERE clinic_id = $1 AND provider_message_id = $2 AND direction = 'outbound'
 ORDER BY updated_at DESC
 LIMIT 1
"""


_OUTBOUND_IDS = """
SELECT message_id FROM rm_messages
 WHERE clinic_id = $1 AND message_id = ANY($2::text[]) AND direction = 'outbound'
"""


class ReadModelMessages:
    """Outbound messages of a clinic, from the ``messages`` read model.

    The read model follows the event store with a small lag: a status that arrives
    before the projection saw ``WhatsAppMessageSent`` is not found (in practice only
    the provider's own "sent", which the delivery activity has recorded already).
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def by_provider_id(self, clinic_id: str, provider_message_id: str) -> MessageView | None:
        """The clinic's outbound message the provider calls ``provider_message_id``."""
        row = await self._pool.fetchrow(_BY_PROVIDER_ID, clinic_id, provider_message_id)
        if row is None:
            return None
        return MessageView.model_validate(dict(row))

    async def outbound_ids(self, clinic_id: str, message_ids: Sequence[str]) -> set[str]:
        """The ids among ``message_ids`` that are outbound messages of the clinic."""
        if not message_ids:
            return set()
        rows = await self._pool.fetch(_OUTBOUND_IDS, clinic_id, list(message_ids))
        return {row["message_id"] for row in rows}
