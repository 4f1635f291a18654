"""Value vocabularies: channels, consent types and sources, templates, workflows, groupings.

Each ``find_*`` reads folded, masked text and returns the value with the words it
came from (for evidence), or None. First mention wins unless said otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from domain.intent.cues import STATUS_PATTERNS
from domain.services import ServiceType, find_services

# Patterns compiled once and kept (the ``re`` module's own cache is bounded and shared).
_rx = lru_cache(maxsize=None)(re.compile)


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
        for m in _rx(pattern).finditer(text)
    ]
    return min(hits, key=lambda h: h.start) if hits else None


def _all(table: tuple[tuple[str, str], ...], text: str) -> list[Found]:
    hits = [
        Found(value, m.group(0), m.start(), m.end())
        for value, pattern in table
        for m in _rx(pattern).finditer(text)
    ]
    return sorted(hits, key=lambda h: h.start)


# --- lead channel -----------------------------------------------------------------------

_CHANNELS: tuple[tuple[str, str], ...] = (
    ("whatsapp", r"\bwhats ?app\b"),
    ("voice", r"\b(?:telefon\w*|apel\w*|a sunat|au sunat|sunat|phone call|called|calls?|voice|"
              r"voce|phone|phoned|rang|ring|inbound call|cold call)\b"),
    ("web", r"\b(?:web\w*|site\w*|formular\w*|online|internet|landing\w*|facebook|fb|"
            r"instagram|insta|google|tiktok|ads|social media|retele sociale|form|chat)\b"),
    ("referral", r"\b(?:recomand\w*|referral\w*|referred|recommended|trimis de|word of mouth|"
                 r"(?:de la|from|by|prin) (?:un |o |a )?(?:prieten\w*|friend|cunostint\w*|"
                 r"colleague|coleg\w*|alt pacient|another patient|ruda|relative))\b"),
)  # fmt: skip


@lru_cache(maxsize=2048)
def find_channel(text: str) -> Found | None:
    """The lead channel named in ``text``; "telefon" before a number is not a channel."""
    for hit in _all(_CHANNELS, text):
        if hit.value == "voice" and re.match(r"[\s:.]*(?:nr\.?\s*|numar\s*)?#", text[hit.end :]):
            continue  # "telefon 0721..." names the number, not the channel
        return hit
    return None


# --- consent ----------------------------------------------------------------------------

_MARKETING = (
    r"(?:marketing\w*|promo\w*|oferte\w*|newsletter\w*|reclam\w*|campani\w*|campaign\w*|"
    r"comercial\w*|commercial|publicit\w*|advertis\w*|discount\w*|reduceri\w*)"
)
_MARKETING_CHANNELS = (
    ("marketing_whatsapp", r"whats ?app"),
    ("marketing_email", r"e-?mail\w*|mail\w*|newsletter\w*"),
    ("marketing_sms", r"sms\w*|text messages?|texts?|mesaje text"),
)
# A channel followed by these words names another consent ("WhatsApp reminders").
_NOT_MARKETING = (
    r"[\s-]+(?:pentru\s+|de\s+)?(?:reminder\w*|reamintir\w*|memento\w*|notificar\w*|"
    r"updates?|noutati|confirmar\w*)"
)
_CONSENT_TYPES: tuple[tuple[str, str], ...] = (
    ("data_processing",
     r"\b(?:prelucrar\w*|procesar\w*)\s+(?:a\s+|al\s+)?(?:datelor|date|datele)\b|"
     r"\bdata (?:processing|protection)\b|\bprocessing of (?:personal )?data\b|\bgdpr\b|"
     r"\bdate(?:le)? (?:personale|medicale)\b|\bpersonal data\b|\bprivacy\b|"
     r"\bconfidentialitate\b|\b(?:acord\w*|consimt\w*|consent\w*)\s+(?:pentru|de|pt|privind|"
     r"la|for|to)\s+(?:(?:prelucrarea|procesarea|utilizarea|folosirea|use of)\s+)?"
     r"(?:date|datele|datelor|data)\b(?!\s+(?:cu|with) terti)|"
     r"\b(?:acord\w*|consimt\w*)\s+(?:de|pentru|pt|la)\s+(?:prelucrare|procesare)\b"
     r"(?!\s+(?:a\s+)?(?:datelor|date)\s+(?:cu|with)\s+terti)"),
    ("appointment_reminders",
     r"\b(?:reminder\w*|reamintir\w*|reamintiri|memento\w*|amintir\w*|"
     r"notificari (?:de|despre|pentru) programar\w*|appointment notifications?)\b"),
    ("treatment_updates",
     r"\btreatment updates?\b|\b(?:noutati|actualizari|informari|update\w*)\s+"
     r"(?:despre|privind|legate de|ale)\s+tratament\w*\b"),
    *(
        (value, rf"\b(?:acord\w*|consimt\w*|consent\w*|opt(?:ed)?[\s-]?in)\s+(?:pentru|de|pt|la|"
                rf"for|to)\s+(?:mesaje\s+|messages\s+)?(?:{channel})\b(?!{_NOT_MARKETING})|"
                rf"\b(?:{channel})\s+(?:consent\w*|opt[\s-]?in)\b")
        for value, channel in (
            ("marketing_sms", r"sms\w*"),
            ("marketing_whatsapp", r"whats ?app"),
            ("marketing_email", r"e-?mail\w*|newsletter\w*"),
        )
    ),
    ("third_party_sharing",
     r"\b(?:terti\w*|third[\s-]part\w*|parteneri|partners)\b|\bpartaj\w*|\bsharing\b"),
)  # fmt: skip


@lru_cache(maxsize=2048)
def find_consent_types(text: str) -> tuple[Found, ...]:
    """Every consent type named in ``text``, in order, without repeats.

    "marketing" takes its channel from the nearest channel word (within a few
    words either side); without one it means all three marketing consents.
    """
    hits = _all(_CONSENT_TYPES, text) + _marketing_types(text)
    unique: list[Found] = []
    for hit in sorted(hits, key=lambda h: h.start):
        if hit.value not in {u.value for u in unique}:
            unique.append(hit)
    return tuple(unique)


def _marketing_types(text: str, *, resolve: bool = True) -> list[Found]:
    """Marketing consents named in ``text``: each word takes its nearest channel; a word
    without one takes the channels other marketing words of the text name, else all three."""
    found = []
    bare = []
    for m in _rx(rf"\b{_MARKETING}").finditer(text):
        window_start, window_end = max(0, m.start() - 30), min(len(text), m.end() + 30)
        nearest = _nearest_channel(text, window_start, window_end, m.start())
        if nearest:
            found.append(Found(nearest, m.group(0), m.start(), m.end()))
        else:
            bare.append(m)
    named = [f.value for f in found] if resolve else []
    for m in bare:
        values = named or [value for value, _ in _MARKETING_CHANNELS]
        found.extend(
            Found(value, m.group(0), m.start(), m.end()) for value in dict.fromkeys(values)
        )
    return sorted(found, key=lambda f: f.start)


@lru_cache(maxsize=2048)
def find_marketing_channels(text: str) -> tuple[str, ...]:
    """The marketing consents ``text`` ties to a channel ("oferte pe WhatsApp"), in order."""
    hits = _marketing_types(text, resolve=False)
    found: list[str] = []
    for hit in hits:
        if sum(h.start == hit.start for h in hits) == 1 and hit.value not in found:
            found.append(hit.value)
    return tuple(found)


def _nearest_channel(text: str, start: int, end: int, anchor: int) -> str | None:
    best: tuple[int, str] | None = None
    for value, pattern in _MARKETING_CHANNELS:
        for m in _rx(rf"\b(?:{pattern})\b").finditer(text[start:end]):
            distance = abs(start + m.start() - anchor)
            if best is None or distance < best[0]:
                best = (distance, value)
    return best[1] if best else None


@lru_cache(maxsize=2048)
def find_consent_status(text: str) -> Found | None:
    """granted / denied / withdrawn from words like "acord", "refuză", "retrage", "STOP"."""
    for status in ("denied", "withdrawn", "granted"):
        m = STATUS_PATTERNS[status].search(text)
        if m:
            return Found(status, m.group(0), m.start(), m.end())
    return None


# The canonical sources of record_consent: whatsapp, web_form, phone_call, in_person
# (and email, sms when consent came that way).
_SOURCES: tuple[tuple[str, str], ...] = (
    ("whatsapp", r"\b(?:pe|prin|via|through|over|on|from|din|in|intr-un|intr-o|by)\s+"
                 r"(?:(?:un|o|a|the)\s+)?(?:mesaj\w*\s+(?:de\s+|pe\s+)?|message\s+(?:on\s+)?)?"
                 r"whats ?app\b|\bwhats ?app\s+(?:reply|message|mesaj\w*|raspuns\w*|chat)\b|"
                 r"\b(?:raspuns\w*|replied|reply|answered|a scris|wrote|a trimis|sent)\b"
                 r"[^.;]{0,20}\bwhats ?app\b"),
    ("phone_call",
     r"\b(?:prin|la|pe|by|over|via|on|on the|over the|in|intr-un|during|at)\s+"
     r"(?:(?:a|the|un|o)\s+)?(?:telefon\w*|phone\w*|apel\w*|call)\b|"
     r"\btelefonic\w*\b|\bphone call\b|\b(?:a sunat|au sunat|called|phoned|rang|"
     r"ne-a sunat|when (?:she|he|they) called|cand a sunat)\b|\bverbal la telefon\b"),
    ("web_form", r"\b(?:formular\w*|web form|webform|website|site\w*|online|web|"
                 r"internet|portal\w*|checkbox|pe net)\b"),
    ("email", r"\b(?:prin|pe|by|via|over|on|per|in|intr-un|from|din)\s+(?:(?:an|un|a)\s+)?"
              r"(?:e-?mail|mail)\b|"
              r"\b(?:replied|answered|raspuns\w*) (?:by|to|la|pe) (?:e-?mail|mail)\b"),
    ("sms", r"\b(?:prin|by|via|pe|per|in|intr-un|from|din)\s+(?:(?:an|un|a)\s+)?"
            r"(?:sms|text message|mesaj text)\b"),
    ("in_person", r"\b(?:la receptie|receptie|in clinica|la clinica|at the clinic|in the clinic|"
                  r"in person|in persoana|verbal\w*|semnat\w*|signed|pe hartie|on paper|"
                  r"front desk|(?:at the )?desk|reception|la cabinet|in cabinet|at the office|"
                  r"la ghiseu|fata in fata|face to face|face-to-face|la sediu|at the practice|"
                  r"in the chair|during (?:the|her|his) (?:visit|appointment)|"
                  r"la vizita|cand a venit|when (?:she|he|they) came in)\b"),
)  # fmt: skip


_NAMES_A_NUMBER = re.compile(r"[\s:.]*(?:nr\.?\s*|numar\w*\s*|number\s*)?#")


def find_consent_source(text: str, consent_types: tuple[Found, ...] | list[Found]) -> Found | None:
    """How consent was given; a channel that belongs to "marketing pe WhatsApp" is not it."""
    for hit in _all(_SOURCES, text):
        if any(_near(hit, t) for t in consent_types if t.value.startswith("marketing")):
            continue
        if hit.value == "phone_call" and _NAMES_A_NUMBER.match(text, hit.end):
            continue  # "la telefonul 0721..." names the number, not how consent was given
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
    *((name, r"\b" + name.replace("_", r"[\s_-]?") + r"\b") for name in TEMPLATE_NAMES),
    ("payment_confirmation",
     r"\b(?:plat\w*|payment)\b.{0,20}\bconfirm\w*|\bconfirm\w*.{0,20}\b(?:plat\w*|payment)\b|"
     r"\b(?:chitant\w*|receipt|factur\w*|invoice)\b"),
    ("appointment_reminder_2h",
     r"\b(?:reminder\w*|memento|reamint\w*|aminti\w*|remind\w*)\b.{0,30}\b(?:2|doua|two)\s*"
     r"(?:ore|h|hours?)\b|\b(?:2|doua|two)[\s-]*(?:ore|h|hours?)\b.{0,15}"
     r"\b(?:reminder\w*|memento|reamint\w*|remind\w*)"),
    ("consent_renewal",
     r"\b(?:reinnoi\w*|renew\w*)\b.{0,30}\b(?:acord\w*|consimt\w*|consent\w*)|"
     r"\b(?:acord\w*|consimt\w*|consent\w*)\b.{0,15}\b(?:reinnoi\w*|renew\w*)"),
    ("appointment_confirmation", r"\bconfirm\w*"),
    ("recall_reminder", r"\b(?:recall\w*|rechemare|control periodic|revenire la control)\b"),
    ("appointment_reminder_24h",
     r"\b(?:reminder\w*|memento|reamint\w*|amintire|remind\w*|aminteste-i)\b"),
    ("welcome_first_contact",
     r"\b(?:bun venit|bine ai venit|welcome|primul contact|first contact)\b"),
    ("consultation_offer", r"\b(?:oferta\w*|offer|discount|reducere)\b"),
    ("treatment_follow_up",
     r"\bfollow[\s-]?up\b|\bdupa (?:tratament|interventie|operatie|extractie|implant)\b|"
     r"\b(?:aftercare|post[\s-]?op\w*|check[\s-]?in)\b"),
    ("hot_lead_acknowledgment", r"\bhot lead\b|\backnowledg\w*|\bconfirmare de primire\b"),
)  # fmt: skip


@lru_cache(maxsize=2048)
def find_template(text: str) -> Found | None:
    """The WhatsApp template ``text`` asks for; earlier table rows win over later ones."""
    for value, pattern in _TEMPLATES:
        m = _rx(pattern).search(text)
        if m:
            return Found(value, m.group(0), m.start(), m.end())
    return None


# --- workflows, analytics, priorities -------------------------------------------------

_WORKFLOWS: tuple[tuple[str, str], ...] = (
    ("lead-scoring", r"\blead[\s-]?scoring\b|\bscorar\w*\s+(?:a\s+)?lead\w*"),
    ("patient-journey",
     r"\bpatient[\s-]?journey\b|\bparcurs\w*\s+(?:al\s+)?pacient\w*|\bcalatori\w*\s+pacient\w*"),
    ("nurture-sequence",
     r"\bnurtur\w*(?:[\s-]sequence)?\b|\bsecvent\w*\s+de\s+(?:follow[\s-]?up|ingrijire)|"
     r"\bfollow[\s-]?up (?:sequence|secvent\w*|flow|workflow|automation|campaign)|\bdrip\b|"
     r"\b(?:flux\w*|automatizar\w*|campani\w*|workflow\w*|campaign) (?:de )?follow[\s-]?up\b"),
    ("booking-agent",
     r"\bbooking[\s-]?(?:agent|bot)\w*|\bagent\w*\s+de\s+program\w*|"
     r"\bprogramar\w*\s+automat\w*|\b(?:auto|automatic)[\s-]?booking\b"),
)  # fmt: skip


@lru_cache(maxsize=2048)
def find_workflow_name(text: str) -> Found | None:
    """Which durable workflow ``text`` names."""
    return _first(_WORKFLOWS, text)


_GROUP_BY: tuple[tuple[str, str], ...] = (
    ("day", r"\b(?:pe zile|pe zi|zilnic\w*|daily|per day|by day|each day|zi cu zi|day by day|"
            r"pe fiecare zi|per zi|for each day)\b"),
    ("week", r"\b(?:pe saptamani|saptamanal\w*|weekly|per week|by week|week by week|"
             r"pe fiecare saptamana|per saptamana|for each week)\b"),
    ("month", r"\b(?:pe luni|lunar\w*|monthly|per month|by month|pe fiecare luna|"
              r"month by month|per luna|for each month)\b"),
    ("channel", r"\b(?:pe canale|pe canal|per canal|dupa canal|by channel|per channel|canale|"
                r"channels|pe surse|pe sursa|dupa sursa|by source|per source|sources|surse)\b"),
    ("classification", r"\b(?:pe clasificare|dupa clasificare|pe categorii|by classification|"
                       r"per classification|by class\w*|pe temperatura|by score|pe scor|"
                       r"dupa scor|by category|per category|hot\W+warm|hot vs|warm\W+cold|"
                       r"pe tipuri|by type)\b"),
)  # fmt: skip


@lru_cache(maxsize=2048)
def find_group_by(text: str) -> Found | None:
    """How an analytics question wants results grouped."""
    return _first(_GROUP_BY, text)


_PRIORITIES: tuple[tuple[str, str], ...] = (
    ("high", r"\bprioritate\s+(?:mare|ridicata|inalta|maxima|urgenta|high)\b|"
             r"\bhigh[\s-]priority\b|\bpriority\s*:?\s*high\b|\burgent\w*\b|\basap\b|"
             r"\bprioritar\w*\b|\btop priority\b|\bcat mai repede\b"),
    ("low", r"\bprioritate\s+(?:mica|scazuta|joasa|low)\b|\blow[\s-]priority\b|"
            r"\bpriority\s*:?\s*low\b|\b(?:nu e|nu este|not|no) (?:urgent|rush)\b|"
            r"\bfara graba\b|\bno rush\b"),
    ("normal", r"\bprioritate\s+(?:normala|medie|normal)\b|\bnormal[\s-]priority\b|"
               r"\bpriority\s*:?\s*normal\b"),
)  # fmt: skip


@lru_cache(maxsize=2048)
def find_priority(text: str) -> Found | None:
    """A workflow priority: low, normal or high."""
    return _first(_PRIORITIES, text)


_URGENCY: tuple[tuple[str, str], ...] = (
    ("emergency", r"\b(?:urgenta medicala|medical emergency|emergency)\b"),
    (
        "urgent",
        r"\b(?:urgent\w*|cat mai repede|asap|as soon as possible|dureri?|doare|pain\w*|"
        r"umfl\w*|swollen|abces\w*|abscess|toothache)\b",
    ),
)


@lru_cache(maxsize=2048)
def find_urgency(text: str) -> Found | None:
    """Appointment urgency: emergency beats urgent."""
    for value, pattern in _URGENCY:
        m = _rx(pattern).search(text)
        if m:
            return Found(value, m.group(0), m.start(), m.end())
    return None


_DURATION = re.compile(r"\b(\d{2,3})[\s-]*(?:de\s+)?(?:minute|minutes|min|mins)\b")
_HOURS: tuple[tuple[int, str], ...] = (
    (
        90,
        r"\b(?:o ora si jumatate|an hour and a half|one and a half hours?|"
        r"1[.,]5\s*(?:h|ore|hours?))\b",
    ),
    (30, r"\b(?:jumatate de ora|half an hour|half-hour|half hour)\b"),
    (
        60,
        r"\b(?:de|for|pentru|of|lasting|durata de)\s+"
        r"(?:o ora|an hour|one hour|1\s*(?:h|ora|hour))\b",
    ),
    (
        120,
        r"\b(?:de|for|pentru|of|lasting|durata de)\s+"
        r"(?:doua ore|two hours|2\s*(?:h|ore|hours))\b",
    ),
)


@lru_cache(maxsize=2048)
def find_duration(text: str) -> Found | None:
    """An appointment length in minutes, when between 15 and 180 ("45 de minute", "o oră")."""
    m = _DURATION.search(text)
    if m and 15 <= int(m.group(1)) <= 180:
        return Found(m.group(1), m.group(0), m.start(), m.end())
    for minutes, pattern in _HOURS:
        hour = _rx(pattern).search(text)
        if hour:
            return Found(str(minutes), hour.group(0), hour.start(), hour.end())
    return None


# Names ``domain.services`` does not know, tried when it finds nothing.
_MORE_SERVICES: tuple[tuple[ServiceType, str], ...] = (
    (ServiceType.FILLING, r"\bcavit\w*|\bcarii\b"),
    (ServiceType.CLEANING, r"\b(?:descaling|scale and polish|polish\w*|airflow|periaj profesional|"
                           r"igiena (?:dentara|orala)|dental hygiene)\b"),
    (ServiceType.EXTRACTION, r"\b(?:wisdom (?:tooth|teeth)|mase\w* de minte|dinte\w* de minte|"
                             r"tooth out|teeth out|scoaterea? (?:unui |unei )?(?:dinte|masele))\b"),
    (ServiceType.CROWN, r"\b(?:bridge|punte\w*|zirconi\w*)\b"),
    (ServiceType.CHECKUP, r"\b(?:exam|examination|examinare\w*|revizi\w*|routine check|"
                          r"verificare de rutina)\b"),
    (ServiceType.CONSULTATION, r"\b(?:evaluare initiala|prima evaluare|initial assessment|"
                               r"first visit|prima vizita|consultanta)\b"),
    (ServiceType.ROOT_CANAL, r"\b(?:scos nervul|scoate nervul|nerve removal|pulpit\w*)\b"),
    (ServiceType.ORTHODONTICS, r"\b(?:aligners?|aparat\w*)\b"),
)  # fmt: skip


@dataclass(frozen=True)
class ServiceFound:
    """A service named in text."""

    service: ServiceType
    text: str
    start: int


@lru_cache(maxsize=2048)
def find_service(text: str) -> ServiceFound | None:
    """The first dental service named in ``text``: ``domain.services`` and a few more names."""
    found = find_services(text)
    if found:
        first = found[0]
        # "an implant consult": in a compound the last word names the visit.
        consult = _rx(r"\s+consult\w*").match(text, first.end)
        if consult and first.service is not ServiceType.CONSULTATION:
            return ServiceFound(
                ServiceType.CONSULTATION, text[first.start : consult.end()], first.start
            )
        return ServiceFound(first.service, first.text, first.start)
    hits = [
        ServiceFound(service, m.group(0), m.start())
        for service, pattern in _MORE_SERVICES
        for m in [_rx(pattern).search(text)]
        if m
    ]
    return min(hits, key=lambda h: h.start) if hits else None


# --- message language, lead temperature -----------------------------------------------

_IN = r"(?:in|into|pe|auf|im|with|cu)\s+(?:(?:limba|the|language)\s+)?"
_LANGUAGES: tuple[tuple[str, str], ...] = (
    ("en", rf"\b{_IN}(?:engleza|english|engl|en)\b|\b(?:englezeste|english version|"
           r"english template|versiunea (?:in )?engleza|(?:speaks|vorbeste)\s+(?:doar\s+|only\s+)?"
           r"(?:engleza|english))\b|\b(?:language|limba)\s*[:=]?\s*(?:en|english|engleza)\b"),
    ("de", rf"\b{_IN}(?:germana|german|deutsch|germ)\b|\b(?:auf deutsch|nemteste|germaneste|"
           r"german version|german template|versiunea (?:in )?germana|(?:speaks|vorbeste)\s+"
           r"(?:doar\s+|only\s+)?(?:germana|german|deutsch))\b|"
           r"\b(?:language|limba|sprache)\s*[:=]?\s*(?:de|german|germana|deutsch)\b"),
    ("ro", rf"\b{_IN}(?:romana|romanian|romaneste|ro)\b|\b(?:romaneste|romanian version|"
           r"romanian template|versiunea (?:in )?romana|(?:speaks|vorbeste)\s+(?:doar\s+|only\s+)?"
           r"(?:romana|romanian))\b|\b(?:language|limba)\s*[:=]?\s*(?:ro|romanian|romana)\b"),
)  # fmt: skip


# A language named alone ("..., English please") when no phrase above says it.
_LANGUAGE_NAMES: tuple[tuple[str, str], ...] = (
    ("en", r"\b(?:english|engleza)\b"),
    ("de", r"\b(?:german|germana|deutsch)\b"),
    ("ro", r"\b(?:romanian|romana)\b"),
)


@lru_cache(maxsize=2048)
def find_language(text: str) -> Found | None:
    """The language a message should go out in, when the text says it ("în engleză",
    "in English", "auf Deutsch"); None when it does not (never guessed)."""
    return _first(_LANGUAGES, text) or _first(_LANGUAGE_NAMES, text)


_LEAD_CLASSES: tuple[tuple[str, str], ...] = (
    ("WARM", r"\b(?:cald\w*|calzi|warm\w*|caldicel\w*)\b"),
    ("COLD", r"\b(?:rece|reci|cold\w*|racit\w*|inghetat\w*|frozen)\b"),
)


# A lead score says the classification too: 3 is WARM, 2 is COLD.
_SCORE_CLASS = re.compile(
    r"\b(?:scor\w*|score[ds]?|punctaj\w*|rated)\s*(?:de\s+|of\s+|:\s*|=\s*|is\s+|e\s+)?"
    r"([1-5])(?:\s*/\s*5)?\b(?![.,]\d)"
)


@lru_cache(maxsize=2048)
def find_lead_class(text: str) -> Found | None:
    """A nurture sequence's lead classification: WARM ("cald", "călduț", score 3) or COLD
    ("rece", score 2)."""
    found = _first(_LEAD_CLASSES, text)
    if found:
        return found
    m = _SCORE_CLASS.search(text)
    if m and m.group(1) in "23":
        return Found("WARM" if m.group(1) == "3" else "COLD", m.group(0), m.start(), m.end())
    return None
