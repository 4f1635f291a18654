"""The mechanisms that let intent detection generalise beyond its evaluation set.

Typo correction and abbreviations (``lexicon``), value formats (``spans``), dates and
times the shared readers leave out (``when``), broader value vocabularies (``vocab``)
and the cues that keep statements, negations and definitions from becoming calls.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from domain.intent import detect_intents
from domain.intent.known_words import KNOWN_WORDS
from domain.intent.lexicon import VOCABULARY, canonical, correct
from domain.intent.spans import parse
from domain.intent.vocab import find_channel, find_consent_types, find_service, find_template
from domain.intent.when import find_day, find_slot, find_span
from domain.text import fold

NOW = datetime(2026, 5, 13, 10, 15, tzinfo=ZoneInfo("Europe/Bucharest"))  # a Wednesday
TODAY = date(2026, 5, 13)
UUID = "7f3a9c21-1a2b-4c3d-8e9f-001122334455"


def calls(query: str) -> list[tuple[str, dict[str, object]]]:
    return [(c.function, c.arguments) for c in detect_intents(query, now=NOW).calls]


# --- typos and abbreviations ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("progrmeaza", "programeaza"),  # a letter left out
        ("anuelaza", "anuleaza"),  # two letters swapped
        ("cancle", "cancel"),
        ("whatsap", "whatsapp"),
        ("pacinetul", "pacientul"),
        ("disponbile", "disponibile"),
        ("cancl", "cancel"),  # the longest shared beginning wins over "canal"
        ("auleaza", "anuleaza"),  # the first letter is kept
    ],
)
def test_one_typo_away_from_the_vocabulary_is_corrected(typed: str, meant: str | None) -> None:
    assert correct(typed) == meant


@pytest.mark.parametrize("word", ["program", "programul", "cauza", "stare", "start", "canal"])
def test_real_words_are_never_corrected(word: str) -> None:
    assert correct(word) is None
    assert word in KNOWN_WORDS or word in VOCABULARY


def test_short_words_are_left_alone() -> None:
    assert correct("mane") is None


def test_abbreviations_and_typos_are_rewritten_with_a_note_and_offsets() -> None:
    masked = parse("progr pt pat-3 maine, trimte pe wa").masked
    result = canonical(masked)
    assert result.text.startswith("programare pentru ##### maine,")
    assert result.text.endswith("trimite pe whatsapp")
    notes = result.notes(0, len(masked))
    assert "abbreviation: 'pt' read as 'pentru'" in notes
    assert "typo: 'trimte' read as 'trimite'" in notes
    # Offsets outside rewritten words map both ways.
    comma = masked.index(",")
    assert result.text[result.offset(comma)] == ","
    assert result.source_offset(result.offset(comma)) == comma


def test_a_typo_is_named_in_the_evidence() -> None:
    [call] = detect_intents("progrmeaza pat-4 la albire sambata", now=NOW).calls
    assert call.function == "schedule_appointment"
    assert "typo: 'progrmeaza' read as 'programeaza'" in call.evidence


# --- values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("status clinic-1:nurture-sequence:550e8400", "task", "clinic-1:nurture-sequence:550e8400"),
        ("did wf:booking:apt-7 fail?", "task", "wf:booking:apt-7"),
        (f"run {UUID}", "task", UUID),
        ("anuleaza apt_77", "appointment", "apt_77"),
        ("trimite la 721234567 ceva", "phone", "+40721234567"),
        ("trimite la 721 234 567", "phone", "+40721234567"),
    ],
)  # fmt: skip
def test_value_formats(text: str, kind: str, value: str) -> None:
    assert [(s.kind, s.value) for s in parse(text).spans] == [(kind, value)]


def test_clock_times_are_not_workflow_ids() -> None:
    assert parse("programeaza la 10:30").spans == []


# --- dates and times ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("on the 3rd", "2026-06-03"),  # the 3rd has passed this month
        ("pe 20", "2026-05-20"),
        ("în data de 21", "2026-05-21"),
        ("în weekend", "2026-05-16"),
        ("săptămâna viitoare marți", "2026-05-19"),
        ("într-o săptămână", "2026-05-20"),
        ("la sfârșitul lunii", "2026-05-31"),
        ("at the beginning of next month", "2026-06-01"),
        ("25 decembrie", "2026-12-25"),
        ("25.12", "2026-12-25"),
        ("next Tuesday", "2026-05-19"),
    ],
)
def test_days(text: str, day: str) -> None:
    found = find_day(fold(text), TODAY, direction="future")
    assert found is not None and found.value.isoformat() == day


def test_a_weekday_looks_back_in_a_report() -> None:
    found = find_day("since monday", TODAY, direction="past")
    assert found is not None and found.value == date(2026, 5, 11)


@pytest.mark.parametrize(
    ("text", "direction", "first", "last"),
    [
        ("first week of may", "past", "2026-05-01", "2026-05-07"),
        ("prima saptamana din iunie", "future", "2026-06-01", "2026-06-07"),
        ("until friday", "future", "2026-05-13", "2026-05-15"),
        ("in urmatoarele 3 zile", "future", "2026-05-13", "2026-05-15"),
        ("since monday", "past", "2026-05-11", "2026-05-13"),
        ("de la inceputul lunii", "past", "2026-05-01", "2026-05-13"),
        ("trimestrul trecut", "past", "2026-01-01", "2026-03-31"),
        ("pe 2025", "past", "2025-01-01", "2025-12-31"),
        ("pentru aprilie", "past", "2026-04-01", "2026-04-30"),
        ("din ianuarie pana in martie", "past", "2026-01-01", "2026-03-31"),
    ],
)
def test_ranges(text: str, direction: str, first: str, last: str) -> None:
    span = find_span(text, TODAY, direction=direction)  # type: ignore[arg-type]
    assert span is not None
    assert (span.first.isoformat(), span.last.isoformat()) == (first, last)


@pytest.mark.parametrize(
    ("text", "slot"),
    [
        ("la 9", "morning"),
        ("la 3", "afternoon"),  # a clinic's three o'clock is in the afternoon
        ("after 5pm", "evening"),
        ("late afternoon", "evening"),
        ("la pranz", "afternoon"),
        ("la 2 iunie", None),  # a date, not a time
        ("in 10 minute", None),
    ],
)
def test_times_of_day(text: str, slot: str | None) -> None:
    found = find_slot(text)
    assert (found.slot if found else None) == slot


# --- value vocabularies ---------------------------------------------------------------------


def test_consent_types_from_looser_words() -> None:
    assert [t.value for t in find_consent_types(fold("acord pentru date"))] == ["data_processing"]
    assert [t.value for t in find_consent_types("whatsapp promos")] == ["marketing_whatsapp"]
    assert [t.value for t in find_consent_types("acordul pentru sms")] == ["marketing_sms"]
    assert [t.value for t in find_consent_types("opted in to whatsapp reminders")] == [
        "appointment_reminders"
    ]


def test_a_bare_marketing_takes_the_channel_named_elsewhere() -> None:
    text = "inainte sa-i trimit oferte pe whatsapp lui #####, verifica-i acordul de marketing"
    assert [t.value for t in find_consent_types(text)] == ["marketing_whatsapp"]


def test_templates_channels_and_services_by_other_names() -> None:
    assert getattr(find_template("the consent renewal template"), "value", None) == (
        "consent_renewal"
    )
    assert getattr(find_template("the payment receipt"), "value", None) == "payment_confirmation"
    assert getattr(find_channel("a venit de pe instagram"), "value", None) == "web"
    assert getattr(find_channel("from referrals"), "value", None) == "referral"
    found = find_service("a cavity")
    assert found is not None and found.service.value == "filling"


# --- whole queries --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "Nu anula programarea apt-5!",  # negated
        "Don't send anything to 0722 111 222 yet",
        "Am trimis deja mesajul, mersi",  # already done
        "The lead from yesterday already booked herself online",
        "Pacientul pat-3 a venit azi la control și totul e bine",  # a past visit
        "Cine a anulat programarea de ieri?",  # asks about the past
        "What is GDPR?",  # asks what a word means
        "Cât costă o programare la detartraj?",
    ],
)
def test_statements_negations_and_definitions_ask_for_nothing(query: str) -> None:
    assert calls(query) == []


def test_when_can_we_book_asks_for_availability() -> None:
    [(function, arguments)] = calls("Când îl pot programa pe pat-8 la implant săptămâna asta?")
    assert function == "get_available_slots"
    assert arguments["serviceType"] == "implant"


def test_a_reported_message_is_not_one_to_send() -> None:
    [(function, arguments)] = calls(
        "Domnul de la 0744 818 181 ne-a scris pe WhatsApp că vrea all-on-4, evaluează-l te rog"
    )
    assert (function, arguments["channel"]) == ("score_lead", "whatsapp")


def test_a_continuation_of_the_same_request_is_not_a_second_call() -> None:
    assert calls("apt-300 — patient no longer needs it, cancel without notifying her") == [
        ("cancel_appointment", {"appointmentId": "apt-300", "notifyPatient": False})
    ]


def test_moving_an_appointment_books_the_new_day() -> None:
    [(function, arguments)] = calls("Mută programarea lui pat-12 de joi pe vineri")
    assert function == "schedule_appointment"
    assert arguments["preferredDate"] == "2026-05-15"
