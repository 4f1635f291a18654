"""Phone normalisation: Romanian local forms in, E.164 out."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidArguments
from domain.phones import find_phone_spans, find_phones, is_valid_phone, normalize_phone

E164 = re.compile(r"^\+[1-9]\d{6,14}$")


@pytest.mark.parametrize(
    "raw",
    [
        "0721 234 567",
        "0721234567",
        "0040721234567",
        "+40 721-234-567",
        "+40721234567",
        "40721234567",
        "(0721) 234.567",
        "  +40 (721) 234 567  ",
    ],
)
def test_romanian_forms_become_e164(raw: str) -> None:
    assert normalize_phone(raw) == "+40721234567"


def test_landlines_and_foreign_numbers() -> None:
    assert normalize_phone("021 312 3456") == "+40213123456"
    assert normalize_phone("+1 650 253 0000") == "+16502530000"
    assert normalize_phone("030 1234567", default_region="DE") == "+49301234567"


@pytest.mark.parametrize("raw", ["", "   ", "abc", "0712345", "+40 123", "07212345678901"])
def test_invalid_numbers_raise_invalid_arguments(raw: str) -> None:
    with pytest.raises(InvalidArguments) as caught:
        normalize_phone(raw)
    error = caught.value
    assert error.code == "INVALID_ARGUMENTS"
    [detail] = error.details["errors"]
    assert detail["path"] == "phone"
    assert detail["message"]
    assert "+40721234567" in detail["expected"]


def test_the_caller_names_the_path() -> None:
    with pytest.raises(InvalidArguments) as caught:
        normalize_phone("12", path="arguments.to")
    assert caught.value.details["errors"][0]["path"] == "arguments.to"
    assert caught.value.to_dict()["code"] == "INVALID_ARGUMENTS"


def test_is_valid_phone() -> None:
    assert is_valid_phone("0744 555 666")
    assert not is_valid_phone("0744 555")


def test_find_phones_in_order_without_repeats() -> None:
    text = "Sună la 0721 234 567 sau +40 722-111-222; din nou 0040721234567, apoi 40723111222."
    assert find_phones(text) == ["+40721234567", "+40722111222", "+40723111222"]


def test_find_phones_ignores_ids_dates_and_short_numbers() -> None:
    assert find_phones("apt-123 pe 25.12.2026 la ora 10:30, 2026-06-03, 45 de minute") == []


def test_find_phone_spans_give_offsets_into_the_text() -> None:
    text = "Tel: 0721 234 567!"
    [(number, start, end)] = find_phone_spans(text)
    assert number == "+40721234567"
    assert text[start:end] == "0721 234 567"


_mobile = st.from_regex(r"7[2-7][0-9]{7}", fullmatch=True)  # all valid RO mobile ranges
_separator = st.sampled_from(["", " ", "-", "."])
_prefix = st.sampled_from(["0", "+40", "0040", "40", "+40 ", "+40 (0)"])


@st.composite
def _written_mobiles(draw: st.DrawFn) -> str:
    digits = draw(_mobile)
    sep = draw(_separator)
    return draw(_prefix) + digits[:3] + sep + digits[3:6] + sep + digits[6:]


@given(_written_mobiles())
def test_normalisation_is_idempotent_and_e164(raw: str) -> None:
    once = normalize_phone(raw)
    assert E164.match(once)
    assert once.startswith("+407")
    assert normalize_phone(once) == once


@given(_written_mobiles(), _written_mobiles())
def test_written_forms_agree_exactly_when_the_digits_do(a: str, b: str) -> None:
    same_subscriber = re.sub(r"\D", "", a)[-9:] == re.sub(r"\D", "", b)[-9:]
    assert (normalize_phone(a) == normalize_phone(b)) == same_subscriber


@given(st.text(max_size=40))
def test_any_text_either_normalises_or_raises_invalid_arguments(raw: str) -> None:
    try:
        result = normalize_phone(raw)
    except InvalidArguments as error:
        assert error.details["errors"][0]["path"] == "phone"
    else:
        assert E164.match(result)
