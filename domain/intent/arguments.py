"""Turning one request of a query into a function's arguments.

Each builder reads its request (a ``Segment``) and may fall back on the rest of
the query for the person it is about: "programează-l pe pat-3 ... și trimite-i
confirmare" sends to the patient named earlier. The caller's context
(``patientId``, ``phone``) fills what the text leaves out. Arguments use the
gateway's camelCase names; every value found is named in the evidence.

trigger_workflow fills each workflow's own payload fields (the workflow input
models' camelCase names): lead-scoring phone, channel, messages, utmParams;
nurture-sequence phone or leadId, classification; patient-journey patientId,
procedure; booking-agent patientId, serviceType, preferredDate, preferredTimeSlot,
doctorId; and a language when one is said. Values that are not said are left out.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from domain.dates import DateMatch
from domain.errors import InvalidArguments
from domain.intent.cues import REQUEST_VERB
from domain.intent.models import FunctionName, IntentContext
from domain.intent.spans import MASK, Parsed, Span
from domain.intent.vocab import (
    Found,
    find_channel,
    find_consent_source,
    find_consent_status,
    find_consent_types,
    find_duration,
    find_group_by,
    find_language,
    find_lead_class,
    find_marketing_channels,
    find_priority,
    find_service,
    find_template,
    find_urgency,
    find_workflow_name,
)
from domain.intent.when import find_day, find_days, find_slot, find_span
from domain.phones import normalize_phone

# Required arguments per function; a tuple with several names is a one-of group.
REQUIRED: dict[FunctionName, tuple[tuple[str, ...], ...]] = {
    "score_lead": (("phone",), ("channel",)),
    "get_patient": (("patientId", "phone", "email"),),
    "update_patient": (("patientId",), ("updates",)),
    "schedule_appointment": (("patientId",), ("serviceType",), ("preferredDate",)),
    "get_available_slots": (("startDate",), ("endDate",)),
    "cancel_appointment": (("appointmentId",),),
    "send_whatsapp": (("to",), ("message", "templateName")),
    "record_consent": (("patientId",), ("phone",), ("consentType",), ("status",), ("source",)),
    "check_consent": (("patientId", "phone"),),
    "get_lead_analytics": (("startDate",), ("endDate",)),
    "trigger_workflow": (("workflow",), ("payload",)),
    "get_workflow_status": (("taskId",),),
}


def missing_arguments(function: FunctionName, arguments: dict[str, Any]) -> list[str]:
    """Required argument groups with no value, each written ``"a|b"`` for one-of groups."""
    return [
        "|".join(group)
        for group in REQUIRED[function]
        if not any(arguments.get(name) not in (None, "", {}, []) for name in group)
    ]


_QUESTION = re.compile(
    r"\W*(?:ce|cand|care|cine|cate|cati|unde|cum|oare|has|have|is|are|do|does|did|can|could|"
    r"when|what|which|who|how|where|whether|avem|exista|mai are|mai e|putem|pot)\b"
)

_ASKS_WHETHER = re.compile(
    r"\b(?:check\w*|verific\w*|vezi|see|find out|afla\w*|confirm\w*|ask|intreaba|know|"
    r"stiu|stii|stiti|tell me|spune-mi)\s+(?:if|whether|daca)\b"
)


@dataclass
class Segment:
    """One request: a slice of the parsed query."""

    parsed: Parsed
    start: int
    end: int

    @property
    def text(self) -> str:
        """The folded, masked words of this request."""
        return self.parsed.masked[self.start : self.end]

    @property
    def canon(self) -> str:
        """The words of this request as cues read them: abbreviations and typos rewritten."""
        canonical = self.parsed.canonical()
        return canonical.text[canonical.offset(self.start) : canonical.offset(self.end)]

    @property
    def corrections(self) -> list[str]:
        """How words of this request were rewritten (see ``lexicon``)."""
        return self.parsed.canonical().notes(self.start, self.end)

    @property
    def original(self) -> str:
        """This request as written."""
        return self.parsed.original[self.start : self.end]

    @property
    def is_question(self) -> bool:
        """Whether the request asks something: a question mark or a question word first."""
        after = self.parsed.original[self.end : self.end + 3].lstrip()
        return (
            "?" in self.original
            or after.startswith("?")
            or bool(_QUESTION.match(self.canon) or _ASKS_WHETHER.search(self.canon))
        )

    def spans(self, kind: str) -> list[Span]:
        """Values of ``kind`` found inside this request."""
        return self.parsed.of_kind(kind, self.start, self.end)


@dataclass
class Request:
    """Everything a builder may read, and what it has found so far."""

    segment: Segment
    others: list[Segment]
    today: date
    context: IntentContext
    arguments: dict[str, Any] = field(default_factory=dict)
    evidence: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The canonical words of the request (folded, masked, typos corrected)."""
        return self.segment.canon

    @property
    def masked(self) -> str:
        """The folded, masked request, offset for offset with the original."""
        return self.segment.text

    def put(self, name: str, value: Any, source: str) -> None:
        """Set an argument and say where it came from."""
        self.arguments[name] = value
        self.evidence.append(f"{name}={value!r} ({source})")

    def local(self, kind: str) -> Span | None:
        """The first value of ``kind`` inside the request."""
        found = self.segment.spans(kind)
        return found[0] if found else None

    def nearby(self, kind: str) -> Span | None:
        """A value of ``kind`` in this request, else in the closest earlier, else later one."""
        found = self.local(kind)
        if found:
            return found
        earlier = [s for s in self.others if s.end <= self.segment.start]
        later = [s for s in self.others if s.start >= self.segment.end]
        for other in [*reversed(earlier), *later]:
            spans = other.spans(kind)
            if spans:
                return spans[0]
        return None

    def person(self, name: str, kind: str, *, search_others: bool = True) -> None:
        """Fill ``name`` with the patient id or phone the request is about."""
        span = self.nearby(kind) if search_others else self.local(kind)
        if span is not None:
            self.put(name, span.value, f"'{span.value}'")
            return
        from_context = self.context.patient_id if kind == "patient" else self.context.phone
        if from_context:
            value = from_context if kind == "patient" else _e164(from_context)
            if value:
                self.put(name, value, "context")


