"""WhatsApp messaging rules: the template catalogue, consent gating and reply parsing.

Pure data and functions. The catalogue says, for each approved template, its
languages, its ordered body parameters, its category, the consent it needs, how
long to wait before sending it again to the same person, and whether it is part of
a booking or payment the person made (``essential``: the per-person daily limit
never refuses it, see ``daily_limit_applies``). Parameters travel to the
provider as an ordered list of strings (``{{1}}``, ``{{2}}`` ... in the approved
template); here they have names so callers and errors can speak about them.

Webhook payloads are parsed by the adapter into the two models at the bottom
(``InboundMessage``, ``StatusUpdate``), so the application never sees the
provider's wire shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.consent_policy import required_consent_for
from domain.errors import InvalidArguments
from domain.events import ConsentType
from domain.text import fold, words

Language = Literal["ro", "en", "de"]
LANGUAGES: tuple[Language, ...] = ("ro", "en", "de")
TemplateCategory = Literal["marketing", "utility", "reminder"]
"""``utility`` is the transactional category (Meta's name for it)."""
ParamKind = Literal["text", "date", "time", "amount", "currency"]
ConsentReply = Literal["granted", "withdrawn"]

FREE_TEXT_CONSENT: ConsentType = "data_processing"
"""Free text is only possible inside a conversation the person opened, about their care."""

MAX_PARAM_LENGTH = 1024
_DATE = re.compile(r"^(\d{2})\.(\d{2})\.(\d{4})$")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_CURRENCIES = ("RON", "EUR", "lei")


class TemplateDefinition(BaseModel):
    """One approved WhatsApp template, in every language the clinic uses."""

    model_config = ConfigDict(frozen=True)

    name: str
    category: TemplateCategory
    required_consent: ConsentType
    params: tuple[str, ...]
    """Body parameter names, in the order of the template's ``{{1}}``, ``{{2}}`` ..."""
    param_kinds: Mapping[str, ParamKind]
    bodies: Mapping[str, str]
    """Preview text per language, with ``{name}`` placeholders for the parameters."""
    cooldown: timedelta = timedelta(0)
    """Minimum time between two sends of this template to the same person."""
    essential: bool = False
    """Part of a booking or payment the person made (confirmation, reminders, receipt):
    it counts towards the per-person daily limit but is never refused by it."""


def _template(
    name: str,
    category: TemplateCategory,
    params: dict[str, ParamKind],
    bodies: dict[str, str],
    *,
    consent: ConsentType | None = None,
    cooldown: timedelta = timedelta(0),
    essential: bool = False,
) -> TemplateDefinition:
    return TemplateDefinition(
        name=name,
        category=category,
        required_consent=consent or _consent_for_category(category),
        params=tuple(params),
        param_kinds=params,
        bodies=bodies,
        cooldown=cooldown,
        essential=essential,
    )


def _consent_for_category(category: TemplateCategory) -> ConsentType:
    if category == "marketing":
        return required_consent_for("marketing_message", "whatsapp")
    if category == "reminder":
        return required_consent_for("reminder")
    return "data_processing"


MARKETING_COOLDOWN = timedelta(days=7)
NURTURE_COOLDOWN = timedelta(days=1)
"""consultation_offer is the nurture sequences' touch: their closest touches are 48 h
apart (warm: 24/72/168 h; cold: 48/168/336 h), so a day keeps a second sender from
repeating it the same day without silencing the clinic's own cadence."""

_CATALOGUE: tuple[TemplateDefinition, ...] = (
    _template(
        "hot_lead_acknowledgment",
        "marketing",
        {"name": "text", "procedure": "text"},
        {
            "ro": "Bună, {name}! Mulțumim pentru interesul pentru {procedure}. "
            "Un coordonator vă contactează în cel mult 30 de minute.",
            "en": "Hello {name}! Thank you for your interest in {procedure}. "
            "A coordinator will contact you within 30 minutes.",
            "de": "Hallo {name}! Danke für Ihr Interesse an {procedure}. "
            "Eine Koordinatorin meldet sich innerhalb von 30 Minuten bei Ihnen.",
        },
        cooldown=MARKETING_COOLDOWN,
    ),
    _template(
        "appointment_confirmation",
        "utility",
        {"name": "text", "date": "date", "time": "time", "location": "text"},
        {
            "ro": "Bună, {name}! Programarea dumneavoastră este confirmată pentru "
            "{date}, ora {time}, la {location}.",
            "en": "Hello {name}! Your appointment is confirmed for {date} at {time}, "
            "at {location}.",
            "de": "Hallo {name}! Ihr Termin ist bestätigt: {date} um {time} Uhr, {location}.",
        },
        essential=True,
    ),
    _template(
        "appointment_reminder_24h",
        "reminder",
        {"name": "text", "time": "time", "location": "text"},
        {
            "ro": "Bună, {name}! Vă reamintim de programarea de mâine, ora {time}, "
            "la {location}. Răspundeți NU dacă nu puteți ajunge.",
            "en": "Hello {name}! A reminder of your appointment tomorrow at {time}, "
            "at {location}. Reply NO if you cannot come.",
            "de": "Hallo {name}! Erinnerung an Ihren Termin morgen um {time} Uhr, "
            "{location}. Antworten Sie NEIN, wenn Sie nicht kommen können.",
        },
        essential=True,
    ),
    _template(
        "appointment_reminder_2h",
        "reminder",
        {"name": "text", "time": "time", "location": "text"},
        {
            "ro": "{name}, vă așteptăm astăzi la ora {time}, la {location}.",
            "en": "{name}, we look forward to seeing you today at {time}, at {location}.",
            "de": "{name}, wir erwarten Sie heute um {time} Uhr, {location}.",
        },
        essential=True,
    ),
    _template(
        "payment_confirmation",
        "utility",
        {"name": "text", "amount": "amount", "currency": "currency", "date": "date"},
        {
            "ro": "Mulțumim, {name}! Am primit plata de {amount} {currency} din {date}.",
            "en": "Thank you, {name}! We received your payment of {amount} {currency} on {date}.",
            "de": "Danke, {name}! Wir haben Ihre Zahlung über {amount} {currency} "
            "vom {date} erhalten.",
        },
        essential=True,
    ),
    _template(
        "recall_reminder",
        "reminder",
        {"name": "text", "date": "date"},
        {
            "ro": "Bună, {name}! Ultima vizită a fost pe {date}. Este timpul pentru "
            "controlul periodic; răspundeți DA pentru o programare.",
            "en": "Hello {name}! Your last visit was on {date}. It is time for your "
            "check-up; reply YES to book an appointment.",
            "de": "Hallo {name}! Ihr letzter Besuch war am {date}. Zeit für die "
            "Kontrolle; antworten Sie JA für einen Termin.",
        },
        # A recall repeats the same request; once a month is the most a person should see it.
        cooldown=timedelta(days=30),
    ),
    _template(
        "consent_renewal",
        "utility",
        {"name": "text", "date": "date"},
        {
            "ro": "Bună, {name}! Acordul dumneavoastră expiră pe {date}. Răspundeți "
            "DA pentru a-l reînnoi sau NU pentru a-l retrage.",
            "en": "Hello {name}! Your consent expires on {date}. Reply YES to renew it "
            "or NO to withdraw it.",
            "de": "Hallo {name}! Ihre Einwilligung läuft am {date} ab. Antworten Sie JA "
            "zum Verlängern oder NEIN zum Widerrufen.",
        },
        cooldown=timedelta(days=30),
    ),
    _template(
        "treatment_follow_up",
        "utility",
        {"name": "text", "procedure": "text"},
        {
            "ro": "Bună, {name}! Cum vă simțiți după {procedure}? Scrieți-ne dacă aveți întrebări.",
            "en": "Hello {name}! How are you feeling after your {procedure}? Write to "
            "us if you have any questions.",
            "de": "Hallo {name}! Wie geht es Ihnen nach {procedure}? Schreiben Sie uns bei Fragen.",
        },
        consent="treatment_updates",
        cooldown=timedelta(days=1),
    ),
    _template(
        "consultation_offer",
        "marketing",
        {"name": "text", "offer": "text", "date": "date"},
        {
            "ro": "Bună, {name}! {offer} Oferta este valabilă până pe {date}. "
            "Răspundeți DA pentru o programare.",
            "en": "Hello {name}! {offer} The offer is valid until {date}. Reply YES to "
            "book a consultation.",
            "de": "Hallo {name}! {offer} Das Angebot gilt bis zum {date}. Antworten Sie "
            "JA für einen Termin.",
        },
        cooldown=NURTURE_COOLDOWN,
    ),
    _template(
        "welcome_first_contact",
        "marketing",
        {"name": "text", "clinic": "text"},
        {
            "ro": "Bună, {name}! Bine ați venit la {clinic}. Cu ce vă putem ajuta?",
            "en": "Hello {name}! Welcome to {clinic}. How can we help you?",
            "de": "Hallo {name}! Willkommen bei {clinic}. Wie können wir Ihnen helfen?",
        },
        cooldown=MARKETING_COOLDOWN,
    ),
)

TEMPLATES: Mapping[str, TemplateDefinition] = {t.name: t for t in _CATALOGUE}
"""The catalogue by template name."""


def get_template(name: str, *, path: str = "templateName") -> TemplateDefinition:
    """The template called ``name``; ``InvalidArguments`` naming the known ones otherwise."""
    template = TEMPLATES.get(name)
    if template is None:
        raise _invalid([_error(path, f"unknown template {name!r}", f"one of {sorted(TEMPLATES)}")])
    return template


def required_consent(template_name: str | None) -> ConsentType:
    """The consent a message needs: the template's, or ``data_processing`` for free text."""
    if template_name is None:
        return FREE_TEXT_CONSENT
    return get_template(template_name).required_consent


def cooldown_for(template_name: str) -> timedelta:
    """How long to wait before sending ``template_name`` again to the same person."""
    return get_template(template_name).cooldown


def daily_limit_applies(template_name: str | None) -> bool:
    """Whether the per-person daily message limit may refuse this message.

    Free text and every template but the ``essential`` ones may be refused. A booking
    confirmation, an appointment reminder or a payment receipt is what the person's
    own booking or payment calls for: it still counts towards the limit, but a day of
    other messages never keeps it from the person. (Cooldowns are per template, so a
    marketing template's cooldown never holds back another template either.)
    """
    return template_name is None or not get_template(template_name).essential


def validate_params(
    template_name: str,
    params: Mapping[str, Any] | Sequence[Any] | None,
    language: str = "ro",
    *,
    path: str = "templateParams",
) -> list[str]:
    """Check ``params`` for the template and return them as the provider's ordered list.

    ``params`` is either a mapping by parameter name or a list in template order.
    Every problem is reported at once: ``InvalidArguments`` with
    ``details.errors = [{path, message, expected}]`` (paths such as
    ``templateParams.date`` or ``templateParams[1]``).
    """
    template = get_template(template_name)
    errors = _language_errors(language)
    values, shape_errors = _values_by_name(template, params, path)
    errors += shape_errors
    for name, value in values.items():
        message = _param_problem(template.param_kinds[name], value)
        if message:
            errors.append(_error(_param_path(path, template, name, params), message, _EXPECT[name]))
    if errors:
        raise _invalid(errors)
    return [values[name] for name in template.params]


def render(template_name: str, params: Mapping[str, Any] | Sequence[Any], language: str) -> str:
    """The text the person will read: the template body with its parameters filled in."""
    template = get_template(template_name)
    ordered = validate_params(template_name, params, language)
    values = dict(zip(template.params, ordered, strict=True))
    return template.bodies[language].format_map(values)


def _language_errors(language: str) -> list[dict[str, Any]]:
    if language in LANGUAGES:
        return []
    return [_error("language", f"unsupported language {language!r}", f"one of {list(LANGUAGES)}")]


def _values_by_name(
    template: TemplateDefinition, params: Mapping[str, Any] | Sequence[Any] | None, path: str
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Pair the given parameters with the template's names; report missing and extra ones."""
    given: dict[str, Any]
    errors: list[dict[str, Any]] = []
    if params is None:
        given = {}
    elif isinstance(params, Mapping):
        given = dict(params)
        for extra in sorted(set(given) - set(template.params)):
            errors.append(_error(f"{path}.{extra}", "unexpected parameter", _names(template)))
    elif isinstance(params, Sequence) and not isinstance(params, str | bytes):
        given = dict(zip(template.params, params, strict=False))
        for index in range(len(template.params), len(params)):
            errors.append(_error(f"{path}[{index}]", "unexpected parameter", _names(template)))
    else:
        return {}, [_error(path, "must be an object or a list", _names(template))]
    values: dict[str, str] = {}
    for name in template.params:
        if name not in given or given[name] is None:
            where = _param_path(path, template, name, params)
            errors.append(_error(where, f"missing parameter {name!r}", _EXPECT[name]))
        elif isinstance(given[name], bool) or not isinstance(given[name], str | int | float):
            where = _param_path(path, template, name, params)
            errors.append(_error(where, "must be a string", _EXPECT[name]))
        else:
            values[name] = str(given[name]).strip()
    return values, errors


def _param_problem(kind: ParamKind, value: str) -> str | None:
    """Why ``value`` cannot fill a parameter of ``kind``; ``None`` when it can."""
    if not value:
        return "must not be empty"
    if len(value) > MAX_PARAM_LENGTH:
        return f"longer than {MAX_PARAM_LENGTH} characters"
    # WhatsApp rejects these in body parameters (error 132018).
    if "\n" in value or "\t" in value or "     " in value:
        return "must not contain new lines, tabs or more than four consecutive spaces"
    return _KIND_CHECKS[kind](value)


def _check_text(value: str) -> str | None:
    return None


def _check_date(value: str) -> str | None:
    match = _DATE.match(value)
    if not match:
        return "not a date in DD.MM.YYYY form"
    day, month, year = (int(part) for part in match.groups())
    try:
        date(year, month, day)
    except ValueError:
        return f"{value} is not a calendar date"
    return None


def _check_time(value: str) -> str | None:
    return None if _TIME.match(value) else "not a time in HH:mm form (00:00-23:59)"


def _check_amount(value: str) -> str | None:
    try:
        amount = Decimal(value.replace(",", "."))
    except InvalidOperation:
        return "not a number"
    exponent = amount.as_tuple().exponent
    if not isinstance(exponent, int) or amount <= 0:
        return "must be a positive amount"
    return None if exponent >= -2 else "at most two decimals"


def _check_currency(value: str) -> str | None:
    return None if value in _CURRENCIES else f"one of {list(_CURRENCIES)}"


_KIND_CHECKS = {
    "text": _check_text,
    "date": _check_date,
    "time": _check_time,
    "amount": _check_amount,
    "currency": _check_currency,
}

_EXPECT_BY_KIND: dict[ParamKind, str] = {
    "text": "a single-line text",
    "date": "a date DD.MM.YYYY, e.g. 05.03.2025",
    "time": "a time HH:mm, e.g. 14:30",
    "amount": "a positive amount, e.g. 1500 or 1500.50",
    "currency": f"one of {list(_CURRENCIES)}",
}


class _ExpectByName(dict[str, str]):
    """``expected`` text per parameter name, derived from the catalogue's kinds."""

    def __missing__(self, key: str) -> str:
        return "a single-line text"


_EXPECT = _ExpectByName(
    {n: _EXPECT_BY_KIND[k] for t in _CATALOGUE for n, k in t.param_kinds.items()}
)


def _param_path(path: str, template: TemplateDefinition, name: str, params: object) -> str:
    if isinstance(params, Sequence) and not isinstance(params, str | bytes):
        return f"{path}[{template.params.index(name)}]"
    return f"{path}.{name}"


def _names(template: TemplateDefinition) -> str:
    return f"parameters {list(template.params)} in this order"


def _error(path: str, message: str, expected: str) -> dict[str, Any]:
    return {"path": path, "message": message, "expected": expected}


def _invalid(errors: list[dict[str, Any]]) -> InvalidArguments:
    summary = "; ".join(f"{e['path']}: {e['message']}" for e in errors)
    return InvalidArguments(f"invalid WhatsApp message: {summary}", errors=errors)


# --- Consent replies ------------------------------------------------------------------

_GRANT_PHRASES = (
    "da",
    "yes",
    "accept",
    "accepta",
    "sunt de acord",
    "de acord",
    "i agree",
    "agree",
    "ja",
    "einverstanden",
)
_WITHDRAW_PHRASES = (
    "nu sunt de acord",
    "nu accept",
    "nu",
    "no",
    "refuz",
    "stop",
    "nein",
    "stopp",
    "dezabonare",
    "unsubscribe",
)
_PHRASE_TABLE: tuple[tuple[tuple[str, ...], ConsentReply], ...] = (
    (_WITHDRAW_PHRASES, "withdrawn"),
    (_GRANT_PHRASES, "granted"),
)
_FILLER = frozenset(
    [
        "ok",
        "okay",
        "multumesc",
        "mersi",
        "va",
        "te",
        "rog",
        "please",
        "thanks",
        "thank",
        "you",
        "i",
        "eu",
        "ich",
        "danke",
        "bitte",
    ]
)


def parse_consent_reply(text: str) -> ConsentReply | None:
    """Read a WhatsApp reply to a consent request as ``granted``, ``withdrawn`` or neither.

    DA / YES / accept / "sunt de acord" (and German JA) grant; NU / NO / refuz / STOP
    (and NEIN) withdraw; case, diacritics and punctuation do not matter. The reply
    must consist only of such phrases and politeness words ("Da, mulțumesc!"), so
    an ordinary message ("Nu pot veni mâine") is never taken for a decision. A reply
    holding both answers is ambiguous and returns ``None``.
    """
    tokens = words(fold(text))
    found: set[ConsentReply] = set()
    i = 0
    while i < len(tokens):
        matched = _match_phrase(tokens, i)
        if matched is None:
            if tokens[i] not in _FILLER:
                return None
            i += 1
            continue
        decision, length = matched
        found.add(decision)
        i += length
    return found.pop() if len(found) == 1 else None


def _match_phrase(tokens: list[str], start: int) -> tuple[ConsentReply, int] | None:
    """The longest consent phrase beginning at ``tokens[start]``, withdrawals first."""
    candidates: list[tuple[int, ConsentReply]] = []
    for phrases, decision in _PHRASE_TABLE:
        for phrase in phrases:
            parts = phrase.split()
            if tokens[start : start + len(parts)] == parts:
                candidates.append((len(parts), decision))
    if not candidates:
        return None
    # Longest wins, so "nu sunt de acord" is a withdrawal, not "nu" + "sunt de acord".
    length, decision = max(candidates, key=lambda c: c[0])
    return decision, length


# --- Webhook models ---------------------------------------------------------------------

DeliveryStatus = Literal["sent", "delivered", "read", "failed"]


class ProviderError(BaseModel):
    """An error the provider reported for a message (code, title, details)."""

    model_config = ConfigDict(frozen=True)

    code: int | str | None = None
    title: str = ""
    details: str = ""


class InboundMessage(BaseModel):
    """A message a person sent to the clinic's WhatsApp number."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["message"] = "message"
    provider_message_id: str
    from_phone: str
    """E.164 with the leading ``+``."""
    timestamp: datetime
    type: str
    """``text``, ``button``, ``interactive`` or another WhatsApp type (image, audio ...)."""
    text: str | None = None
    """The text, the button's label or the chosen reply's title; ``None`` for media."""
    reply_id: str | None = None
    """Button payload or interactive reply id, when the person tapped one."""
    context_message_id: str | None = None
    """The provider id of the clinic message this one answers, if any."""
    contact_name: str | None = None


class StatusUpdate(BaseModel):
    """A delivery status the provider reported for a message the clinic sent."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["status"] = "status"
    provider_message_id: str
    status: DeliveryStatus
    timestamp: datetime
    recipient: str | None = None
    """E.164 with the leading ``+``."""
    errors: tuple[ProviderError, ...] = Field(default_factory=tuple)
