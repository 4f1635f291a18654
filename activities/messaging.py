"""Messaging activities: queue an outbox message, deliver it through WhatsApp, record the outcome.

Queueing is consent-gated and limited (per-template cooldowns, messages per person
per day: ``adapters.cooldowns``, applied by the command bus); a message refused for
either reason is ``skipped`` with the refusal, so the workflow records why and goes
on. Delivery uses the message id as the provider's idempotency key, so a retried or
re-delivered activity never sends twice. Permanent provider errors are recorded
(WhatsAppMessageFailed) and not retried; transient ones are retried by Temporal,
honouring the provider's Retry-After.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.payloads import (
    DeliverMessagePayload,
    Delivery,
    DeliveryFailurePayload,
    QueuedMessage,
    QueueMessagePayload,
)
from activities.support import AggregateReader, run
from adapters.whatsapp import WhatsAppPermanentError, WhatsAppTransientError, WhatsAppTransport
from domain.aggregates import Message, Patient
from domain.commands import MarkMessageFailed, MarkMessageSent, QueueWhatsAppMessage
from domain.cqrs import CommandExecutor
from domain.errors import ConsentRequired, NotFound, RateLimited

TRANSIENT = "WHATSAPP_TRANSIENT"
PERMANENT = "WHATSAPP_PERMANENT"


class MessagingActivities:
    """Outbox and delivery of WhatsApp messages."""

    def __init__(
        self, commands: CommandExecutor, reader: AggregateReader, whatsapp: WhatsAppTransport
    ) -> None:
        self._commands = commands
        self._reader = reader
        self._whatsapp = whatsapp

    @activity.defn
    async def queue_message(self, p: QueueMessagePayload) -> QueuedMessage:
        """Queue a message (consent-gated, limited); ``skipped`` explains a refusal
        (CONSENT_REQUIRED, or RATE_LIMITED with ``retryAfter``) instead of failing."""
        to = p.to or await self._patient_phone(p)
        if not to:
            skipped = {"code": "NO_PHONE", "message": "no phone number for the recipient"}
            return QueuedMessage(message_id=p.message_id, queued=False, skipped=skipped)
        command = QueueWhatsAppMessage(
            message_id=p.message_id,
            to=to,
            patient_id=p.patient_id,
            template_name=p.template_name,
            template_params=p.template_params,
            language=p.language,
            text=p.text,
        )
        try:
            await run(self._commands, p.caller, command)
        except ApplicationError as exc:
            if isinstance(exc.__cause__, ConsentRequired | RateLimited):
                return QueuedMessage(
                    message_id=p.message_id, queued=False, skipped=exc.__cause__.to_dict()
                )
            raise
        return QueuedMessage(message_id=p.message_id, queued=True)

    async def _patient_phone(self, p: QueueMessagePayload) -> str | None:
        if p.patient_id is None:
            return None
        patient = await self._reader.load(Patient, p.caller.clinic_id, p.patient_id)
        phone = patient.profile.get("phone") if patient.active else None
        return str(phone) if phone else None

    @activity.defn
    async def deliver_message(self, p: DeliverMessagePayload) -> Delivery:
        """Send a queued message once and record WhatsAppMessageSent (or Failed)."""
        message = await self._reader.load(Message, p.caller.clinic_id, p.message_id)
        if not message.exists:
            raise ApplicationError(
                f"message {p.message_id!r} is not in the outbox",
                NotFound("message not found", messageId=p.message_id).to_dict(),
                type="NOT_FOUND",
                non_retryable=True,
            )
        if message.status != "queued":
            return Delivery(
                message_id=p.message_id,
                status=message.status,
                provider_message_id=message.provider_message_id,
            )
        provider_id = await self._send(p, message)
        await run(
            self._commands,
            p.caller,
            MarkMessageSent(message_id=p.message_id, provider_message_id=provider_id),
        )
        return Delivery(message_id=p.message_id, status="sent", provider_message_id=provider_id)

    async def _send(self, p: DeliverMessagePayload, message: Message) -> str:
        content = message.content
        try:
            if content.get("template_name"):
                return await self._whatsapp.send_template(
                    content["to"],
                    content["template_name"],
                    content.get("language") or "ro",
                    list(content.get("template_params") or []),
                    idempotency_key=p.message_id,
                )
            return await self._whatsapp.send_text(
                content["to"], content["text"], idempotency_key=p.message_id
            )
        except WhatsAppPermanentError as exc:
            code = str(exc.provider_code or exc.status_code or "permanent")
            await run(
                self._commands,
                p.caller,
                MarkMessageFailed(
                    message_id=p.message_id,
                    error_code=code,
                    error_message=(exc.title or str(exc))[:500],
                    permanent=True,
                ),
                suffix="failed",
            )
            raise ApplicationError(
                f"WhatsApp refused the message: {exc.title or exc}",
                {"code": PERMANENT, "providerCode": code},
                type=PERMANENT,
                non_retryable=True,
            ) from exc
        except WhatsAppTransientError as exc:
            delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
            raise ApplicationError(
                f"WhatsApp is unavailable: {exc.title or exc}",
                {"code": TRANSIENT, "providerCode": exc.provider_code},
                type=TRANSIENT,
                next_retry_delay=delay,
            ) from exc

    @activity.defn
    async def record_delivery_failure(self, p: DeliveryFailurePayload) -> Delivery:
        """Record that delivery gave up (retries exhausted)."""
        result = await run(
            self._commands,
            p.caller,
            MarkMessageFailed(
                message_id=p.message_id,
                error_code=p.error_code,
                error_message=p.error_message[:500],
                permanent=p.permanent,
            ),
        )
        return Delivery(message_id=p.message_id, status=str(result.result.get("status")))
