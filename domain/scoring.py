"""Deterministic, rule-based lead scoring (DOMAIN.md "Lead scoring").

Only what the lead wrote (``role == "user"``) is evidence. The rules:

* All-on-4/6/X with a budget word → 5; All-on-X alone → 4.
* implant, veneers, whitening, extraction → at least 3; any other dental need
  (cleaning, consultation, "programare", "dinte" ...) → at least 2; nothing → 1.
* An urgency word adds 1, a budget word adds 1; the score stays within 1..5.
* An explicit "not interested" / "wrong number" makes the lead UNQUALIFIED (1).
* Accident, "căzut", "spart" or "urgență medicală" flag an emergency: the clinic is
  not an emergency service, so the lead is told to call 112 and handed to a human.

Confidence grows with the number of independent evidence kinds found; it is a
pure function of the text, never random. Channel and UTM parameters are carried
for the caller (and an LLM refinement) but the published rules do not weigh them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from domain.services import ServiceType, find_services
from domain.text import fold


class Classification(StrEnum):
    """Lead temperature derived from the score."""

    HOT = "HOT"
    WARM = "WARM"
    COLD = "COLD"
    UNQUALIFIED = "UNQUALIFIED"


class SuggestedAction(StrEnum):
    """What the clinic should do next with the lead."""

    SCHEDULE_APPOINTMENT = "schedule_appointment"
    SEND_FOLLOW_UP = "send_follow_up"
    NURTURE_SEQUENCE = "nurture_sequence"
    TRANSFER_TO_HUMAN = "transfer_to_human"
    MARK_UNQUALIFIED = "mark_unqualified"
    REQUEST_MORE_INFO = "request_more_info"


class Channel(StrEnum):
    """Where a lead came from."""

    WHATSAPP = "whatsapp"
    VOICE = "voice"
    WEB = "web"
    REFERRAL = "referral"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)


class LeadMessage(_Model):
    """One message of the conversation with a lead."""

    role: Literal["user", "assistant"]
    content: str = Field(max_length=2000)
    timestamp: datetime | None = None


class UtmParams(_Model):
    """Campaign attribution of the lead's first contact."""

    source: str | None = None
    medium: str | None = None
    campaign: str | None = None
    content: str | None = None
    term: str | None = None


class LeadScore(_Model):
    """The outcome of scoring a lead; serialises with camelCase names."""

    score: int = Field(ge=1, le=5)
    classification: Classification
    confidence: float = Field(ge=0.0, le=1.0)
    reasons: list[str]
    suggested_action: SuggestedAction
    procedure_interest: ServiceType | None = None
    emergency: bool = False


def classify(score: int) -> Classification:
    """Map a 1–5 score to its classification: ≥4 HOT, 3 WARM, 2 COLD, 1 UNQUALIFIED."""
    if score >= 4:
        return Classification.HOT
    return {3: Classification.WARM, 2: Classification.COLD}.get(score, Classification.UNQUALIFIED)


# --- evidence vocabularies (folded text) -----------------------------------------------

_BUDGET = re.compile(
    r"\b(?:pret\w*|cost\w*|buget\w*|euro|eur|lei|ron|finantar\w*|rate|rata|in rate|"
    r"plata in rate|price\w*|pricing|budget\w*|financ\w*|installments?|payment plan|"
    r"how much|cat ar costa|cat costa|cat ma costa|tarif\w*)\b|€|\$"
)
_URGENCY = re.compile(
    r"\b(?:urgent\w*|durer\w*|ma doare|doare|imediat|cat mai repede|cat de repede|maine|"
    r"azi|astazi|acum(?!\s+(?:\d+|o|un|doi|trei|cativa|cateva)\b)|nu mai pot|"
    r"asap|as soon as possible|pain\w*|hurts?|immediately|right away|today|tomorrow|"
    r"right now|can'?t take it)\b"
)
_EMERGENCY = re.compile(
    r"\b(?:accident\w*|cazut\w*|spart\w*|urgenta medicala|medical emergency|"
    r"emergency room|fell|broken|broke (?:my|a|his|her))\b"
)
_NOT_INTERESTED = re.compile(
    r"\b(?:nu (?:mai )?sunt interesat\w*|nu ma intereseaza|nu (?:mai )?vreau nimic|"
    r"gresit|numar gresit|dezabonare|dezaboneaza|not interested|wrong number|"
    r"unsubscribe|spam)\b"
)
_DENTAL_NEED = re.compile(
    r"\b(?:programar\w*|programez|dinte|dintii|dinti|masea|masele|dantur\w*|proteza\w*|"
    r"zambet\w*|stomatolog\w*|dentist\w*|appointment|tooth|teeth|smile|dental)\b"
)
_PREMIUM = {
    ServiceType.IMPLANT,
    ServiceType.VENEERS,
    ServiceType.WHITENING,
    ServiceType.EXTRACTION,
}
# Which procedure to report when several are mentioned: the most valuable first.
_INTEREST_ORDER = (
    ServiceType.ALL_ON_X,
    ServiceType.IMPLANT,
    ServiceType.VENEERS,
    ServiceType.WHITENING,
    ServiceType.EXTRACTION,
)