def _e164(raw: str) -> str | None:
    try:
        return normalize_phone(raw)
    except InvalidArguments:
        return None


def _trimmed(text: str) -> str:
    return text.strip().strip("\"'„”“«»").strip().rstrip(".!?;,").strip()


# --- builders ---------------------------------------------------------------------------


def _score_lead(r: Request) -> None:
    r.person("phone", "phone")
    channel = find_channel(r.text) or find_channel(r.segment.parsed.canonical().text)
    if channel:
        r.put("channel", channel.value, f"'{channel.text}'")
    messages = _lead_messages(r)
    if messages:
        r.put("messages", messages, "what the lead wrote")
    utm = _utm(r)
    if utm:
        r.put("utmParams", utm, "utm_* parameters")


def _utm(r: Request) -> dict[str, str]:
    return {
        m.group(1): r.segment.original[m.start(2) : m.end(2)]
        for m in re.finditer(r"\butm_(source|medium|campaign|content|term)\s*[=:]\s*([\w.-]+)",
                             r.masked)
    }  # fmt: skip


def _lead_messages(r: Request) -> list[dict[str, str]]:
    """What the lead wrote: quoted text, else the text after a colon."""
    quotes = r.segment.spans("quote")
    if quotes:
        return [{"role": "user", "content": q.value} for q in quotes]
    said = _after_colon(r.segment.original) or _reported_words(r.segment.original)
    return [{"role": "user", "content": said}] if said else []


_SAID = re.compile(
    r"\b(?:a scris|ne-a scris|a zis|a spus|ne-a spus|a intrebat|a întrebat|scrie|spune|zice|"
    r"intreaba|întreabă|wrote|writes|said|says|asked|asks|texted)"
    r"(?:(?:\s+[\w-]+){0,4}?\s+(?:ca|că|that|if|daca|dacă)\b|(?:\s+[\w-]+){0,4}?\s*:)\s*",
    re.IGNORECASE,
)


def _reported_words(text: str) -> str | None:
    """What the lead said, reported: "... care a scris că vrea fațete", "who said she wants ..."."""
    m = _SAID.search(text)
    if m is None:
        return None
    said = _trimmed(text[m.end() :])
    return said[:2000] if len(said.split()) >= 2 else None


def _after_colon(text: str) -> str | None:
    """What the lead said, when the request quotes it after a colon ("...: vreau all-on-4")."""
    head, colon, tail = text.partition(":")
    said = tail.strip()
    if not colon or len(said.split()) < 2 or re.search(r"\d:\d", head[-2:] + ":" + said[:1]):
        return None
    return said[:2000]


