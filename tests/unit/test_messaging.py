"""The WhatsApp template catalogue, consent gating, parameter checks and reply parsing."""

from __future__ import annotations

import itertools
import re
from datetime import timedelta
from typing import Any

import pytest

from domain.errors import InvalidArguments
from domain.events import CONSENT_TYPES
from domain.messaging import (
    LANGUAGES,
    TEMPLATES,
    cooldown_for,
    get_template,
    parse_consent_reply,
    render,
    required_consent,
    validate_params,
)

ALL_TEMPLATES = {
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
}

CONFIRMATION = {"name": "Ana", "date": "05.03.2025", "time": "14:30", "location": "Str. Lunii 3"}


def _errors(exc: pytest.ExceptionInfo[InvalidArguments]) -> dict[str, dict[str, Any]]:
    return {e["path"]: e for e in exc.value.details["errors"]}


def _sample(kind: str) -> str:
    return {
        "text": "Ana",
        "date": "05.03.2025",
        "time": "09:00",
        "amount": "1500.50",
        "currency": "RON",
    }[kind]


def test_catalogue_has_every_template_in_every_language() -> None:
    assert set(TEMPLATES) == ALL_TEMPLATES
    for template in TEMPLATES.values():
        assert set(template.bodies) == set(LANGUAGES) == {"ro", "en", "de"}
        for body in template.bodies.values():
            placeholders = set(re.findall(r"\{(\w+)\}", body))
            assert placeholders == set(template.params), (template.name, body)


def test_appointment_confirmation_parameters_are_date_time_location() -> None:
    template = get_template("appointment_confirmation")
    assert template.params == ("name", "date", "time", "location")
    assert template.param_kinds["date"] == "date"
    assert template.param_kinds["time"] == "time"


@pytest.mark.parametrize(
    ("name", "category", "consent"),
    [
        ("hot_lead_acknowledgment", "marketing", "marketing_whatsapp"),
        ("consultation_offer", "marketing", "marketing_whatsapp"),
        ("welcome_first_contact", "marketing", "marketing_whatsapp"),
        ("appointment_reminder_24h", "reminder", "appointment_reminders"),
        ("appointment_reminder_2h", "reminder", "appointment_reminders"),
        ("recall_reminder", "reminder", "appointment_reminders"),
        ("appointment_confirmation", "utility", "data_processing"),
        ("payment_confirmation", "utility", "data_processing"),
        ("consent_renewal", "utility", "data_processing"),
        ("treatment_follow_up", "utility", "treatment_updates"),
    ],
)
def test_category_and_required_consent(name: str, category: str, consent: str) -> None:
    assert get_template(name).category == category
    assert required_consent(name) == consent
    assert consent in CONSENT_TYPES


def test_free_text_needs_data_processing() -> None:
    assert required_consent(None) == "data_processing"


def test_unknown_template_is_invalid_arguments_at_template_name() -> None:
    with pytest.raises(InvalidArguments) as exc:
        required_consent("black_friday_blast")
    assert exc.value.code == "INVALID_ARGUMENTS"
    assert "templateName" in _errors(exc)


def test_the_nurture_cadences_fit_between_their_template_cooldowns() -> None:
    """Each cadence's touches (consultation_offer) are further apart than its cooldown."""
    from workflows.catalogue import CADENCES

    for cadence in CADENCES.values():
        gaps = [b - a for a, b in itertools.pairwise(cadence)]
        assert min(gaps) * 3600 > cooldown_for("consultation_offer").total_seconds()


def test_cooldowns_are_data() -> None:
    assert cooldown_for("consultation_offer") == timedelta(days=1)  # the nurture touch
    assert cooldown_for("hot_lead_acknowledgment") == timedelta(days=7)
    assert cooldown_for("appointment_reminder_24h") == timedelta(0)
    assert cooldown_for("appointment_reminder_2h") == timedelta(0)
    assert cooldown_for("appointment_confirmation") == timedelta(0)
    for template in TEMPLATES.values():
        if template.category == "marketing":  # every marketing template has one
            assert template.cooldown >= timedelta(days=1)


@pytest.mark.parametrize("language", ["ro", "en", "de"])
def test_every_template_renders_with_valid_params(language: str) -> None:
    for template in TEMPLATES.values():
        params = {name: _sample(template.param_kinds[name]) for name in template.params}
        text = render(template.name, params, language)
        assert "{" not in text
        for value in params.values():
            assert value in text


def test_render_fills_the_romanian_confirmation() -> None:
    text = render("appointment_confirmation", CONFIRMATION, "ro")
    assert text == (
        "Bună, Ana! Programarea dumneavoastră este confirmată pentru 05.03.2025, ora 14:30, "
        "la Str. Lunii 3."
    )


