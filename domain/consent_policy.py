"""Consent rules (GDPR): how long a grant lasts, the policy in force, what needs what.

Pure functions and constants: the Consent aggregate, the command handlers and the
read side all ask these, so the rules are written once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from domain.events import ConsentType

CURRENT_POLICY_VERSION = "2024.1"
"""Version of the privacy policy people consent to now; recorded on every decision."""

CONSENT_VALIDITY_YEARS = 2

Action = Literal["scheduling", "marketing_message", "reminder"]
MessageChannel = Literal["whatsapp", "email", "sms"]

_MARKETING: dict[str, ConsentType] = {
    "whatsapp": "marketing_whatsapp",
    "email": "marketing_email",
    "sms": "marketing_sms",
}

_ASK: dict[str, str] = {
    "data_processing": (
        "Ask the patient to agree to the processing of their personal data "
        "(needed to book appointments)."
    ),
    "marketing_whatsapp": "Ask the patient whether they agree to receive offers on WhatsApp.",
    "marketing_email": "Ask the patient whether they agree to receive offers by e-mail.",
    "marketing_sms": "Ask the patient whether they agree to receive offers by SMS.",
    "appointment_reminders": "Ask the patient whether they want appointment reminders.",
    "treatment_updates": "Ask the patient whether they want updates about their treatment.",
    "third_party_sharing": "Ask the patient whether their data may be shared with partners.",
}


def consent_expiry(granted_at: datetime) -> datetime:
    """When a grant given at ``granted_at`` lapses: the same day two years later.

    A grant given on 29 February lapses on 28 February.
    """
    year = granted_at.year + CONSENT_VALIDITY_YEARS
    try:
        return granted_at.replace(year=year)
    except ValueError:
        return granted_at.replace(year=year, day=28)


def required_consent_for(action: Action, channel: MessageChannel = "whatsapp") -> ConsentType:
    """The consent an action needs.

    Scheduling needs ``data_processing``; a marketing message needs the
    ``marketing_<channel>`` consent; a reminder needs ``appointment_reminders``.
    """
    if action == "scheduling":
        return "data_processing"
    if action == "reminder":
        return "appointment_reminders"
    return _MARKETING[channel]


def ask_for(consent_types: list[str]) -> str:
    """What to ask the person so the missing consents can be recorded."""
    return " ".join(_ASK.get(t, f"Ask the patient for consent: {t}.") for t in consent_types)
