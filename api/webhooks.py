"""WhatsApp (360dialog) webhooks: verified, routed to one clinic, processed once.

``POST /webhooks/whatsapp/{clinic_id}`` is the URL to configure at the provider, one
per clinic. The clinic comes from the path (or, on ``POST /webhooks/whatsapp``, from
the payload's ``metadata.phone_number_id`` through a configured mapping) and never
from a header. The raw body must carry a valid HMAC-SHA256 signature
(``X-Hub-Signature-256: sha256=<hex>`` or ``X-360Dialog-Signature``) under the
clinic's webhook secret (``WHATSAPP_WEBHOOK_SECRET``, or a per-clinic one): a
missing or bad signature answers 401 and nothing is stored or run. A payload whose
phone number is mapped to another clinic answers 403, also before anything runs.

What each item becomes (commands through the command bus, each with an idempotency
key derived from the provider's ids, so a redelivered webhook changes nothing):

* an inbound message → ``RecordInboundMessage`` (with ``patient_id`` when the
  sender is a known patient: it lands in their activity);
* from a known patient, a consent reply → ``RecordConsent(marketing_whatsapp,
  granted|withdrawn, source "whatsapp_reply")``. STOP-like opt-outs always count;
  a plain DA / NU counts only when it answers a consent request (the quoted
  message, or else the patient's last outbound message, is a ``consent_renewal``),
  because DA / NU also answer reminders, offers and the coordinators' questions;
* from an unknown number → ``ScoreLead(channel whatsapp, the message text)``,
  creating the lead, and the ``lead-scoring`` workflow is started; a later
  message of a known, open lead does the same only when it alone scores higher
  than the lead's current score (one message never lowers a score);
* a delivery status → ``MarkMessageSent`` / ``MarkMessageDelivered`` (delivered,
  read) / ``MarkMessageFailed``, the message found by its provider id.

Handled items are recorded in ``webhook_inbox`` (no personal data) and skipped when
delivered again. An item the rules refuse (unknown message, a stale receipt) is
recorded as ``ignored``: retrying cannot help. An infrastructure failure answers
503 without recording the item, so the provider's retry processes it again: the
database, Temporal (the start is bounded by ``workflow_start_timeout_s``), or read
models that did not catch up (reads made after recording the message wait, within
the query bus's bound, until the projections include it, so a burst of messages
from one number sees its own lead).

``GET /webhooks/whatsapp[/{clinic_id}]`` answers Meta's subscription handshake
(``hub.mode=subscribe``, ``hub.verify_token``, ``hub.challenge``) when a verify
token is configured; 360dialog itself registers webhooks without a handshake.

Wiring (``create_app`` puts this on ``app.state``; it is the only attribute read):

* ``app.state.whatsapp_webhooks``: a :class:`WhatsAppWebhooks`, e.g.
  ``build_whatsapp_webhooks(settings=..., pool=..., commands=services.command_bus,
  queries=services.query_bus, workflows=<TemporalWorkflowGateway>)``;
* ``app.include_router(create_webhook_router())`` and the problem handlers.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import JSONResponse, PlainTextResponse, Response

from adapters.settings import Settings
from adapters.telemetry.metrics import record_message_received
from adapters.webhook_inbox import Outcome, ReadModelMessages, WebhookInbox
from adapters.whatsapp import WebhookItem, parse_webhook, verify_signature
from api.errors import problem_response
from domain.commands import (
    MarkMessageDelivered,
    MarkMessageFailed,
    MarkMessageSent,
    RecordConsent,
    RecordInboundMessage,
    ScoreLead,
)
from domain.cqrs import Command, CommandContext, CommandExecutor, Query, QueryExecutor
from domain.errors import DomainError, ExecutionError, Forbidden, InvalidArguments
from domain.messaging import ConsentReply, InboundMessage, StatusUpdate, parse_consent_reply
from domain.queries import GetLead, GetMessageStatus, GetPatient, LeadView, MessageView
from domain.scoring import LeadMessage
from domain.scoring import score_lead as score_conversation
from domain.text import fold, words
from domain.workflow_port import WorkflowGateway

log = logging.getLogger(__name__)

ACTOR = "webhook:whatsapp"
SIGNATURE_HEADERS = ("x-hub-signature-256", "x-360dialog-signature")
CONSENT_TYPE = "marketing_whatsapp"
CONSENT_SOURCE = "whatsapp_reply"
CONSENT_REQUEST_TEMPLATES = frozenset({"consent_renewal"})
"""Templates that ask for a consent decision: a DA / NU answering them is one."""
OPT_OUT_WORDS = frozenset({"stop", "stopp", "dezabonare", "unsubscribe"})
"""Opt-out keywords: a withdrawal whatever message they answer."""
CLOSED_LEAD = frozenset({"converted", "lost"})
MAX_SCORED_CHARS = 2000
MAX_TEXT_CHARS = 4096
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


# --- configuration ----------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookConfig:
    """Secrets and routing of the WhatsApp webhook.

    ``secret`` signs every clinic's webhooks unless ``clinic_secrets`` names one of
    its own; ``phone_number_clinics`` maps the provider's ``phone_number_id`` to a
    clinic (for ``POST /webhooks/whatsapp`` without a clinic, and to refuse a
    payload posted to the wrong clinic); ``verify_token`` enables the GET handshake.
    """

    secret: str | None = None
    clinic_secrets: Mapping[str, str] = field(default_factory=dict)
    phone_number_clinics: Mapping[str, str] = field(default_factory=dict)
    verify_token: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    workflow_start_timeout_s: float = 5.0

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        clinic_secrets: Mapping[str, str] | None = None,
        phone_number_clinics: Mapping[str, str] | None = None,
        verify_token: str | None = None,
    ) -> WebhookConfig:
        """The configuration with ``WHATSAPP_WEBHOOK_SECRET`` as the shared secret."""
        return cls(
            secret=settings.whatsapp_webhook_secret,
            clinic_secrets=dict(clinic_secrets or {}),
            phone_number_clinics=dict(phone_number_clinics or {}),
            verify_token=verify_token,
        )

    def secret_for(self, clinic_id: str | None) -> str | None:
        """The secret that signs webhooks of ``clinic_id`` (``None``: the shared one)."""
        if clinic_id is not None and clinic_id in self.clinic_secrets:
            return self.clinic_secrets[clinic_id]
        return self.secret


# --- processing -------------------------------------------------------------------------


class ProviderMessages(Protocol):
    """Finds an outbound message of the clinic by the id the provider gave it."""

    async def by_provider_id(
        self, clinic_id: str, provider_message_id: str
    ) -> MessageView | None: ...


@dataclass
class WebhookSummary:
    """What one webhook delivery led to (counts only: answered to the provider)."""

    received: int = 0
    processed: int = 0
    ignored: int = 0
    duplicates: int = 0

    def count(self, outcome: Outcome) -> None:
        if outcome == "processed":
            self.processed += 1
        else:
            self.ignored += 1

    def to_dict(self) -> dict[str, int]:
        return {
            "received": self.received,
            "processed": self.processed,
            "ignored": self.ignored,
            "duplicates": self.duplicates,
        }


class WhatsAppWebhooks:
    """Turns verified WhatsApp webhook items into the clinic's commands, once each."""

    def __init__(
        self,
        config: WebhookConfig,
        *,
        commands: CommandExecutor,
        queries: QueryExecutor,
        workflows: WorkflowGateway,
        inbox: WebhookInbox,
        messages: ProviderMessages,
    ) -> None:
        self.config = config
        self._commands = commands
        self._queries = queries
        self._workflows = workflows
        self._inbox = inbox
        self._messages = messages

    async def process(self, clinic_id: str, items: Sequence[WebhookItem]) -> WebhookSummary:
        """Handle each item not handled before, in payload order.

        Raises on an infrastructure failure (database, Temporal, projections behind),
        leaving that item and the ones after it unrecorded for the provider's retry.
        """
        summary = WebhookSummary(received=len(items))
        keys = [item_key(item) for item in items]
        done = await self._inbox.seen(clinic_id, keys)
        for item, key in zip(items, keys, strict=True):
            if key in done:
                summary.duplicates += 1
                continue
            outcome, detail = await self._handle(clinic_id, item)
            await self._inbox.record(clinic_id, key, outcome, detail)
            done.add(key)  # the same item twice in one payload runs once
            summary.count(outcome)
        return summary

    async def _handle(self, clinic_id: str, item: WebhookItem) -> tuple[Outcome, dict[str, Any]]:
        try:
            if isinstance(item, InboundMessage):
                return "processed", await self._inbound(_Item(clinic_id, item))
            return await self._status(clinic_id, item)
        except ExecutionError:
            raise  # infrastructure (e.g. projections behind): worth a retry
        except DomainError as exc:
            # The rules refused it (unknown message, stale receipt, closed lead ...):
            # the same item again would be refused again.
            log.info("webhook item %s ignored: %s", item_key(item), exc.code)
            return "ignored", {"code": exc.code, "message": exc.message}
        except ValidationError as exc:  # e.g. a sender id that is no valid phone number
            log.info("webhook item %s ignored: invalid (%s)", item_key(item), exc.error_count())
            return "ignored", {"code": InvalidArguments.code, "message": "invalid item"}

    # --- inbound messages -------------------------------------------------------------

    async def _inbound(self, item: _Item) -> dict[str, Any]:
        message = item.message
        patient = await self._ask(GetPatient(phone=message.from_phone), item)
        patient_id: str | None = patient.patient_id if patient is not None else None
        run = await self._commands.execute(
            RecordInboundMessage(
                provider_message_id=message.provider_message_id,
                from_phone=message.from_phone,
                text=text_of(message)[:MAX_TEXT_CHARS],
                patient_id=patient_id,
            ),
            item.context("received"),
        )
        if run.result.get("recorded") and not run.replayed:
            record_message_received("whatsapp")
        # Later reads must see at least this message (and so everything before it).
        item.position = run.position
        detail: dict[str, Any] = {
            "kind": "message",
            "conversationId": run.result.get("conversationId"),
            "recorded": run.result.get("recorded"),
        }
        if patient_id is not None:
            detail["patientId"] = patient_id
            detail["consent"] = await self._consent(item, patient_id)
        else:
            detail.update(await self._lead(item))
        return detail

    async def _consent(self, item: _Item, patient_id: str) -> ConsentReply | None:
        decision = await self._consent_decision(item, patient_id)
        if decision is None:
            return None
        await self._run(
            RecordConsent(
                patient_id=patient_id,
                phone=item.message.from_phone,
                consent_type=CONSENT_TYPE,
                status=decision,
                source=CONSENT_SOURCE,
            ),
            item.context("consent"),
        )
        return decision

    async def _consent_decision(self, item: _Item, patient_id: str) -> ConsentReply | None:
        text = item.message.text
        decision = parse_consent_reply(text) if text else None
        if text is None or decision is None:
            return None
        if decision == "withdrawn" and OPT_OUT_WORDS & set(words(fold(text))):
            return decision
        answered = await self._answered_template(item, patient_id)
        return decision if answered in CONSENT_REQUEST_TEMPLATES else None

    async def _answered_template(self, item: _Item, patient_id: str) -> str | None:
        """The template of the message a reply answers: the quoted one, else the last sent."""
        quoted_id = item.message.context_message_id
        if quoted_id:
            quoted = await self._messages.by_provider_id(item.clinic_id, quoted_id)
            return quoted.template_name if quoted is not None else None
        views: Sequence[MessageView] = await self._ask(
            GetMessageStatus(patient_id=patient_id), item
        )
        sent = [v for v in views if v.direction == "outbound" and v.sent_at is not None]
        if not sent:
            return None
        return max(sent, key=lambda v: v.sent_at or datetime.min.replace(tzinfo=UTC)).template_name

    async def _lead(self, item: _Item) -> dict[str, Any]:
        message = item.message
        lead: LeadView | None = await self._ask(GetLead(phone=message.from_phone), item)
        conversation = [
            LeadMessage(
                role="user",
                content=text_of(message)[:MAX_SCORED_CHARS],
                timestamp=message.timestamp,
            )
        ]
        if lead is not None and not _raises_score(lead, conversation):
            return {"leadId": lead.lead_id, "scored": False}
        scored = await self._run(
            ScoreLead(phone=message.from_phone, channel="whatsapp", messages=conversation),
            item.context("score"),
        )
        started = await asyncio.wait_for(
            self._workflows.start_catalogue(
                item.context("lead-scoring"),
                "lead-scoring",
                {
                    "phone": message.from_phone,
                    "channel": "whatsapp",
                    "messages": [m.model_dump(mode="json") for m in conversation],
                },
                internal={"prescored": scored},
            ),
            timeout=self.config.workflow_start_timeout_s,
        )
        return {
            "leadId": scored.get("leadId"),
            "created": scored.get("created"),
            "scored": True,
            "workflowId": started.workflow_id,
        }

    # --- statuses ---------------------------------------------------------------------

    async def _status(self, clinic_id: str, update: StatusUpdate) -> tuple[Outcome, dict[str, Any]]:
        base = f"whatsapp:{update.provider_message_id}:{update.status}"
        found = await self._messages.by_provider_id(clinic_id, update.provider_message_id)
        if found is None:
            return "ignored", {"kind": "status", "code": "UNKNOWN_MESSAGE"}
        result = await self._run(
            status_command(found.message_id, update), _context(clinic_id, base, "status")
        )
        return "processed", {
            "kind": "status",
            "messageId": found.message_id,
            "status": result.get("status"),
            "changed": result.get("changed"),
        }

    async def _ask(self, query: Query, item: _Item) -> Any:
        reader = CommandContext(clinic_id=item.clinic_id, actor=ACTOR, correlation_id=item.base)
        position = item.position or None
        return await self._queries.ask(query, reader, min_position=position)

    async def _run(self, command: Command, context: CommandContext) -> dict[str, Any]:
        return (await self._commands.execute(command, context)).result


