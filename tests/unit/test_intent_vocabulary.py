"""Text folding, service names, value vocabularies and the query parser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.intent.spans import MASK, parse, pieces
from domain.intent.vocab import (
    find_channel,
    find_consent_source,
    find_consent_status,
    find_consent_types,
    find_group_by,
    find_priority,
    find_template,
    find_workflow_name,
)
from domain.services import ServiceType, default_duration, find_services
from domain.text import fold, within_one_edit

# --- folding ------------------------------------------------------------------------------


def test_fold_strips_romanian_diacritics_both_spellings() -> None:
    assert (
        fold("Programează CURĂȚARE mâine, ştiţi? Îți") == "programeaza curatare maine, stiti? iti"
    )


@given(st.text())
def test_fold_keeps_offsets_and_is_idempotent(text: str) -> None:
    folded = fold(text)
    assert fold(folded) == folded
    assert len(folded) == len(parse(text).original)


@pytest.mark.parametrize(
    ("word", "target", "expected"),
    [
        ("programeaza", "programeaza", True),
        ("progrmeaza", "programeaza", True),  # deletion
        ("programeazaa", "programeaza", True),  # insertion
        ("programaaza", "programeaza", True),  # substitution
        ("anuelaza", "anuleaza", True),  # swapped neighbours
        ("cancle", "cancel", True),
        ("anulaeza", "programeaza", False),
        ("cancel", "cnacle", False),
    ],
)
def test_within_one_edit(word: str, target: str, expected: bool) -> None:
    assert within_one_edit(word, target) is expected
    assert within_one_edit(target, word) is expected


# --- services -----------------------------------------------------------------------------


def test_default_durations() -> None:
    assert default_duration(ServiceType.IMPLANT) == 90
    assert default_duration("cleaning") == 30
    assert default_duration(ServiceType.CONSULTATION) == 60
    assert all(default_duration(s) in (30, 60, 90) for s in ServiceType)
    with pytest.raises(ValueError):
        default_duration("massage")


@pytest.mark.parametrize(
    ("text", "service"),
    [
        ("curățare", ServiceType.CLEANING),
        ("detartraj", ServiceType.CLEANING),
        ("igienizare", ServiceType.CLEANING),
        ("teeth cleaning", ServiceType.CLEANING),
        ("consultație", ServiceType.CONSULTATION),
        ("control de rutină", ServiceType.CHECKUP),
        ("check-up", ServiceType.CHECKUP),
        ("implanturi", ServiceType.IMPLANT),
        ("All-on-4 pe implanturi", ServiceType.ALL_ON_X),
        ("all on six", ServiceType.ALL_ON_X),
        ("albire", ServiceType.WHITENING),
        ("fațete", ServiceType.VENEERS),
        ("extracție", ServiceType.EXTRACTION),
        ("scoate o măsea", ServiceType.EXTRACTION),
        ("plombă", ServiceType.FILLING),
        ("aparat dentar", ServiceType.ORTHODONTICS),
        ("tratament de canal", ServiceType.ROOT_CANAL),
        ("root canal", ServiceType.ROOT_CANAL),
        ("coroană", ServiceType.CROWN),
        ("curatre", ServiceType.CLEANING),  # one typo
        ("extractei", ServiceType.EXTRACTION),
    ],
)
def test_service_names(text: str, service: ServiceType) -> None:
    [first, *_] = find_services(fold(text))
    assert first.service is service


def test_channel_words_are_not_root_canals() -> None:
    assert find_services(fold("leaduri pe canale")) == []


def test_services_come_in_order_of_mention() -> None:
    found = find_services(fold("consultație pentru implant"))
    assert [m.service for m in found] == [ServiceType.CONSULTATION, ServiceType.IMPLANT]


# --- vocabularies -------------------------------------------------------------------------


def value(found: object) -> str | None:
    return getattr(found, "value", None)


@pytest.mark.parametrize(
    ("text", "channel"),
    [
        ("de pe WhatsApp", "whatsapp"),
        ("a sunat la clinică", "voice"),
        ("din formularul web", "web"),
        ("venit prin recomandare", "referral"),
        ("telefon ##########, de pe site", "web"),  # "telefon <number>" names the number
        ("nimic", None),
    ],
)
def test_channels(text: str, channel: str | None) -> None:
    assert value(find_channel(fold(text))) == channel


@pytest.mark.parametrize(
    ("text", "types"),
    [
        ("acord pentru marketing pe WhatsApp", ["marketing_whatsapp"]),
        ("sms-uri de marketing", ["marketing_sms"]),
        ("email marketing", ["marketing_email"]),
        ("marketing", ["marketing_whatsapp", "marketing_email", "marketing_sms"]),
        ("prelucrarea datelor", ["data_processing"]),
        ("consimțământ GDPR", ["data_processing"]),
        ("reamintiri de programare", ["appointment_reminders"]),
        ("treatment updates", ["treatment_updates"]),
        ("partajarea datelor cu terți", ["third_party_sharing"]),
    ],
)
def test_consent_types(text: str, types: list[str]) -> None:
    assert [t.value for t in find_consent_types(fold(text))] == types


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("și-a dat acordul", "granted"),
        ("a fost de acord", "granted"),
        ("a răspuns DA", "granted"),
        ("nu e de acord", "denied"),
        ("a refuzat", "denied"),
        ("și-a retras acordul", "withdrawn"),
        ("STOP", "withdrawn"),
        ("revoked", "withdrawn"),
        ("declined", "denied"),
    ],
)
def test_consent_status(text: str, status: str) -> None:
    assert value(find_consent_status(fold(text))) == status


def test_consent_source_is_not_the_marketing_channel() -> None:
    text = fold("marketing pe whatsapp, dat la recepție")
    assert value(find_consent_source(text, find_consent_types(text))) == "in_person"
    only_channel = fold("marketing pe whatsapp")
    assert find_consent_source(only_channel, find_consent_types(only_channel)) is None


@pytest.mark.parametrize(
    ("text", "template"),
    [
        ("confirmarea programării", "appointment_confirmation"),
        ("confirmarea plății", "payment_confirmation"),
        ("reminder cu 2 ore înainte", "appointment_reminder_2h"),
        ("reminder", "appointment_reminder_24h"),
        ("mesajul de bun venit", "welcome_first_contact"),
        ("oferta de consultație", "consultation_offer"),
        ("follow-up după tratament", "treatment_follow_up"),
        ("template-ul recall_reminder", "recall_reminder"),
    ],
)
def test_templates(text: str, template: str) -> None:
    assert value(find_template(fold(text))) == template


def test_workflows_groupings_and_priorities() -> None:
    assert value(find_workflow_name(fold("secvența de nurturing"))) == "nurture-sequence"
    assert value(find_workflow_name(fold("booking agent"))) == "booking-agent"
    assert value(find_workflow_name(fold("parcursul pacientului"))) == "patient-journey"
    assert value(find_workflow_name(fold("lead scoring"))) == "lead-scoring"
    assert value(find_group_by(fold("grupat pe zile"))) == "day"
    assert value(find_group_by(fold("pe luni"))) == "month"
    assert value(find_group_by(fold("by classification"))) == "classification"
    assert value(find_priority(fold("prioritate scăzută"))) == "low"
    assert value(find_priority(fold("high priority"))) == "high"


# --- the parser -----------------------------------------------------------------------------


def test_parse_finds_and_masks_values() -> None:
    parsed = parse("Trimite lui 0721 234 567 „Vă așteptăm” despre apt-12, pat-3 și a@b.ro")
    kinds = {s.kind: s.value for s in parsed.spans}
    assert kinds == {
        "phone": "+40721234567",
        "quote": "Vă așteptăm",
        "appointment": "apt-12",
        "patient": "pat-3",
        "email": "a@b.ro",
    }
    for span in parsed.spans:
        assert set(parsed.masked[span.start : span.end]) == {MASK}
    assert "asteptam" not in parsed.masked


def test_romanian_articles_are_not_ids() -> None:
    assert parse("statusul workflow-ului și task-ul").spans == []


def test_apostrophes_are_not_quotes() -> None:
    assert parse("What's the status? Don't cancel it").spans == []


def test_pieces_cut_at_conjunctions_and_punctuation() -> None:
    masked = parse("Anulează apt-1, apoi programează și trimite; gata. Mulțumesc").masked
    texts = [masked[s:e] for s, e in pieces(masked)]
    assert texts == ["anuleaza #####", "programeaza", "trimite", "gata", "multumesc"]
