"""A natural score request carries what the lead said, so the score reflects it."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.intent import detect_intents
from domain.scoring import score_lead

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def test_the_text_after_a_colon_is_the_leads_message_and_drives_the_score() -> None:
    result = detect_intents(
        "Scorează leadul 0721 234 599 de pe WhatsApp: vreau all-on-4, cât costă?", now=NOW
    )
    [call] = result.calls
    assert call.function == "score_lead"
    assert call.arguments["messages"] == [{"role": "user", "content": "vreau all-on-4, cât costă?"}]
    scored = score_lead(call.arguments["messages"], "whatsapp")
    assert scored.score == 5


def test_a_request_without_the_leads_words_carries_no_message() -> None:
    [call] = detect_intents("Scorează leadul +40721234567 de pe WhatsApp", now=NOW).calls
    assert "messages" not in call.arguments