@dataclass
class _Item:
    """One inbound message being handled, and the event position its reads must reach."""

    clinic_id: str
    message: InboundMessage
    position: int = 0

    @property
    def base(self) -> str:
        return f"whatsapp:{self.message.provider_message_id}"

    def context(self, step: str) -> CommandContext:
        return _context(self.clinic_id, self.base, step)


def _context(clinic_id: str, base: str, step: str) -> CommandContext:
    """A step's command context: its own idempotency key, derived from the provider's ids."""
    return CommandContext(
        clinic_id=clinic_id,
        actor=ACTOR,
        idempotency_key=f"{base}:{step}",
        correlation_id=base,
        causation_id=base,
    )


def item_key(item: WebhookItem) -> str:
    """The inbox key of an item: the provider's message id (and status)."""
    if isinstance(item, InboundMessage):
        return f"message:{item.provider_message_id}"
    return f"status:{item.provider_message_id}:{item.status}"


def text_of(message: InboundMessage) -> str:
    """The message's text, or ``[image]``-style for media without a caption."""
    return message.text if message.text else f"[{message.type}]"


def status_command(message_id: str, update: StatusUpdate) -> Command:
    """The command a delivery status becomes."""
    if update.status == "sent":
        return MarkMessageSent(
            message_id=message_id, provider_message_id=update.provider_message_id
        )
    if update.status in ("delivered", "read"):
        return MarkMessageDelivered(
            message_id=message_id,
            provider_message_id=update.provider_message_id,
            status=update.status,
        )
    error = update.errors[0] if update.errors else None
    return MarkMessageFailed(
        message_id=message_id,
        error_code=str(error.code) if error is not None and error.code is not None else "failed",
        error_message=((error.title or error.details) if error is not None else "")[:500],
        permanent=True,
    )


