"""Value vocabularies: channels, consent types and sources, templates, workflows, groupings.

Each ``find_*`` reads folded, masked text and returns the value with the words it
came from (for evidence), or None. First mention wins unless said otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from domain.intent.cues import STATUS_PATTERNS


@dataclass(frozen=True)
class Found:
    """A value found in text, the words it came from and where."""

    value: str
    text: str
    start: int
    end: int


def _first(table: tuple[tuple[str, str], ...], text: str) -> Found | None:
    hits = [
        Found(value, m.group(0), m.start(), m.end())
        for value, pattern in table
        for m in re.finditer(pattern, text)
    ]
    return min(hits, key=lambda h: h.start) if hits else None


def _all(table: tuple[tuple[str, str], ...], text: str) -> list[Found]:
    hits = [
        Found(value, m.group(0), m.start(), m.end())
        for value, pattern in table
        for m in re.finditer(pattern, text)
    ]
    return sorted(hits, key=lambda h: h.start)


# --- lead channel -----------------------------------------------------------------------

_CHANNELS: tuple[tuple[str, str], ...] = (
    ("whatsapp", r"\bwhats ?app\b"),
    ("voice", r"\b(?:telefon\w*|apel\w*|a sunat|au sunat|sunat|phone call|called|calls?|voice|"
              r"voce|phone)\b"),
    ("web", r"\b(?:web\w*|site\w*|formular\w*|online|internet|landing\w*)\b"),
    ("referral", r"\b(?:recomand\w*|referral|referred|recommended|trimis de)\b"),
)  # fmt: skip


def find_channel(text: str) -> Found | None:
    """The lead channel named in ``text``; "telefon" before a number is not a channel."""
    for hit in _all(_CHANNELS, text):
        if hit.value == "voice" and re.match(r"[\s:.]*(?:nr\.?\s*|numar\s*)?#", text[hit.end :]):
            continue  # "telefon 0721..." names the number, not the channel
        return hit
    return None


# --- consent ----------------------------------------------------------------------------

_MARKETING = r"(?:marketing\w*|promoti\w*|promotion\w*|oferte|newsletter\w*|reclam\w*)"
_MARKETING_CHANNELS = (
    ("marketing_whatsapp", r"whats ?app"),
    ("marketing_email", r"e-?mail\w*|newsletter\w*"),
    ("marketing_sms", r"sms\w*"),
)
_CONSENT_TYPES: tuple[tuple[str, str], ...] = (
    ("data_processing",
     r"\b(?:prelucrar\w*|procesar\w*)\s+(?:a\s+|al\s+)?datelor\b|\bdata processing\b|"
     r"\bprocessing of (?:personal )?data\b|\bgdpr\b|\bdate(?:le)? personale\b|\bpersonal data\b"),
    ("appointment_reminders",
     r"\b(?:reminder\w*|reamintir\w*|reamintiri|memento\w*|amintir\w*)\b"),
    ("treatment_updates",
     r"\btreatment updates?\b|\b(?:noutati|actualizari|informari|update\w*)\s+"
     r"(?:despre|privind|legate de|ale)\s+tratament\w*\b"),
    ("third_party_sharing",
     r"\b(?:terti\w*|third[\s-]part\w*|parteneri|partners)\b|\bpartaj\w*|\bsharing\b"),
)  # fmt: skip


def find_consent_types(text: str) -> list[Found]:
    """Every consent type named in ``text``, in order, without repeats.

    "marketing" takes its channel from the nearest channel word (within a few
    words either side); without one it means all three marketing consents.
    """
    hits = _all(_CONSENT_TYPES, text) + _marketing_types(text)
    unique: list[Found] = []
    for hit in sorted(hits, key=lambda h: h.start):
        if hit.value not in {u.value for u in unique}:
            unique.append(hit)
    return unique


def _marketing_types(text: str) -> list[Found]:
    found = []
    for m in re.finditer(rf"\b{_MARKETING}", text):
        window_start, window_end = max(0, m.start() - 30), min(len(text), m.end() + 30)
        nearest = _nearest_channel(text, window_start, window_end, m.start())
        if nearest:
            found.append(Found(nearest, m.group(0), m.start(), m.end()))
        else:
            found.extend(
                Found(value, m.group(0), m.start(), m.end()) for value, _ in _MARKETING_CHANNELS
            )
    return found


def _nearest_channel(text: str, start: int, end: int, anchor: int) -> str | None:
    best: tuple[int, str] | None = None
    for value, pattern in _MARKETING_CHANNELS:
        for m in re.finditer(rf"\b(?:{pattern})\b", text[start:end]):
            distance = abs(start + m.start() - anchor)
            if best is None or distance < best[0]:
                best = (distance, value)
    return best[1] if best else None


def find_consent_status(text: str) -> Found | None:
    """granted / denied / withdrawn from words like "acord", "refuză", "retrage", "STOP"."""
    for status in ("denied", "withdrawn", "granted"):
        m = STATUS_PATTERNS[status].search(text)
        if m:
            return Found(status, m.group(0), m.start(), m.end())
    return None


_SOURCES: tuple[tuple[str, str], ...] = (
    ("whatsapp", r"\b(?:pe|prin|via|through|over|on|from|din)\s+whats ?app\b"),
    ("phone", r"\b(?:prin|la|pe|by|over|via|on the)\s+(?:telefon|phone)\b|\btelefonic\b|"
              r"\bphone call\b"),
    ("web", r"\b(?:formular\w*|web form|website|site\w*|online|web)\b"),
    ("email", r"\b(?:prin|pe|by|via|over|on)\s+e-?mail\b"),
    ("sms", r"\b(?:prin|by|via)\s+sms\b"),
    ("in_person", r"\b(?:la receptie|receptie|in clinica|la clinica|at the clinic|in person|"
                  r"in persoana|verbal\w*|semnat\w*|signed|pe hartie|on paper|front desk|"
                  r"reception|la cabinet)\b"),
)  # fmt: skip


def find_consent_source(text: str, consent_types: list[Found]) -> Found | None:
    """How consent was given; a channel that belongs to "marketing pe WhatsApp" is not it."""
    for hit in _all(_SOURCES, text):
        if any(_near(hit, t) for t in consent_types if t.value.startswith("marketing")):
            continue
        return hit
    return None


def _near(a: Found, b: Found) -> bool:
    return a.start - b.end <= 3 and b.start - a.end <= 12


# --- WhatsApp templates -----------------------------------------------------------------

TEMPLATE_NAMES = (
    "hot_lead_acknowledgment",
    "appointment_confirmation",
    "appointment_reminder_24h",
    "appointment_reminder_2h",
    "payment_confirmation",
    "recall_reminder",
    "consent_renewal",
    "treatment_follow_up",
    "consultation_offer",
    "welcome_first_contact",
)
_TEMPLATES: tuple[tuple[str, str], ...] = (
    *((name, rf"\b{name}\b") for name in TEMPLATE_NAMES),
    ("payment_confirmation",
     r"\b(?:plat\w*|payment)\b.{0,20}\bconfirm\w*|\bconfirm\w*.{0,20}\b(?:plat\w*|payment)\b"),
    ("appointment_reminder_2h",
     r"\b(?:reminder\w*|memento|reamint\w*)\b.{0,30}\b(?:2|doua)\s*(?:ore|h|hours?)\b"),
    ("consent_renewal",
     r"\b(?:reinnoi\w*|renew\w*)\b.{0,30}\b(?:acord\w*|consimt\w*|consent\w*)"),
    ("appointment_confirmation", r"\bconfirm\w*"),
    ("appointment_reminder_24h", r"\b(?:reminder\w*|memento|reamint\w*|amintire)\b"),
    ("welcome_first_contact", r"\b(?:bun venit|bine ai venit|welcome)\b"),
    ("consultation_offer", r"\b(?:oferta\w*|offer)\b"),
    ("treatment_follow_up", r"\bfollow[\s-]?up\b|\bdupa tratament\b"),
    ("recall_reminder", r"\b(?:recall|rechemare)\b"),
    ("hot_lead_acknowledgment", r"\bhot lead\b"),
)  # fmt: skip


def find_template(text: str) -> Found | None:
    """The WhatsApp template ``text`` asks for; earlier table rows win over later ones."""
    for value, pattern in _TEMPLATES:
        m = re.search(pattern, text)
        if m:
            return Found(value, m.group(0), m.start(), m.end())
    return None


# --- workflows, analytics, priorities -------------------------------------------------

_WORKFLOWS: tuple[tuple[str, str], ...] = (
    ("lead-scoring", r"\blead[\s-]?scoring\b|\bscorar\w*\s+(?:a\s+)?lead\w*"),
    ("patient-journey",
     r"\bpatient[\s-]?journey\b|\bparcurs\w*\s+(?:al\s+)?pacient\w*|\bcalatori\w*\s+pacient\w*"),
    ("nurture-sequence",
     r"\bnurtur\w*(?:[\s-]sequence)?\b|\bsecvent\w*\s+de\s+(?:follow[\s-]?up|ingrijire)"),
    ("booking-agent",
     r"\bbooking[\s-]?agent\w*|\bagent\w*\s+de\s+program\w*|\bprogramar\w*\s+automat\w*"),
)  # fmt: skip


def find_workflow_name(text: str) -> Found | None:
    """Which durable workflow ``text`` names."""
    return _first(_WORKFLOWS, text)


_GROUP_BY: tuple[tuple[str, str], ...] = (
    ("day", r"\b(?:pe zile|pe zi|zilnic\w*|daily|per day|by day|each day|zi cu zi)\b"),
    ("week", r"\b(?:pe saptamani|saptamanal\w*|weekly|per week|by week)\b"),
    ("month", r"\b(?:pe luni|lunar\w*|monthly|per month|by month|pe fiecare luna)\b"),
    ("channel", r"\b(?:pe canale|pe canal|per canal|dupa canal|by channel|per channel|canale|"
                r"channels)\b"),
    ("classification", r"\b(?:pe clasificare|dupa clasificare|pe categorii|by classification|"
                       r"per classification|by class\w*|pe temperatura)\b"),
)  # fmt: skip


def find_group_by(text: str) -> Found | None:
    """How an analytics question wants results grouped."""
    return _first(_GROUP_BY, text)


_PRIORITIES: tuple[tuple[str, str], ...] = (
    ("high", r"\bprioritate\s+(?:mare|ridicata|inalta|maxima|urgenta|high)\b|"
             r"\bhigh[\s-]priority\b|\bpriority\s*:?\s*high\b|\burgent\w*\b"),
    ("low", r"\bprioritate\s+(?:mica|scazuta|joasa|low)\b|\blow[\s-]priority\b|"
            r"\bpriority\s*:?\s*low\b"),
    ("normal", r"\bprioritate\s+(?:normala|medie|normal)\b|\bnormal[\s-]priority\b|"
               r"\bpriority\s*:?\s*normal\b"),
)  # fmt: skip


def find_priority(text: str) -> Found | None:
    """A workflow priority: low, normal or high."""
    return _first(_PRIORITIES, text)


_URGENCY: tuple[tuple[str, str], ...] = (
    ("emergency", r"\b(?:urgenta medicala|medical emergency|emergency)\b"),
    ("urgent", r"\b(?:urgent\w*|cat mai repede|asap|as soon as possible|dureri?|doare|pain)\b"),
)


def find_urgency(text: str) -> Found | None:
    """Appointment urgency: emergency beats urgent."""
    for value, pattern in _URGENCY:
        m = re.search(pattern, text)
        if m:
            return Found(value, m.group(0), m.start(), m.end())
    return None


_DURATION = re.compile(r"\b(\d{2,3})\s*(?:de\s+)?(?:minute|minutes|min|mins)\b")


def find_duration(text: str) -> Found | None:
    """An appointment length in minutes, when between 15 and 180."""
    m = _DURATION.search(text)
    if m and 15 <= int(m.group(1)) <= 180:
        return Found(m.group(1), m.group(0), m.start(), m.end())
    return None