def _get_patient(r: Request) -> None:
    r.person("patientId", "patient", search_others=False)
    r.person("phone", "phone", search_others=False)
    email = r.local("email")
    if email:
        r.put("email", email.value, f"'{email.value}'")
    if not any(k in r.arguments for k in ("patientId", "phone", "email")):
        r.person("patientId", "patient")
        if "patientId" not in r.arguments:
            r.person("phone", "phone")


_NAME = r"([A-ZĂÂÎȘŞȚŢ][\w'-]+(?:\s+[A-ZĂÂÎȘŞȚŢ][\w'-]+)?)"
_TO_VALUE = (
    r"(?:\s+(?:in|în|la|to|este|e|is|as|cu|with|devine|becomes|should be|is spelled|spelled|"
    r"se scrie|is written|:)|:)\s+"
    r"(?:de fapt\s+|actually\s+|now\s+|acum\s+|acuma\s+)?"
)
# The value right after the field: "nume de familie Stan", "first name: Andrei".
_RIGHT_AFTER = r"\s*[:=–—-]?\s*(?:de fapt\s+|actually\s+|now\s+|acum\s+)?"
_FIELDS: dict[str, str] = {
    "lastName": r"\b(?:nume(?:le)?\s+de\s+familie|last\s+name|surname|family\s+name)\b",
    "firstName": r"\b(?:prenume\w*|first\s+name)\b",
    "fullName": r"\b(?:numele|nume|name|se numeste|se cheama|is called|is named|goes by)\b",
}


def _update_patient(r: Request) -> None:
    r.person("patientId", "patient")
    updates: dict[str, Any] = {}
    _email_update(r, updates)
    _phone_update(r, updates)
    _birth_date_update(r, updates)
    _name_updates(r, updates)
    _note_and_tag_updates(r, updates)
    if updates:
        r.put("updates", updates, "requested changes")


def _email_update(r: Request, updates: dict[str, Any]) -> None:
    emails = r.segment.spans("email")
    if emails:
        updates["email"] = emails[-1].value


def _phone_update(r: Request, updates: dict[str, Any]) -> None:
    phones = r.segment.spans("phone")
    if phones and re.search(
        r"\b(?:telefon\w*|phone|numar\w*|number|mobil\w*|cell\w*|celular\w*|contact)\b", r.text
    ):
        updates["phone"] = phones[-1].value


_BIRTH = re.compile(
    r"\b(?:nasteri\w*|nastere|nascut\w*|birth\w*|dob|born|d\.o\.b\.?|zi(?:ua)? de nastere)\b"
)


def _birth_date_update(r: Request, updates: dict[str, Any]) -> None:
    field_word = _BIRTH.search(r.text)
    if field_word:
        born = find_day(r.text[field_word.end() :], r.today, direction="past")
        if born:
            value = born.value
            if value > r.today:  # "12.01.90" is 1990, not 2090
                value = value.replace(year=value.year - 100)
            updates["dateOfBirth"] = value.isoformat()


def _name_updates(r: Request, updates: dict[str, Any]) -> None:
    for name, pattern in _FIELDS.items():
        m = re.search(pattern, r.masked)
        if not m or (name == "fullName" and updates.keys() & {"firstName", "lastName"}):
            continue
        after = r.segment.original[m.end() :]
        value = re.match(_RIGHT_AFTER + _NAME, after) or re.search(_TO_VALUE + _NAME, after)
        if value is None:
            continue
        if name != "fullName":
            updates.setdefault(name, value.group(1).split()[0])
            continue
        parts = value.group(1).split()
        if len(parts) == 2:
            updates["firstName"], updates["lastName"] = parts
        else:
            updates["lastName"] = parts[0]
        return


_NOTE_WORD = r"\b(?:nota|notita|note|observati\w*|mentiune)\b"


def _note_and_tag_updates(r: Request, updates: dict[str, Any]) -> None:
    note = r.local("note")
    if note is None and re.search(_NOTE_WORD, r.text):
        note = r.local("quote")
    if note:
        updates["notes"] = note.value
    tags = _tags(r)
    if tags:
        updates["tags"] = tags