def _raises_score(lead: LeadView, conversation: list[LeadMessage]) -> bool:
    """An open lead is re-scored when this message alone scores higher than it stands."""
    if lead.status in CLOSED_LEAD:
        return False
    return score_conversation(conversation, "whatsapp").score > (lead.score or 0)


def build_whatsapp_webhooks(
    *,
    settings: Settings,
    pool: asyncpg.Pool,
    commands: CommandExecutor,
    queries: QueryExecutor,
    workflows: WorkflowGateway,
    config: WebhookConfig | None = None,
) -> WhatsAppWebhooks:
    """What ``app.state.whatsapp_webhooks`` should hold, built from the services."""
    return WhatsAppWebhooks(
        config or WebhookConfig.from_settings(settings),
        commands=commands,
        queries=queries,
        workflows=workflows,
        inbox=WebhookInbox(pool),
        messages=ReadModelMessages(pool),
    )


# --- HTTP -------------------------------------------------------------------------------


class SignatureRejected(Exception):
    """No valid signature: answered 401 before anything is read or stored."""


def _webhooks(request: Request) -> WhatsAppWebhooks:
    webhooks: WhatsAppWebhooks = request.app.state.whatsapp_webhooks
    return webhooks


def check_signature(
    config: WebhookConfig, clinic_id: str | None, body: bytes, headers: Any
) -> None:
    """``SignatureRejected`` unless ``body`` is signed with the clinic's secret."""
    secret = config.secret_for(clinic_id)
    if not secret:
        raise SignatureRejected("no webhook secret is configured for this clinic")
    presented = next((headers.get(h) for h in SIGNATURE_HEADERS if headers.get(h)), None)
    if presented is None:
        raise SignatureRejected("the webhook signature header is missing")
    if not verify_signature(body, presented, secret):
        raise SignatureRejected("the webhook signature does not match the body")


