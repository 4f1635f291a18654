"""WhatsApp messages: the outbox lifecycle of one outbound message, and inbound conversations.

Outbound: queued → sent → delivered → read, or failed. A message is sent at most
once: a second "sent" with another provider id is refused. A transient failure
before sending leaves it queued for a retry; any other failure is final.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from domain.aggregate import Aggregate
from domain.aggregates._common import require_exists
from domain.errors import Conflict
from domain.events import (
    WhatsAppMessageDelivered,
    WhatsAppMessageFailed,
    WhatsAppMessageQueued,
    WhatsAppMessageReceived,
    WhatsAppMessageSent,
)

MessageStatus = Literal["queued", "sent", "delivered", "read", "failed"]
_DELIVERY_RANK = {"sent": 0, "delivered": 1, "read": 2}
_CONTENT = ("to", "patient_id", "template_name", "template_params", "language", "text")


class Message(Aggregate):
    """One outbound WhatsApp message (id chosen by the caller, for idempotency)."""

    stream_type = "message"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.content: dict[str, Any] = {}
        self.status: MessageStatus = "queued"
        self.provider_message_id: str | None = None
        self.failed_attempts = 0
        self.error_code: str | None = None

    def queue(self, **content: Any) -> bool:
        """Put a message in the outbox; False for an identical repeat, else Conflict."""
        event = WhatsAppMessageQueued(message_id=self.id, **content)
        wanted = _content_of(event)
        if self.exists:
            if wanted != self.content:
                raise Conflict("another message has this id", messageId=self.id)
            return False
        self._record(event)
        return True

    def mark_sent(self, provider_message_id: str) -> bool:
        """The provider accepted it; False when already recorded with this provider id."""
        require_exists(self, "message")
        if self.status in _DELIVERY_RANK:
            if provider_message_id == self.provider_message_id:
                return False
            raise Conflict("message was already sent", messageId=self.id, status=self.status)
        self._require_not_failed("send")
        self._record(
            WhatsAppMessageSent(message_id=self.id, provider_message_id=provider_message_id)
        )
        return True

    def mark_delivered(
        self, provider_message_id: str, status: Literal["delivered", "read"] = "delivered"
    ) -> bool:
        """Delivery or read receipt; False for a stale or repeated receipt."""
        require_exists(self, "message")
        self._require_not_failed("deliver")
        if self.status == "queued":
            raise Conflict("message has not been sent yet", messageId=self.id)
        if provider_message_id != self.provider_message_id:
            raise Conflict("receipt for another provider message", messageId=self.id)
        if _DELIVERY_RANK[status] <= _DELIVERY_RANK[self.status]:
            return False
        self._record(
            WhatsAppMessageDelivered(
                message_id=self.id, provider_message_id=provider_message_id, status=status
            )
        )
        return True

    def mark_failed(self, error_code: str, error_message: str, permanent: bool = True) -> bool:
        """Record a failure; False when it already failed for good."""
        require_exists(self, "message")
        if self.status == "failed":
            return False
        if self.status in ("delivered", "read"):
            raise Conflict("message was already delivered", messageId=self.id, status=self.status)
        self._record(
            WhatsAppMessageFailed(
                message_id=self.id,
                error_code=error_code,
                error_message=error_message,
                permanent=permanent,
            )
        )
        return True

    def _require_not_failed(self, action: str) -> None:
        if self.status == "failed":
            raise Conflict(f"cannot {action} a failed message", messageId=self.id)

    # --- state --------------------------------------------------------------------

    def when_WhatsAppMessageQueued(self, e: WhatsAppMessageQueued) -> None:
        self.content = _content_of(e)

    def when_WhatsAppMessageSent(self, e: WhatsAppMessageSent) -> None:
        self.status, self.provider_message_id = "sent", e.provider_message_id

    def when_WhatsAppMessageDelivered(self, e: WhatsAppMessageDelivered) -> None:
        self.status = e.status

    def when_WhatsAppMessageFailed(self, e: WhatsAppMessageFailed) -> None:
        self.error_code = e.error_code
        self.failed_attempts += 1
        # A transient failure before sending leaves the message queued for a retry.
        if e.permanent or self.status != "queued":
            self.status = "failed"

    def snapshot_state(self) -> dict[str, Any]:
        return {
            "content": dict(self.content),
            "status": self.status,
            "provider_message_id": self.provider_message_id,
            "failed_attempts": self.failed_attempts,
            "error_code": self.error_code,
        }

    @classmethod
    def from_snapshot(cls, aggregate_id: str, state: dict[str, Any], version: int) -> Self:
        message = cls(aggregate_id)
        message.content = dict(state["content"])
        message.status = state["status"]
        message.provider_message_id = state["provider_message_id"]
        message.failed_attempts = state["failed_attempts"]
        message.error_code = state["error_code"]
        message.version = version
        return message


def _content_of(event: WhatsAppMessageQueued) -> dict[str, Any]:
    data = event.data()
    return {name: data[name] for name in _CONTENT}


RECENT_INBOUND = 500
"""Provider ids remembered per conversation to drop webhook redeliveries."""


class Conversation(Aggregate):
    """Inbound messages from one phone (id = the clinic's pseudonym of the phone)."""

    stream_type = "conversation"
    snapshot_every = 100

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.recent_ids: list[str] = []
        self.received = 0

    def receive(
        self,
        *,
        provider_message_id: str,
        from_phone: str,
        text: str,
        patient_id: str | None = None,
        lead_id: str | None = None,
    ) -> bool:
        """Record an inbound message; False for a redelivered one."""
        if provider_message_id in self.recent_ids:
            return False
        self._record(
            WhatsAppMessageReceived(
                provider_message_id=provider_message_id,
                from_phone=from_phone,
                text=text,
                patient_id=patient_id,
                lead_id=lead_id,
            )
        )
        return True

    def when_WhatsAppMessageReceived(self, e: WhatsAppMessageReceived) -> None:
        self.recent_ids = [*self.recent_ids, e.provider_message_id][-RECENT_INBOUND:]
        self.received += 1

    def snapshot_state(self) -> dict[str, Any]:
        return {"recent_ids": list(self.recent_ids), "received": self.received}

    @classmethod
    def from_snapshot(cls, aggregate_id: str, state: dict[str, Any], version: int) -> Self:
        conversation = cls(aggregate_id)
        conversation.recent_ids = list(state["recent_ids"])
        conversation.received = state["received"]
        conversation.version = version
        return conversation