_TAG_WORD = re.compile(
    r"\b(?:etichet\w*|tag(?:-ul|ul|-urile|urile|-uri|uri|s|ged|uit)?|labels?|label+ed)\b"
    r"(?:-[lo]\b)?"
)
# Words between the tag word and its value: "tag pat-3 as VIP", "eticheta-l pe pat-4 ca VIP".
_TAG_LEAD = frozenset((
    "him", "her", "them", "pe", "lui", "la", "pentru", "pt", "for", "to", "on", "of", "the",
    "patient", "pacientul", "pacienta", "pacientului", "pacientei", "with", "cu", "as", "ca",
    "drept", ":", "=", "new", "nou", "noua", "un", "o", "a", "an", "de",
))  # fmt: skip
_TAG_JOIN = frozenset((",", "si", "and", "&", "plus", "+"))
_STARTS_REQUEST = re.compile(rf"\s+{REQUEST_VERB}")
_TAG_TOKEN = re.compile(r"#+|[\w'+&-]+|[,:=+&]")
_TAG_BEFORE = re.compile(r"\b(?:the|a|an|un|o)\s+([\w+&-]+)\s+(?:tag|label)\b")


def _tags(r: Request) -> list[str]:
    """Tags to add: "eticheta VIP", "tag pat-3 as VIP", "etichetele VIP și implant",
    "tag-ul 'pacient dificil'", "add the VIP tag"."""
    for m in _TAG_WORD.finditer(r.masked):
        values = _tag_values(r, m.end())
        if values:
            return values
    before = _TAG_BEFORE.search(r.masked)
    if before and before.group(1) not in _TAG_LEAD and MASK not in before.group(1):
        return [r.segment.original[before.start(1) : before.end(1)]]
    return []


def _tag_values(r: Request, position: int) -> list[str]:
    values: list[str] = []
    joined = True
    for token in _TAG_TOKEN.finditer(r.masked, position):
        word = token.group(0)
        if word.startswith(MASK):
            at = r.segment.start + token.start()
            span = next((s for s in r.segment.spans("quote") if s.start == at), None)
            if span is None:
                if values:
                    break
                continue  # the patient or number the tag goes on
            if not joined:
                break
            values.append(span.value)
            joined = False
        elif word in _TAG_JOIN and values:
            if _STARTS_REQUEST.match(r.masked, token.end()):
                break  # "tag her as VIP and add a note ...": the next request
            joined = True
        elif word in _TAG_LEAD and not values:
            continue
        elif joined and word not in _TAG_LEAD and word not in _TAG_JOIN:
            values.append(r.segment.original[token.start() : token.end()])
            joined = False
        else:
            break
        if len(values) >= 5:
            break
    return values


def _schedule_appointment(r: Request) -> None:
    r.person("patientId", "patient")
    _service(r, fallback=True)
    when = _new_day(r)
    if when:
        r.put("preferredDate", when.value.isoformat(), f"'{when.text}'")
    slot = find_slot(r.text)
    if slot:
        r.put("preferredTimeSlot", slot.slot, f"'{slot.text}'")
    _doctor(r)
    _duration(r)
    urgency = find_urgency(r.text)
    if urgency:
        r.put("urgency", urgency.value, f"'{urgency.text}'")


_MOVE_FROM = re.compile(r"\b(?:de|din|from)\s*$")
_MOVE_TO = re.compile(r"\s*(?:pe|to|la|for|spre|catre|into|in)\s*")


def _new_day(r: Request) -> DateMatch | None:
    """The day asked for; when moving "de joi pe vineri" / "from Thursday to Friday", the second."""
    days = find_days(r.text, r.today, direction="future")
    if not days:
        return None
    for first, second in itertools.pairwise(days):
        if _MOVE_FROM.search(r.text[: first.start]) and _MOVE_TO.fullmatch(
            r.text[first.end : second.start]
        ):
            return second
    return days[0]


def _service(r: Request, *, fallback: bool) -> None:
    service = find_service(r.text)
    if not service and fallback:
        service = find_service(r.segment.parsed.canonical().text)
    if service:
        r.put("serviceType", service.service.value, f"'{service.text}'")


def _doctor(r: Request) -> None:
    doctor = r.local("doctor")
    if doctor:
        r.put("doctorId", doctor.value, f"'{doctor.value}'")


def _duration(r: Request) -> None:
    duration = find_duration(r.text)
    if duration:
        r.put("duration", int(duration.value), f"'{duration.text}'")


def _get_available_slots(r: Request) -> None:
    span = find_span(r.text, r.today, direction="future")
    if span:
        r.put("startDate", span.first.isoformat(), f"'{span.text}'")
        r.put("endDate", span.last.isoformat(), f"'{span.text}'")
    _doctor(r)
    _service(r, fallback=False)
    _duration(r)