def test_validate_returns_provider_order_from_mapping_or_list() -> None:
    ordered = ["Ana", "05.03.2025", "14:30", "Str. Lunii 3"]
    assert validate_params("appointment_confirmation", CONFIRMATION) == ordered
    assert validate_params("appointment_confirmation", ordered) == ordered
    reversed_mapping = dict(reversed(list(CONFIRMATION.items())))
    assert validate_params("appointment_confirmation", reversed_mapping) == ordered


def test_validate_reports_every_problem_with_its_path() -> None:
    params = {"name": "Ana", "date": "31.02.2025", "time": "24:00", "coupon": "X"}
    with pytest.raises(InvalidArguments) as exc:
        validate_params("appointment_confirmation", params, "fr")
    errors = _errors(exc)
    assert set(errors) == {
        "language",
        "templateParams.date",
        "templateParams.time",
        "templateParams.location",
        "templateParams.coupon",
    }
    assert "calendar date" in errors["templateParams.date"]["message"]
    assert "DD.MM.YYYY" in errors["templateParams.date"]["expected"]
    assert "HH:mm" in errors["templateParams.time"]["expected"]
    assert "missing" in errors["templateParams.location"]["message"]


@pytest.mark.parametrize(
    ("date", "time"),
    [
        ("2025-03-05", "14:30"),
        ("5.3.2025", "14:30"),
        ("05.03.2025", "2:30 PM"),
        ("05.03.2025", "14.30"),
    ],
)
def test_date_and_time_formats_are_strict(date: str, time: str) -> None:
    with pytest.raises(InvalidArguments):
        validate_params("appointment_confirmation", {**CONFIRMATION, "date": date, "time": time})


def test_list_params_report_index_paths_and_extras() -> None:
    with pytest.raises(InvalidArguments) as exc:
        validate_params("appointment_reminder_2h", ["Ana", "25:00", "Clinica", "extra"])
    assert set(_errors(exc)) == {"templateParams[1]", "templateParams[3]"}


@pytest.mark.parametrize("bad", ["two\nlines", "tab\there", "too      many spaces", "   "])
def test_parameters_whatsapp_would_refuse(bad: str) -> None:
    with pytest.raises(InvalidArguments) as exc:
        validate_params("treatment_follow_up", {"name": "Ana", "procedure": bad})
    assert "templateParams.procedure" in _errors(exc)


def test_payment_amount_and_currency() -> None:
    good = {"name": "Ana", "amount": "1500,50", "currency": "EUR", "date": "01.02.2025"}
    assert validate_params("payment_confirmation", good)[1] == "1500,50"
    for amount in ("-5", "0", "abc", "1.234", "NaN"):
        with pytest.raises(InvalidArguments):
            validate_params("payment_confirmation", {**good, "amount": amount})
    with pytest.raises(InvalidArguments):
        validate_params("payment_confirmation", {**good, "currency": "USD"})


def test_params_must_be_an_object_or_a_list() -> None:
    with pytest.raises(InvalidArguments) as exc:
        validate_params("consent_renewal", "Ana, 01.01.2026")
    assert "templateParams" in _errors(exc)


@pytest.mark.parametrize(
    "reply",
    [
        "DA",
        "da",
        "Da!",
        "Da, sunt de acord",
        "sunt de acord",
        "Sunt de acord, mulțumesc",
        "YES",
        "yes please",
        "Accept",
        "accept",
        "Accept.",
        "Acceptă",
        "ja",
        "Da ✅",
    ],
)
def test_grants(reply: str) -> None:
    assert parse_consent_reply(reply) == "granted"


@pytest.mark.parametrize(
    "reply",
    [
        "NU",
        "nu",
        "Nu.",
        "NO",
        "no thanks",
        "Refuz",
        "refuz!",
        "STOP",
        "stop",
        "Nu sunt de acord",
        "NU ACCEPT",
        "Nu, mulțumesc",
        "nein",
    ],
)
def test_withdrawals(reply: str) -> None:
    assert parse_consent_reply(reply) == "withdrawn"


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "Bună ziua",
        "Nu pot veni mâine",
        "Da, dar nu acum",
        "Cât costă un implant?",
        "da nu",
        "stopati programarea de marti",
    ],
)
def test_anything_else_is_not_a_decision(reply: str) -> None:
    assert parse_consent_reply(reply) is None


def test_diacritics_and_cedilla_forms_fold_alike() -> None:
    assert parse_consent_reply("Sunt de acord, mulţumesc") == "granted"
    assert parse_consent_reply("Sunt de acord, mulțumesc") == "granted"
    assert parse_consent_reply("Sunt de acord, multumesc") == "granted"
