"""Outbound message lifecycle (sent at most once) and inbound conversations."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from domain.aggregates import Conversation, Message
from domain.aggregates.message import RECENT_INBOUND
from domain.errors import Conflict, NotFound
from domain.events import WhatsAppMessageSent
from tests.contracts.aggregate_contract import AggregateMachine, assert_aggregate_laws, attempt

CONTENT: dict[str, Any] = {
    "to": "+40721234567",
    "patient_id": "p-1",
    "template_name": "appointment_reminder_24h",
    "template_params": ["Ana", "04.03.2025", "09:00"],
    "language": "ro",
}


def queued() -> Message:
    message = Message("m-1")
    message.queue(**CONTENT)
    return message


def test_queue_is_idempotent_for_identical_content_only() -> None:
    message = queued()
    assert message.status == "queued"
    assert message.queue(**CONTENT) is False
    with pytest.raises(Conflict):
        message.queue(**{**CONTENT, "to": "+40731234567"})
    assert len(message.pending_events) == 1


def test_a_message_is_sent_at_most_once() -> None:
    message = queued()
    assert message.mark_sent("wamid.1") is True
    assert message.mark_sent("wamid.1") is False
    with pytest.raises(Conflict):
        message.mark_sent("wamid.2")
    assert sum(isinstance(e, WhatsAppMessageSent) for e in message.pending_events) == 1


def test_receipts_move_forward_and_stale_ones_are_ignored() -> None:
    message = queued()
    with pytest.raises(Conflict):
        message.mark_delivered("wamid.1")  # not sent yet
    message.mark_sent("wamid.1")
    with pytest.raises(Conflict):
        message.mark_delivered("wamid.other")
    assert message.mark_delivered("wamid.1", "read") is True
    assert message.mark_delivered("wamid.1", "delivered") is False
    assert message.status == "read"
    with pytest.raises(Conflict):
        message.mark_failed("131026", "undeliverable")


def test_a_transient_failure_before_sending_leaves_it_queued() -> None:
    message = queued()
    assert message.mark_failed("500", "provider down", permanent=False) is True
    assert (message.status, message.failed_attempts) == ("queued", 1)
    assert message.mark_sent("wamid.1") is True


def test_a_permanent_failure_is_final() -> None:
    message = queued()
    message.mark_failed("131047", "re-engagement required", permanent=True)
    assert message.status == "failed"
    assert message.mark_failed("131047", "again") is False
    with pytest.raises(Conflict):
        message.mark_sent("wamid.1")


def test_a_failure_after_sending_is_final() -> None:
    message = queued()
    message.mark_sent("wamid.1")
    message.mark_failed("131026", "undeliverable", permanent=False)
    assert message.status == "failed"


def test_actions_on_an_unknown_message_are_not_found() -> None:
    with pytest.raises(NotFound):
        Message("nope").mark_sent("wamid.1")


def test_a_conversation_drops_redelivered_webhooks() -> None:
    conversation = Conversation("conv-1")
    kwargs = {"from_phone": "+40721234567", "text": "DA"}
    assert conversation.receive(provider_message_id="w1", **kwargs) is True
    assert conversation.receive(provider_message_id="w1", **kwargs) is False
    assert conversation.receive(provider_message_id="w2", **kwargs) is True
    assert conversation.received == 2
    assert_aggregate_laws(conversation, list(conversation.pending_events))


def test_a_conversation_remembers_a_bounded_number_of_ids() -> None:
    conversation = Conversation("conv-1")
    for n in range(RECENT_INBOUND + 5):
        conversation.receive(provider_message_id=f"w{n}", from_phone="+40721234567", text="x")
    assert len(conversation.recent_ids) == RECENT_INBOUND
    assert conversation.recent_ids[-1] == f"w{RECENT_INBOUND + 4}"


class MessageMachine(AggregateMachine):
    aggregate = Message

    def __init__(self) -> None:
        super().__init__()
        self.sent_with: str | None = None
        self.final_length: int | None = None

    @rule()
    def queue(self) -> None:
        attempt(self.agg, lambda: self.agg.queue(**CONTENT))

    @rule(provider_id=st.sampled_from(["wamid.1", "wamid.2"]))
    def sent(self, provider_id: str) -> None:
        error = attempt(self.agg, lambda: self.agg.mark_sent(provider_id))
        if error is None and self.sent_with is None:
            self.sent_with = provider_id

    @rule(
        provider_id=st.sampled_from(["wamid.1", "wamid.2"]),
        status=st.sampled_from(["delivered", "read"]),
    )
    def receipt(self, provider_id: str, status: str) -> None:
        attempt(self.agg, lambda: self.agg.mark_delivered(provider_id, status))

    @rule(permanent=st.booleans())
    def failed(self, permanent: bool) -> None:
        attempt(self.agg, lambda: self.agg.mark_failed("e", "error", permanent))

    @invariant()
    def sent_at_most_once_with_one_provider_id(self) -> None:
        sends = [e for e in self.history() if isinstance(e, WhatsAppMessageSent)]
        assert len(sends) <= 1
        if sends:
            assert sends[0].provider_message_id == self.sent_with == self.agg.provider_message_id

    @invariant()
    def nothing_follows_a_final_failure(self) -> None:
        if self.agg.status != "failed":
            return
        if self.final_length is None:
            self.final_length = len(self.history())
        assert len(self.history()) == self.final_length


MessageMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestMessageMachine = MessageMachine.TestCase
