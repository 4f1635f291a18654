"""Phone numbers: accepted in Romanian local forms, stored and sent as E.164."""

from __future__ import annotations

import phonenumbers

from domain.errors import InvalidArguments

_EXPECTED = "a valid phone number, e.g. +40721234567 or 0721 234 567"


def normalize_phone(raw: str, default_region: str = "RO", *, path: str = "phone") -> str:
    """Return ``raw`` as an E.164 number (``+40721234567``).

    Accepts national forms of ``default_region`` ("0721 234 567"), the international
    prefix ("0040721234567"), a leading plus with any separators ("+40 721-234-567")
    and the country code without a plus ("40721234567"). Raises
    ``InvalidArguments`` with ``details.errors = [{path, message, expected}]``
    when the input is not a valid number; ``path`` names the offending argument.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise _invalid(path, "phone number is empty")
    try:
        number = phonenumbers.parse(raw.strip(), default_region)
    except phonenumbers.NumberParseException as exc:
        raise _invalid(path, f"not a phone number: {raw!r}") from exc
    if not phonenumbers.is_valid_number(number):
        raise _invalid(path, f"not a valid phone number: {raw!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_valid_phone(raw: str, default_region: str = "RO") -> bool:
    """True when ``normalize_phone`` would accept ``raw``."""
    try:
        normalize_phone(raw, default_region)
    except InvalidArguments:
        return False
    return True


def find_phones(text: str, region: str = "RO") -> list[str]:
    """Every valid phone number written in ``text``, as E.164, in order, without repeats."""
    return [number for number, _, _ in find_phone_spans(text, region)]


def find_phone_spans(text: str, region: str = "RO") -> list[tuple[str, int, int]]:
    """Like ``find_phones`` but with each number's ``(start, end)`` offsets in ``text``."""
    found: list[tuple[str, int, int]] = []
    seen: set[str] = set()
    for match in phonenumbers.PhoneNumberMatcher(text, region):
        e164 = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
        if e164 not in seen:
            seen.add(e164)
            found.append((e164, match.start, match.end))
    return found


def _invalid(path: str, message: str) -> InvalidArguments:
    return InvalidArguments(
        message, errors=[{"path": path, "message": message, "expected": _EXPECTED}]
    )
