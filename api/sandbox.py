"""The WhatsApp sandbox outbox over HTTP: what the clinic "sent" while no API key is set.

``GET /sandbox/whatsapp/messages`` lists the newest messages the sandbox transport
recorded for the caller's clinic (API key with the ``messaging`` or ``admin``
scope), so a development stack can be followed end to end without a provider.

The transport records a clinic only when it was built for one; messages recorded
without one belong to the clinic whose outbox holds a message of that id (the
delivery activity sends with the message id as idempotency key), as the
``messages`` read model says. Other clinics' messages are never listed.

Wiring (``create_app`` puts these on ``app.state``):

* ``app.state.whatsapp_sandbox``: ``sandbox_outbox(services.whatsapp, services.pool)``
  (``None`` when a real WhatsApp client is configured: the route answers 404);
* ``app.state.authenticator`` (read by ``api.auth.PrincipalDep``);
* ``app.include_router(create_sandbox_router())`` and the problem handlers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from adapters.webhook_inbox import ReadModelMessages
from adapters.whatsapp import SandboxMessage, SandboxWhatsAppTransport
from api.auth import PrincipalDep
from domain.commands import Phone
from domain.errors import NotFound

SCAN_LIMIT = 1000
"""Newest recorded messages (all clinics) looked through per request."""


class SandboxOutbox:
    """The sandbox transport's recorded messages, per clinic."""

    def __init__(self, transport: SandboxWhatsAppTransport, messages: ReadModelMessages) -> None:
        self._transport = transport
        self._messages = messages

    async def recent(
        self, clinic_id: str, *, limit: int = 50, to: str | None = None
    ) -> list[SandboxMessage]:
        """The clinic's newest ``limit`` messages, optionally only those sent ``to`` a phone."""
        recorded = await self._transport.list_messages(None, limit=SCAN_LIMIT)
        if to is not None:
            recorded = [m for m in recorded if m.to == to]
        unattributed = [m.idempotency_key for m in recorded if m.clinic_id is None]
        ours = await self._messages.outbound_ids(clinic_id, unattributed)
        mine = [
            m
            for m in recorded
            if m.clinic_id == clinic_id or (m.clinic_id is None and m.idempotency_key in ours)
        ]
        return mine[:limit]


def sandbox_outbox(transport: Any, pool: asyncpg.Pool) -> SandboxOutbox | None:
    """The outbox to serve, or ``None`` when ``transport`` is not the sandbox."""
    if not isinstance(transport, SandboxWhatsAppTransport):
        return None
    return SandboxOutbox(transport, ReadModelMessages(pool))


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)


class SandboxMessageView(_Model):
    message_id: str
    """The sandbox's provider id (``wamid.SANDBOX...``)."""
    idempotency_key: str
    """The CRM's message id, for messages the delivery workflow sent."""
    to: str
    type: str
    template_name: str | None = None
    language: str | None = None
    params: list[str]
    body: str | None = None
    payload: dict[str, Any]
    """The exact JSON body the real client would have sent."""
    sent_at: datetime


class SandboxMessages(_Model):
    clinic_id: str
    count: int
    messages: list[SandboxMessageView]


def create_sandbox_router() -> APIRouter:
    """``GET /sandbox/whatsapp/messages``; reads ``app.state.whatsapp_sandbox``."""
    router = APIRouter(tags=["sandbox"])

    @router.get(
        "/sandbox/whatsapp/messages",
        response_model=SandboxMessages,
        response_model_by_alias=True,
        name="sandbox_whatsapp_messages",
    )
    async def list_sandbox_messages(
        request: Request,
        principal: PrincipalDep,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        to: Annotated[Phone | None, Query(description="Only messages to this phone.")] = None,
    ) -> SandboxMessages:
        """Messages the sandbox transport recorded for the caller's clinic, newest first."""
        principal.require("messaging")
        outbox: SandboxOutbox | None = getattr(request.app.state, "whatsapp_sandbox", None)
        if outbox is None:
            raise NotFound("the WhatsApp sandbox is not active: a WhatsApp API key is configured")
        found = await outbox.recent(principal.clinic_id, limit=limit, to=to)
        views = [
            SandboxMessageView.model_validate(m.model_dump(exclude={"clinic_id"})) for m in found
        ]
        return SandboxMessages(clinic_id=principal.clinic_id, count=len(views), messages=views)

    return router
