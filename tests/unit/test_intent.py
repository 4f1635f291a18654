"""Intent detection: DOMAIN.md examples, plans, missing arguments, context and invariants."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.intent import PRIORITY, IntentContext, detect_intents, detect_language

NOW = datetime(2026, 5, 13, 10, 15, tzinfo=ZoneInfo("Europe/Bucharest"))  # a Wednesday
TOMORROW = "2026-05-14"
CASES = yaml.safe_load((Path(__file__).parent / "intent_cases.yaml").read_text("utf-8"))


def detect(query: str, **context: str):  # type: ignore[no-untyped-def]
    return detect_intents(query, now=NOW, context=IntentContext(**context) if context else None)


# --- the examples DOMAIN.md promises ------------------------------------------------------


def test_schedule_a_cleaning_for_tomorrow() -> None:
    result = detect("Programează o curățare pentru mâine")
    [call] = result.calls
    assert call.function == "schedule_appointment"
    assert call.arguments == {"serviceType": "cleaning", "preferredDate": TOMORROW}
    assert call.missing == ["patientId"]


def test_tomorrow_is_the_clinic_day_not_the_utc_day() -> None:
    late_evening_utc = datetime(2026, 5, 13, 22, 30, tzinfo=UTC)  # already 14 May in Bucharest
    result = detect_intents("Programează o curățare pentru mâine", now=late_evening_utc)
    assert result.calls[0].arguments["preferredDate"] == "2026-05-15"


def test_score_a_whatsapp_lead() -> None:
    [call] = detect("Scorează leadul +40721234567 de pe WhatsApp").calls
    assert call.function == "score_lead"
    assert call.arguments == {"phone": "+40721234567", "channel": "whatsapp"}
    assert call.missing == []


def test_cancel_an_appointment() -> None:
    [call] = detect("Anulează programarea apt-123").calls
    assert (call.function, call.arguments) == ("cancel_appointment", {"appointmentId": "apt-123"})


def test_leads_this_month_by_channel() -> None:
    [call] = detect("Câte leaduri am avut luna asta pe canale?").calls
    assert call.function == "get_lead_analytics"
    assert call.arguments == {
        "groupBy": "channel",
        "startDate": "2026-05-01",
        "endDate": "2026-05-31",
    }


def test_marketing_consent_question() -> None:
    [call] = detect("Are pacientul 0721234567 acord pentru marketing pe WhatsApp?").calls
    assert call.function == "check_consent"
    assert call.arguments == {"phone": "+40721234567", "consentTypes": ["marketing_whatsapp"]}


def test_two_requests_become_a_two_step_plan_in_order() -> None:
    result = detect(
        "Programează o curățare pentru mâine și trimite-i confirmare pe WhatsApp",
        patientId="pat-1",
        phone="0721 234 567",
    )
    assert result.functions == ["schedule_appointment", "send_whatsapp"]
    schedule, send = result.calls
    assert schedule.arguments["patientId"] == "pat-1"
    assert send.arguments == {"to": "+40721234567", "templateName": "appointment_confirmation"}
    assert result.confidence == min(c.confidence for c in result.calls)


# --- arguments, missing values and context ----------------------------------------------


def test_missing_required_arguments_are_named() -> None:
    [call] = detect("Trimite un mesaj pe WhatsApp").calls
    assert call.function == "send_whatsapp"
    assert call.missing == ["to", "message|templateName"]


def test_context_fills_the_patient_and_is_named_in_the_evidence() -> None:
    [call] = detect("Programează-l la implant luni dimineață", patientId="pat-9").calls
    assert call.arguments["patientId"] == "pat-9"
    assert call.arguments["preferredTimeSlot"] == "morning"
    assert call.missing == []
    assert "patientId='pat-9' (context)" in call.evidence


def test_a_value_in_the_text_beats_the_context() -> None:
    [call] = detect("Anulează apt-1 pentru pat-2", patientId="pat-999").calls
    assert call.arguments == {"appointmentId": "apt-1"}
    [lookup] = detect("Caută pacientul pat-2", patientId="pat-999").calls
    assert lookup.arguments == {"patientId": "pat-2"}


def test_words_inside_a_quoted_message_trigger_nothing() -> None:
    result = detect("Trimite-i lui 0721234567 mesajul „anulează programarea și sună-ne”")
    [call] = result.calls
    assert call.function == "send_whatsapp"
    assert call.arguments["message"] == "anulează programarea și sună-ne"


def test_ids_keep_their_original_spelling() -> None:
    [call] = detect("Care e statusul workflow-ului WF-12ab?").calls
    assert call.arguments == {"taskId": "WF-12ab"}


def test_evidence_explains_the_confidence() -> None:
    [call] = detect("Anulează programarea apt-123").calls
    assert any("cancel verb" in e and "anuleaza" in e for e in call.evidence)
    assert any("appointmentId='apt-123'" in e for e in call.evidence)
    assert 0.5 <= call.confidence <= 1.0


# --- nothing detected, thresholds, candidates --------------------------------------------


def test_small_talk_detects_nothing() -> None:
    result = detect("Bună ziua, ce mai faceți?")
    assert result.calls == []
    assert all(c.confidence < 0.5 for c in result.candidates)


def test_below_threshold_gives_candidates_for_suggestions() -> None:
    result = detect_intents("Anulează programarea apt-123", now=NOW, threshold=0.99)
    assert result.calls == []
    assert result.candidates[0].function == "cancel_appointment"
    assert result.confidence == result.candidates[0].confidence < 0.99


def test_candidates_are_ordered_by_confidence_then_fixed_priority() -> None:
    result = detect("pacient programare lead whatsapp status acord")
    keys = [(-c.confidence, PRIORITY.index(c.function)) for c in result.candidates]
    assert keys == sorted(keys)
    assert len(result.candidates) <= 3


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        detect_intents("Programează o curățare mâine", now=datetime(2026, 5, 13, 10, 0))


def test_result_serialises_with_camel_case() -> None:
    data = detect("Anulează apt-5", patientId="pat-1").model_dump(by_alias=True, mode="json")
    assert set(data) == {"calls", "confidence", "language", "candidates"}
    assert set(data["calls"][0]) == {"function", "arguments", "missing", "confidence", "evidence"}
    assert IntentContext.model_validate({"patientId": "p", "phone": "x"}).patient_id == "p"


# --- language -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "language"),
    [
        ("Programează o curățare pentru mâine", "ro"),
        ("programeaza o curatare pentru maine", "ro"),
        ("Book a cleaning for tomorrow", "en"),
        ("Cancel the appointment apt-5 and notify the patient", "en"),
    ],
)
def test_language(query: str, language: str) -> None:
    assert detect(query).language == language


def test_language_tie_goes_to_context_then_romanian() -> None:
    assert detect_language("apt-5") == "ro"
    assert detect_language("apt-5", IntentContext(language="en")) == "en"
    assert detect_language("apt-5", IntentContext(language="de")) == "ro"


# --- properties ---------------------------------------------------------------------------

_QUERIES = [c["query"] for c in CASES["cases"]]


def _strip_diacritics(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize(
        "NFC", "".join(c for c in decomposed if not unicodedata.combining(c))
    )


@settings(max_examples=150)
@given(st.sampled_from(_QUERIES))
def test_detection_does_not_depend_on_diacritics(query: str) -> None:
    written = detect(query)
    plain = detect(_strip_diacritics(query))
    assert plain.functions == written.functions
    assert [c.confidence for c in plain.calls] == [c.confidence for c in written.calls]
    for a, b in zip(written.calls, plain.calls, strict=True):
        assert a.missing == b.missing
        assert set(a.arguments) == set(b.arguments)


_TO_CEDILLA = str.maketrans("șțȘȚ", "şţŞŢ")
_TO_COMMA = str.maketrans("şţŞŢ", "șțȘȚ")


@settings(max_examples=150)
@given(st.sampled_from(_QUERIES))
def test_cedilla_letters_read_like_comma_below_letters(query: str) -> None:
    legacy = detect(query.translate(_TO_CEDILLA)).model_dump_json()
    # Quoted messages stay verbatim, so compare after spelling them one way.
    assert legacy.translate(_TO_COMMA) == detect(query).model_dump_json().translate(_TO_COMMA)


_VOCABULARY = [
    "programează", "anulează", "trimite", "scorează", "caută", "actualizează", "câte leaduri",
    "sloturi libere", "acord", "retrage", "status", "pornește", "workflow", "pacientul",
    "mâine", "luni", "luna asta", "pe canale", "curățare", "implant", "whatsapp", "și",
    "apoi", "and", "then", ",", "?", "apt-7", "pat-3", "wf-9", "lead-4", "0721 234 567",
    "ana@x.ro", "'salut'", "book", "cancel", "send", "check", "consent", "next week",
]  # fmt: skip


@settings(max_examples=200)
@given(st.lists(st.sampled_from(_VOCABULARY), max_size=12).map(" ".join))
def test_detection_is_deterministic_and_well_formed(query: str) -> None:
    result = detect(query)
    assert detect(query) == result
    for call in result.calls:
        assert 0.5 <= call.confidence <= 1.0
        assert call.evidence
        assert all("|" in m or m not in call.arguments for m in call.missing)
    assert 0.0 <= result.confidence <= 1.0
    assert result.language in ("ro", "en")


@given(st.text(max_size=120))
def test_any_text_is_handled(query: str) -> None:
    result = detect(query)
    assert all(0.5 <= c.confidence <= 1.0 for c in result.calls)
