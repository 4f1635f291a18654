"""PII redaction shared by spans and logs: phones, emails and personal fields.

Two mechanisms, because neither alone is enough:

* value patterns: phone numbers (E.164, ``00`` international, Romanian local forms
  such as ``0721 234 567`` or ``021 123 4567``) and e-mail addresses are replaced
  wherever they appear in a string (URLs, SQL, exception messages, log text);
* sensitive keys: an attribute, log field or query parameter whose name says it
  holds personal data (``phone``, ``email``, ``firstName``, ``date_of_birth``,
  ``notes``, ``content`` ...) loses its whole value, since names and free text
  cannot be recognised by pattern.

Identifiers (patient ids, trace ids, UUIDs) are pseudonymous and stay.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

REDACTED = "[redacted]"
PHONE_MASK = "[phone]"
EMAIL_MASK = "[email]"

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
_PHONES = [
    # +40 721 234 567, +40-721-234-567, +4915123456789, +1 (212) 555-0100
    re.compile(r"(?<![\w+])\+[1-9](?:[\s\-.()]{0,2}\d){7,14}(?!\w)"),
    # 0040721234567, 0040 721 234 567, 004915123456789
    re.compile(r"(?<![\w+])00\s?[1-9](?:[\s\-.]?\d){7,13}(?!\w)"),
    # 40721234567 (E.164 without the plus, Romanian)
    re.compile(r"(?<![\w+])40[237]\d{8}(?!\w)"),
    # 0721 234 567, 0721-234-567, 0721234567 (mobiles and 4-digit-prefix landlines)
    re.compile(r"(?<![\w+])0[237]\d{2}[\s\-.]?\d{3}[\s\-.]?\d{3}(?!\w)"),
    # 021 123 4567 (Bucharest landline)
    re.compile(r"(?<![\w+])0[23]\d[\s\-.]?\d{3}[\s\-.]?\d{4}(?!\w)"),
]

SENSITIVE_KEYS = frozenset(
    {
        "phone",
        "phonenumber",
        "phone_number",
        "mobile",
        "email",
        "emailaddress",
        "email_address",
        "firstname",
        "first_name",
        "lastname",
        "last_name",
        "fullname",
        "full_name",
        "patientname",
        "patient_name",
        "dateofbirth",
        "date_of_birth",
        "dob",
        "birthdate",
        "ipaddress",
        "ip_address",
        "notes",
        "note",
        "content",
        "body",
        "text",
        "transcript",
        "password",
        "authorization",
        "api_key",
        "apikey",
        "token",
        "secret",
    }
)

# Keys matched whole: a bare ``address`` field is a postal address, while
# ``server.address`` is a host name; peer addresses of server spans are client IPs.
SENSITIVE_FULL_KEYS = frozenset(
    {
        "address",
        "client.address",
        "client.socket.address",
        "network.peer.address",
        "net.peer.ip",
        "net.sock.peer.addr",
        "http.client_ip",
    }
)

# In a URL, a bare ``name`` or a free-text search is about a person (unlike the
# ``service.name`` attribute), so query parameters have a few more sensitive names.
SENSITIVE_QUERY_PARAMS = frozenset({"name", "q", "query", "search"})

_QUERY_PARAM = re.compile(r"([?&;]([A-Za-z_][A-Za-z0-9_]*)=)([^&#;\s]*)")
_MARKERS = re.compile(r"[@=%]")
_PHONE_LIKE = re.compile(r"\d(?:[\s\-.()]{0,2}+\d){7}")
"""Eight digits, each at most two separators from the next: every match of the phone
patterns above contains such a run (each has eight digits or more, so separated)."""
_PERCENT = re.compile(r"%2[bB0]|%40")
_PERCENT_CHARS = {"%2b": "+", "%20": " ", "%40": "@"}


@lru_cache(maxsize=4096)
def is_sensitive_key(key: str) -> bool:
    """True when ``key`` (or its last dotted segment) names personal or secret data.

    Remembered: keys are attribute and field names, a small set that every span repeats."""
    lowered = key.strip().lower()
    if lowered in SENSITIVE_FULL_KEYS:
        return True
    last = lowered.rsplit(".", 1)[-1].replace("-", "_")
    return last in SENSITIVE_KEYS or last.replace("_", "") in SENSITIVE_KEYS


def redact_text(text: str) -> str:
    """Mask phone numbers, e-mail addresses and sensitive query parameters in ``text``."""
    if not text or not (_MARKERS.search(text) or _PHONE_LIKE.search(text)):
        # No '@' (e-mail), '=' (query parameter), '%' (encoded text) nor eight digits
        # close together (phone): nothing _mask_all could match. Most texts of a span
        # (URLs, ids, user agents, hex correlation ids) end here.
        return text
    return _mask_all(text)


def _mask_all(text: str) -> str:
    text = _QUERY_PARAM.sub(_mask_query_param, text)
    if "%" in text:
        # URLs carry ``+40...`` as ``%2B40...``, spaces as ``%20``, ``@`` as ``%40``
        text = _PERCENT.sub(lambda m: _PERCENT_CHARS[m.group(0).lower()], text)
    text = _EMAIL.sub(EMAIL_MASK, text)
    for pattern in _PHONES:
        text = pattern.sub(PHONE_MASK, text)
    return text


def _mask_query_param(match: re.Match[str]) -> str:
    name = match.group(2)
    if name.lower() in SENSITIVE_QUERY_PARAMS or is_sensitive_key(name):
        return match.group(1) + REDACTED
    return match.group(0)


STATEMENT_KEYS = frozenset({"db.statement", "db.query.text"})
"""Span attributes holding SQL text. The asyncpg instrumentation records the statement
as written in the code, parameters apart (``$1``): a small set of texts, masked once."""


INFRASTRUCTURE_KEYS = frozenset(
    {
        "db.system",
        "db.name",
        "db.user",
        "db.namespace",
        "net.peer.name",
        "net.transport",
        "server.address",
        "http.scheme",
        "http.flavor",
        "http.method",
        "http.route",
        "http.host",
        "http.server_name",
        "url.scheme",
        "network.protocol.version",
    }
)
"""Span attributes naming the system's own parts (database, host, route template):
configuration, a handful of values per process, so their masking is remembered."""


def redact_value(key: str, value: Any) -> Any:
    """The value to keep for ``key``: dropped if the key is sensitive, else pattern-masked."""
    if key in STATEMENT_KEYS and isinstance(value, str):
        return _redact_remembered(value)
    if key in INFRASTRUCTURE_KEYS and isinstance(value, str):
        return _redact_remembered(value)
    if is_sensitive_key(key):
        return REDACTED
    return redact_any(value)


@lru_cache(maxsize=1024)
def _redact_remembered(statement: str) -> str:
    """``redact_text`` of a SQL statement or an infrastructure value, remembered: every
    query span carries them, and the same few come back with every request."""
    return redact_text(statement)


def redact_any(value: Any) -> Any:
    """Pattern-mask strings, recursively inside mappings and sequences."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, _SCALARS):  # before the (slower) abstract type checks
        return value
    if isinstance(value, Mapping):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        items = [redact_any(v) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    return value


_SCALARS = (int, float, type(None))
"""Values with nothing to mask (``bool`` is an ``int``)."""


def redact_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """A redacted copy of span or event attributes."""
    return {k: redact_value(k, v) for k, v in (attributes or {}).items()}