def score_lead(
    messages: Iterable[LeadMessage | Mapping[str, Any]],
    channel: Channel | str,
    utm: UtmParams | Mapping[str, Any] | None = None,
) -> LeadScore:
    """Score a lead 1–5 from what it wrote; see the module docstring for the rules.

    ``messages`` may be ``LeadMessage`` objects or mappings with ``role`` and
    ``content``. ``channel`` must be a ``Channel`` value; ``utm`` is validated too.
    """
    Channel(channel)
    if utm is not None and not isinstance(utm, UtmParams):
        UtmParams.model_validate(utm)
    user_texts = [
        fold(m.content)
        for m in (LeadMessage.model_validate(x) if isinstance(x, Mapping) else x for x in messages)
        if m.role == "user"
    ]
    return _score_text(" \n ".join(user_texts), len(user_texts))


def _score_text(text: str, message_count: int) -> LeadScore:
    services = [m.service for m in find_services(text)]
    interest = next((s for s in _INTEREST_ORDER if s in services), None)
    if interest is None and services:
        interest = services[0]
    budget = _first(_BUDGET, text)
    urgency = _first(_URGENCY, text)
    emergency = _first(_EMERGENCY, text)
    refusal = _first(_NOT_INTERESTED, text)
    dental = _first(_DENTAL_NEED, text)

    reasons: list[str] = []
    base = _base_score(interest, bool(budget), bool(dental), reasons)
    score = base + _bonus(interest, budget, "budget mention", reasons)
    score += _bonus(None, urgency, "urgency signal", reasons)
    if refusal:
        score = 1
        reasons.append(f"lead says it is not interested ({refusal!r})")
    score = max(1, min(5, score))
    if emergency:
        reasons.append(
            f"possible medical emergency ({emergency!r}): advise calling 112, "
            "the clinic is not an emergency service"
        )
    if not reasons:
        reasons.append("no buying signal in the lead's messages")
    evidence = sum(bool(x) for x in (interest or dental, budget, urgency, refusal, emergency))
    return LeadScore(
        score=score,
        classification=classify(score),
        confidence=_confidence(evidence, message_count),
        reasons=reasons,
        suggested_action=_action(score, bool(emergency), bool(refusal), message_count),
        procedure_interest=interest,
        emergency=bool(emergency),
    )


def _first(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.search(text)
    return match.group(0) if match else None


def _base_score(
    interest: ServiceType | None, budget: bool, dental: bool, reasons: list[str]
) -> int:
    if interest is ServiceType.ALL_ON_X:
        reasons.append("asks about All-on-X (full-arch implants)")
        return 4
    if interest in _PREMIUM:
        reasons.append(f"interested in {interest}")
        return 3
    if interest is not None:
        reasons.append(f"interested in {interest}")
        return 2
    if dental:
        reasons.append("mentions a dental need")
        return 2
    return 1


def _bonus(interest: ServiceType | None, word: str | None, label: str, reasons: list[str]) -> int:
    if not word:
        return 0
    if interest is ServiceType.ALL_ON_X:
        reasons.append(f"All-on-X with a {label} ({word!r})")
    else:
        reasons.append(f"{label} ({word!r})")
    return 1


def _confidence(evidence_kinds: int, message_count: int) -> float:
    if message_count == 0:
        return 0.2
    extra_messages = min(message_count - 1, 2)
    return round(min(0.95, 0.35 + 0.15 * evidence_kinds + 0.05 * extra_messages), 2)


def _action(score: int, emergency: bool, refusal: bool, message_count: int) -> SuggestedAction:
    if emergency:
        return SuggestedAction.TRANSFER_TO_HUMAN
    if refusal:
        return SuggestedAction.MARK_UNQUALIFIED
    if score >= 4:
        return SuggestedAction.SCHEDULE_APPOINTMENT
    if score == 3:
        return SuggestedAction.SEND_FOLLOW_UP
    if score == 2:
        return SuggestedAction.NURTURE_SEQUENCE
    return SuggestedAction.REQUEST_MORE_INFO
