"""Turning one request of a query into a function's arguments.

Each builder reads its request (a ``Segment``) and may fall back on the rest of
the query for the person it is about: "programează-l pe pat-3 ... și trimite-i
confirmare" sends to the patient named earlier. The caller's context
(``patientId``, ``phone``) fills what the text leaves out. Arguments use the
gateway's camelCase names; every value found is named in the evidence.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from domain.dates import find_date, find_range, find_time_slot
from domain.errors import InvalidArguments
from domain.intent.models import FunctionName, IntentContext
from domain.intent.spans import MASK, Parsed, Span
from domain.intent.vocab import (
    find_channel,
    find_consent_source,
    find_consent_status,
    find_consent_types,
    find_duration,
    find_group_by,
    find_priority,
    find_template,
    find_urgency,
    find_workflow_name,
)
from domain.phones import normalize_phone
from domain.services import find_services

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
    def original(self) -> str:
        """This request as written."""
        return self.parsed.original[self.start : self.end]

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
        """The folded, masked words of the request."""
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
    channel = find_channel(r.text) or find_channel(r.segment.parsed.masked)
    if channel:
        r.put("channel", channel.value, f"'{channel.text}'")
    quotes = r.segment.spans("quote")
    if quotes:
        messages = [{"role": "user", "content": q.value} for q in quotes]
        r.put("messages", messages, "quoted text")
    else:
        said = _after_colon(r.segment.original)
        if said:
            r.put("messages", [{"role": "user", "content": said}], "text after ':'")
    utm = {
        m.group(1): r.segment.original[m.start(2) : m.end(2)]
        for m in re.finditer(r"\butm_(source|medium|campaign|content|term)\s*[=:]\s*([\w.-]+)",
                             r.text)
    }  # fmt: skip
    if utm:
        r.put("utmParams", utm, "utm_* parameters")


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
_TO_VALUE = r"(?:\s+(?:in|în|la|to|este|e|is|as|cu|with|:)|:)\s+(?:de fapt\s+|actually\s+)?"
_FIELDS: dict[str, str] = {
    "lastName": r"\b(?:nume(?:le)?\s+de\s+familie|last\s+name|surname|family\s+name)\b",
    "firstName": r"\b(?:prenume\w*|first\s+name)\b",
    "fullName": r"\b(?:numele|nume|name)\b",
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
    if phones and re.search(r"\b(?:telefon\w*|phone|numar\w*|number)\b", r.text):
        updates["phone"] = phones[-1].value


def _birth_date_update(r: Request, updates: dict[str, Any]) -> None:
    field_word = re.search(r"\b(?:nasteri\w*|nastere|birth\w*|dob|born)\b", r.text)
    if field_word:
        born = find_date(r.text[field_word.end() :], r.today, direction="past")
        if born:
            updates["dateOfBirth"] = born.value.isoformat()


def _name_updates(r: Request, updates: dict[str, Any]) -> None:
    for name, pattern in _FIELDS.items():
        m = re.search(pattern, r.text)
        if not m:
            continue
        value = re.search(_TO_VALUE + _NAME, r.segment.original[m.end() :])
        if value is None:
            continue
        if name != "fullName":
            updates.setdefault(name, value.group(1).split()[0])
        elif "firstName" not in updates and "lastName" not in updates:
            parts = value.group(1).split()
            if len(parts) == 2:
                updates["firstName"], updates["lastName"] = parts
            else:
                updates["lastName"] = parts[0]
        return


def _note_and_tag_updates(r: Request, updates: dict[str, Any]) -> None:
    note = r.local("note")
    if note:
        updates["notes"] = note.value
    tag = re.search(r"\b(?:eticheta|etichetele|tag(?:-ul|ul|s)?|label)\s+", r.text)
    if tag:
        word = re.match(r"[\"'„]?([\w-]+)", r.segment.original[tag.end() :])
        if word:
            updates["tags"] = [word.group(1)]


def _schedule_appointment(r: Request) -> None:
    r.person("patientId", "patient")
    _service(r, fallback=True)
    when = find_date(r.text, r.today, direction="future")
    if when:
        r.put("preferredDate", when.value.isoformat(), f"'{when.text}'")
    slot = find_time_slot(r.text)
    if slot:
        r.put("preferredTimeSlot", slot.slot, f"'{slot.text}'")
    _doctor(r)
    _duration(r)
    urgency = find_urgency(r.text)
    if urgency:
        r.put("urgency", urgency.value, f"'{urgency.text}'")


def _service(r: Request, *, fallback: bool) -> None:
    services = find_services(r.text)
    if not services and fallback:
        services = find_services(r.segment.parsed.masked)
    if services:
        r.put("serviceType", services[0].service.value, f"'{services[0].text}'")


def _doctor(r: Request) -> None:
    doctor = r.local("doctor")
    if doctor:
        r.put("doctorId", doctor.value, f"'{doctor.value}'")


def _duration(r: Request) -> None:
    duration = find_duration(r.text)
    if duration:
        r.put("duration", int(duration.value), f"'{duration.text}'")


def _get_available_slots(r: Request) -> None:
    span = find_range(r.text, r.today, direction="future")
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
    r"\b(?:fara\s+sa\S*\s+(?:il\s+|o\s+|ii\s+|le\s+)?anunt\w*|fara\s+(?:a\s+)?(?:notific|anunt)\w*|"
    r"nu\s+(?:il\s+|o\s+|ii\s+)?(?:anunta|notifica)\w*|don'?t\s+notify|do\s+not\s+notify|"
    r"without\s+notif\w*|no\s+notification)"
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
        return
    template = find_template(r.text)
    if template:
        r.put("templateName", template.value, f"'{template.text}'")


def _record_consent(r: Request) -> None:
    r.person("patientId", "patient")
    r.person("phone", "phone")
    types = find_consent_types(r.text)
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
    types = find_consent_types(r.text)
    if types:
        r.put("consentTypes", [t.value for t in types], ", ".join(f"'{t.text}'" for t in types))


def _get_lead_analytics(r: Request) -> None:
    text = r.text
    group = find_group_by(text)
    if group:
        r.put("groupBy", group.value, f"'{group.text}'")
        # "pe luni" groups by month: keep it from being read as Monday.
        text = text[: group.start] + MASK * (group.end - group.start) + text[group.end :]
    span = find_range(text, r.today, direction="past")
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
    payload: dict[str, str] = {}
    for name, kind in (("patientId", "patient"), ("phone", "phone"), ("leadId", "lead")):
        span = r.nearby(kind)
        if span:
            payload[name] = span.value
    if not payload and r.context.patient_id:
        payload["patientId"] = r.context.patient_id
    if not payload and r.context.phone and _e164(r.context.phone):
        payload["phone"] = _e164(r.context.phone) or ""
    if payload:
        r.put("payload", payload, "the person named")
    priority = find_priority(r.text)
    if priority:
        r.put("priority", priority.value, f"'{priority.text}'")


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