_REASON = re.compile(
    r"\b(?:because|pentru ca|pentru că|pt ca|pt că|deoarece|fiindca|fiindcă|intrucat|întrucât|"
    r"motiv(?:ul)?\s*:|reason\s*:|motiv)\s*(.+)$",
    re.IGNORECASE,
)
_NO_NOTIFY = re.compile(
    r"\b(?:fara\s+(?:sa\S*|a)\s+(?:il\s+|o\s+|ii\s+|le\s+)?(?:mai\s+)?"
    r"(?:anunt|notific|inform|contact|suna|deranj)\w*|fara\s+(?:a\s+)?(?:notific|anunt)\w*|"
    r"nu\s+(?:il\s+|o\s+|ii\s+|le\s+)?(?:mai\s+)?(?:anunta|notifica|informa|suna)\w*|"
    r"don'?t\s+(?:notify|tell|inform|message|text|contact)|"
    r"do\s+not\s+(?:notify|tell|inform|message|text|contact)|without\s+(?:notif\w*|telling|"
    r"informing|letting)|no\s+notification|no need to (?:notify|tell|inform)|silently|quietly)"
)


def _cancel_appointment(r: Request) -> None:
    appointment = r.nearby("appointment")
    if appointment:
        r.put("appointmentId", appointment.value, f"'{appointment.value}'")
    reason = _REASON.search(r.segment.original)
    if reason and _trimmed(reason.group(1)):
        r.put("reason", _trimmed(reason.group(1)), f"'{reason.group(0).split()[0]}'")
    silent = _NO_NOTIFY.search(r.text)
    if silent:
        r.put("notifyPatient", False, f"'{silent.group(0)}'")


def _send_whatsapp(r: Request) -> None:
    r.person("to", "phone")
    message = r.local("quote") or r.local("message")
    if message:
        r.put("message", message.value, "quoted text" if message.kind == "quote" else "text")
        _language(r)
        return
    template = find_template(r.text)
    if template:
        r.put("templateName", template.value, f"'{template.text}'")
    _language(r)


def _language(r: Request) -> None:
    """The message's language, only when the request says it ("în engleză", "auf Deutsch")."""
    language = find_language(r.text)
    if language:
        r.put("language", language.value, f"'{language.text}'")


def _record_consent(r: Request) -> None:
    r.person("patientId", "patient")
    r.person("phone", "phone")
    types = _consent_types(r)
    if types:
        r.put("consentType", types[0].value, f"'{types[0].text}'")
    status = find_consent_status(r.text)
    if status:
        r.put("status", status.value, f"'{status.text}'")
    else:
        # "Înregistrează acordul" records a consent given: the noun itself says granted.
        noun = re.search(r"\b(?:acord\w*|consimt\w*|consent\w*)", r.text)
        if noun:
            r.put("status", "granted", f"'{noun.group(0)}' with no refusal or withdrawal")
    source = find_consent_source(r.text, types)
    if source:
        r.put("source", source.value, f"'{source.text}'")


def _check_consent(r: Request) -> None:
    r.person("patientId", "patient", search_others=False)
    r.person("phone", "phone", search_others=False)
    if "patientId" not in r.arguments and "phone" not in r.arguments:
        r.person("patientId", "patient")
        if "patientId" not in r.arguments:
            r.person("phone", "phone")
    types = _consent_types(r)
    if types:
        r.put("consentTypes", [t.value for t in types], ", ".join(f"'{t.text}'" for t in types))


def _consent_types(r: Request) -> list[Found]:
    """The consent types of the request; a bare "marketing" takes the channel the query names.

    "Before I send offers on WhatsApp, check her marketing consent": the channel is
    in another request of the same query.
    """
    types = list(find_consent_types(r.text))
    bare = [t for t in types if t.value.startswith("marketing")]
    if len(bare) < 2 or len({t.start for t in bare}) != 1:
        return types
    channels = find_marketing_channels(r.segment.parsed.canonical().text)
    if not channels:
        return types
    anchor = bare[0]
    specific = [Found(value, anchor.text, anchor.start, anchor.end) for value in channels]
    kept = [t for t in types if t not in bare]
    return sorted(kept + specific, key=lambda t: t.start)