def phone_number_ids(payload: Any) -> set[str]:
    """Every ``metadata.phone_number_id`` in a Cloud API envelope."""
    found: set[str] = set()
    entries = payload.get("entry") if isinstance(payload, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else []:
            value = change.get("value") if isinstance(change, dict) else None
            metadata = value.get("metadata") if isinstance(value, dict) else None
            if isinstance(metadata, dict) and metadata.get("phone_number_id"):
                found.add(str(metadata["phone_number_id"]))
    return found


def resolve_clinic(config: WebhookConfig, path_clinic: str | None, payload: Any) -> str:
    """The clinic of a verified payload: the path's, checked against the number mapping."""
    mapped = {
        config.phone_number_clinics[p]
        for p in phone_number_ids(payload)
        if p in config.phone_number_clinics
    }
    if path_clinic is not None:
        if mapped - {path_clinic}:
            raise Forbidden("this WhatsApp number belongs to another clinic")
        return path_clinic
    if len(mapped) != 1:
        raise Forbidden(
            "the clinic of this webhook is unknown: post to /webhooks/whatsapp/{clinicId} "
            "or map its phone_number_id to a clinic"
        )
    return mapped.pop()


def create_webhook_router() -> APIRouter:
    """The webhook routes; they read ``request.app.state.whatsapp_webhooks`` only."""
    router = APIRouter(tags=["webhooks"])
    received: dict[int | str, dict[str, Any]] = {
        400: {"description": "The body is not JSON"},
        401: {"description": "Missing or bad X-Hub-Signature-256: nothing stored"},
        413: {"description": "The body is too large"},
        503: {"description": "Not processed now; the provider retries (see Retry-After)"},
    }
    handshake_errors: dict[int | str, dict[str, Any]] = {
        403: {"description": "The verify token does not match"},
        404: {"description": "No verify token is configured"},
    }

    @router.post("/webhooks/whatsapp/{clinic_id}", name="whatsapp_webhook", responses=received)
    async def receive_for_clinic(request: Request, clinic_id: str) -> Response:
        """Receive a signed WhatsApp webhook of the clinic in the path."""
        return await _receive(request, clinic_id)

    @router.post("/webhooks/whatsapp", name="whatsapp_webhook_mapped", responses=received)
    async def receive_mapped(request: Request) -> Response:
        """Receive a signed WhatsApp webhook routed by its phone_number_id."""
        return await _receive(request, None)

    @router.get(
        "/webhooks/whatsapp/{clinic_id}",
        name="whatsapp_webhook_handshake",
        responses=handshake_errors,
    )
    async def handshake_for_clinic(request: Request, clinic_id: str) -> Response:
        """Meta's subscription handshake (hub.mode, hub.verify_token, hub.challenge)."""
        return _handshake(request)

    @router.get(
        "/webhooks/whatsapp", name="whatsapp_webhook_handshake_mapped", responses=handshake_errors
    )
    async def handshake(request: Request) -> Response:
        """Meta's subscription handshake (hub.mode, hub.verify_token, hub.challenge)."""
        return _handshake(request)

    return router


async def _receive(request: Request, path_clinic: str | None) -> Response:
    webhooks = _webhooks(request)
    config = webhooks.config
    body = await _body(request, config.max_body_bytes)
    if body is None:
        return problem_response(
            413, "PAYLOAD_TOO_LARGE", "the webhook body is too large", instance=request.url.path
        )
    try:
        # Without a clinic in the path only the shared secret can sign.
        check_signature(config, path_clinic, body, request.headers)
    except SignatureRejected as exc:
        return _unauthenticated(request, str(exc))
    try:
        payload = json.loads(body)
    except ValueError:
        return problem_response(
            400, "INVALID_ARGUMENTS", "the webhook body is not JSON", instance=request.url.path
        )
    clinic_id = resolve_clinic(config, path_clinic, payload)
    if path_clinic is None and clinic_id in config.clinic_secrets:
        return _unauthenticated(
            request, "this clinic signs with its own secret: post to /webhooks/whatsapp/{clinicId}"
        )
    items = parse_webhook(payload)
    try:
        summary = await webhooks.process(clinic_id, items)
    except Exception:
        # Unfinished items were not recorded: the provider's retry processes them again.
        log.exception("WhatsApp webhook of clinic %s failed; the provider will retry", clinic_id)
        return problem_response(
            503,
            "SERVICE_UNAVAILABLE",
            "the webhook could not be processed now; retry later",
            headers={"Retry-After": "30"},
            instance=request.url.path,
        )
    return JSONResponse(summary.to_dict())


def _unauthenticated(request: Request, detail: str) -> Response:
    return problem_response(401, "UNAUTHENTICATED", detail, instance=request.url.path)


async def _body(request: Request, limit: int) -> bytes | None:
    """The raw body (signatures cover the exact bytes), ``None`` when over ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _handshake(request: Request) -> Response:
    token = _webhooks(request).config.verify_token
    params = request.query_params
    presented = params.get("hub.verify_token") or ""
    if not token:
        return problem_response(
            404, "NOT_FOUND", "no webhook verify token is configured", instance=request.url.path
        )
    if params.get("hub.mode") != "subscribe" or not hmac.compare_digest(
        presented.encode(), token.encode()
    ):
        return problem_response(
            403, "FORBIDDEN", "the verify token does not match", instance=request.url.path
        )
    return PlainTextResponse(params.get("hub.challenge", ""))
