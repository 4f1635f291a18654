"""U+0000 cannot be stored by PostgreSQL text/jsonb: it is refused at validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.commands import RegisterPatient, UpdatePatient
from domain.functions import REGISTRY
from domain.text import nul_path


def test_a_command_with_nul_in_a_nested_field_is_refused_naming_it() -> None:
    with pytest.raises(ValidationError, match=r"updates\.notes may not contain NUL"):
        UpdatePatient.model_validate({"patient_id": "p-1", "updates": {"notes": "a\x00b"}})


def test_a_command_without_nul_validates() -> None:
    assert RegisterPatient(patient_id="p-1", notes="ok").notes == "ok"


def test_gateway_arguments_with_nul_are_refused() -> None:
    spec = REGISTRY.get("update_patient")
    with pytest.raises(ValidationError, match=r"updates\.tags\[1\] may not contain NUL"):
        spec.arguments.model_validate({"patientId": "p-1", "updates": {"tags": ["a", "b\x00"]}})


@given(st.text(alphabet=st.characters(blacklist_characters="\x00")))
def test_text_without_nul_is_never_flagged(text: str) -> None:
    assert nul_path({"a": [text, {"b": text}]}) is None


@given(st.text(), st.text())
def test_nul_anywhere_is_found(before: str, after: str) -> None:
    assert nul_path({"x": [{"y": before + "\x00" + after}]}) == "x[0].y"