def _get_lead_analytics(r: Request) -> None:
    text = r.text
    group = find_group_by(text)
    if group:
        r.put("groupBy", group.value, f"'{group.text}'")
        # "pe luni" groups by month: keep it from being read as Monday.
        text = text[: group.start] + MASK * (group.end - group.start) + text[group.end :]
    span = find_span(text, r.today, direction="past")
    if span:
        r.put("startDate", span.first.isoformat(), f"'{span.text}'")
        r.put("endDate", span.last.isoformat(), f"'{span.text}'")
    channel = find_channel(text)
    if channel and not (group and group.value == "channel"):
        r.put("channel", channel.value, f"'{channel.text}'")


def _trigger_workflow(r: Request) -> None:
    workflow = find_workflow_name(r.text)
    if workflow:
        r.put("workflow", workflow.value, f"'{workflow.text}'")
    payload: dict[str, Any] = {}
    for name, kind in (("patientId", "patient"), ("phone", "phone"), ("leadId", "lead")):
        span = r.nearby(kind)
        if span:
            payload[name] = span.value
    if not payload and r.context.patient_id:
        payload["patientId"] = r.context.patient_id
    if not payload and r.context.phone and _e164(r.context.phone):
        payload["phone"] = _e164(r.context.phone) or ""
    if workflow:
        _WORKFLOW_INPUTS[workflow.value](r, payload)
        language = find_language(r.text)
        if language:
            payload["language"] = language.value
    if payload:
        r.put("payload", payload, "the person named and the values the workflow takes")
    priority = find_priority(r.text)
    if priority:
        r.put("priority", priority.value, f"'{priority.text}'")


def _lead_scoring_input(r: Request, payload: dict[str, Any]) -> None:
    """lead-scoring: phone, channel, messages (what the lead wrote)."""
    channel = find_channel(r.text) or find_channel(r.segment.parsed.canonical().text)
    if channel:
        payload["channel"] = channel.value
    messages = _lead_messages(r)
    if messages:
        payload["messages"] = messages
    utm = _utm(r)
    if utm:
        payload["utmParams"] = utm


def _nurture_input(r: Request, payload: dict[str, Any]) -> None:
    """nurture-sequence: phone, classification (WARM or COLD), leadId."""
    found = find_lead_class(r.text) or find_lead_class(r.segment.parsed.canonical().text)
    if found:
        payload["classification"] = found.value


def _journey_input(r: Request, payload: dict[str, Any]) -> None:
    """patient-journey: patientId, procedure (the treatment the journey follows)."""
    service = find_service(r.text) or find_service(r.segment.parsed.canonical().text)
    if service:
        payload["procedure"] = service.service.value


def _booking_agent_input(r: Request, payload: dict[str, Any]) -> None:
    """booking-agent: patientId, serviceType, preferredDate, preferredTimeSlot, doctorId."""
    service = find_service(r.text)
    if service:
        payload["serviceType"] = service.service.value
    when = _new_day(r)
    if when:
        payload["preferredDate"] = when.value.isoformat()
    slot = find_slot(r.text)
    if slot:
        payload["preferredTimeSlot"] = slot.slot
    doctor = r.local("doctor")
    if doctor:
        payload["doctorId"] = doctor.value


_WORKFLOW_INPUTS: dict[str, Callable[[Request, dict[str, Any]], None]] = {
    "lead-scoring": _lead_scoring_input,
    "nurture-sequence": _nurture_input,
    "patient-journey": _journey_input,
    "booking-agent": _booking_agent_input,
}


def _get_workflow_status(r: Request) -> None:
    task = r.nearby("task")
    if task:
        r.put("taskId", task.value, f"'{task.value}'")


BUILDERS: dict[FunctionName, Callable[[Request], None]] = {
    "score_lead": _score_lead,
    "get_patient": _get_patient,
    "update_patient": _update_patient,
    "schedule_appointment": _schedule_appointment,
    "get_available_slots": _get_available_slots,
    "cancel_appointment": _cancel_appointment,
    "send_whatsapp": _send_whatsapp,
    "record_consent": _record_consent,
    "check_consent": _check_consent,
    "get_lead_analytics": _get_lead_analytics,
    "trigger_workflow": _trigger_workflow,
    "get_workflow_status": _get_workflow_status,
}


def build_arguments(function: FunctionName, request: Request) -> None:
    """Fill ``request.arguments`` and ``request.evidence`` for ``function``."""
    BUILDERS[function](request)
