"""Argument extraction: workflow payloads, patient fields, consent sources, times of day,
workflow ids, free text that ends where the next request starts, message language."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from domain.intent import IntentContext, detect_intents
from domain.intent.spans import parse
from domain.intent.vocab import (
    find_consent_source,
    find_consent_types,
    find_language,
    find_lead_class,
)
from domain.intent.when import find_slot
from domain.text import fold

NOW = datetime(2026, 5, 13, 10, 15, tzinfo=ZoneInfo("Europe/Bucharest"))  # a Wednesday


def calls(query: str, context: IntentContext | None = None) -> list[tuple[str, dict[str, Any]]]:
    return [
        (c.function, c.arguments) for c in detect_intents(query, now=NOW, context=context).calls
    ]


def value(found: object) -> str | None:
    return getattr(found, "value", None)


# --- trigger_workflow payloads ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "workflow", "payload"),
    [
        (
            "Pornește nurture-sequence pentru 0721 234 567, e un lead călduț",
            "nurture-sequence",
            {"phone": "+40721234567", "classification": "WARM"},
        ),
        (
            "Start the nurture sequence for lead-9, cold lead",
            "nurture-sequence",
            {"leadId": "lead-9", "classification": "COLD"},
        ),
        (
            "Rulează lead-scoring pentru 0744 333 222 venit pe WhatsApp: vreau fațete, cât costă?",
            "lead-scoring",
            {
                "phone": "+40744333222",
                "channel": "whatsapp",
                "messages": [{"role": "user", "content": "vreau fațete, cât costă?"}],
            },
        ),
        (
            "Start the patient journey for pat-12 after his implant",
            "patient-journey",
            {"patientId": "pat-12", "procedure": "implant"},
        ),
        (
            "Lansează booking-agent pentru pat-5 la albire mâine dimineață cu doc-2",
            "booking-agent",
            {
                "patientId": "pat-5",
                "serviceType": "whitening",
                "preferredDate": "2026-05-14",
                "preferredTimeSlot": "morning",
                "doctorId": "doc-2",
            },
        ),
    ],
)
def test_each_workflow_takes_its_own_payload_fields(
    query: str, workflow: str, payload: dict[str, Any]
) -> None:
    [(function, arguments)] = calls(query)
    assert function == "trigger_workflow"
    assert arguments["workflow"] == workflow
    assert arguments["payload"] == payload


def test_a_lead_score_names_the_nurture_classification() -> None:
    assert value(find_lead_class("scor 3")) == "WARM"
    assert value(find_lead_class("scored 2/5")) == "COLD"
    assert find_lead_class("scor 5") is None  # HOT has no nurture sequence
    assert find_lead_class("nimic") is None


# --- update_patient ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "updates"),
    [
        ("Data nașterii lui pat-9 e 3 martie 1985", {"dateOfBirth": "1985-03-03"}),
        ("pat-9's birthday is March 3rd 1985", {"dateOfBirth": "1985-03-03"}),
        ("Pacientul pat-9 s-a născut pe 03.03.1985", {"dateOfBirth": "1985-03-03"}),
        ("Data de naștere a lui pat-9: 3.3.85", {"dateOfBirth": "1985-03-03"}),  # not 2085
        (
            "Numele pacientului pat-9 este Maria Popescu",
            {"firstName": "Maria", "lastName": "Popescu"},
        ),
        (
            "Update pat-9 - first name Andrei, last name Pop",
            {"firstName": "Andrei", "lastName": "Pop"},
        ),
        ("Notează că pat-9 preferă dimineața", {"notes": "preferă dimineața"}),
        ("Adaugă etichetele VIP și implant la pat-9", {"tags": ["VIP", "implant"]}),
        ("Add the VIP tag to pat-9", {"tags": ["VIP"]}),
        ("Pune-i eticheta 'pacient dificil' lui pat-9", {"tags": ["pacient dificil"]}),
    ],
)
def test_patient_fields_said_directly_or_indirectly(query: str, updates: dict[str, Any]) -> None:
    assert calls(query) == [("update_patient", {"patientId": "pat-9", "updates": updates})]


def test_asking_a_field_is_a_look_up_not_an_update() -> None:
    assert calls("Care e data nașterii lui pat-9?") == [("get_patient", {"patientId": "pat-9"})]
    assert calls("My name is Ana and I'm new here") == []


# --- free text ends where the next request starts ------------------------------------------------


def test_a_note_stops_before_the_next_request_and_its_date_stays_with_it() -> None:
    assert calls("Notează la pat-3 că e alergic și programează-l mâine la control") == [
        ("update_patient", {"patientId": "pat-3", "updates": {"notes": "e alergic"}}),
        (
            "schedule_appointment",
            {"patientId": "pat-3", "serviceType": "checkup", "preferredDate": "2026-05-14"},
        ),
    ]


def test_a_message_keeps_the_values_inside_it_and_its_own_clauses() -> None:
    [(_, sent)] = calls("Scrie-i lui 0721 456 789 că programarea apt-5 a fost mutată")
    assert sent["message"] == "programarea apt-5 a fost mutată"
    [(_, sent)] = calls("Send 0721 456 789 on WhatsApp: please confirm and send us your ID")
    assert sent["message"] == "please confirm and send us your ID"


# --- consent sources ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "source"),
    [
        ("si-a dat acordul la telefon", "phone_call"),
        ("agreed by phone", "phone_call"),
        ("a bifat in formularul online", "web_form"),
        ("through the web form", "web_form"),
        ("semnat la receptie", "in_person"),
        ("in person at the clinic", "in_person"),
        ("a raspuns da pe whatsapp", "whatsapp"),
        ("prin email", "email"),
        ("la telefonul ##########", None),  # names the number, not how consent was given
    ],
)
def test_consent_sources_are_canonical(text: str, source: str | None) -> None:
    assert value(find_consent_source(text, find_consent_types(text))) == source


# --- times of day -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "slot"),
    [
        ("diseara", "evening"),
        ("dupa ora 17", "evening"),
        ("after 5pm", "evening"),
        ("late afternoon", "evening"),
        ("dupa-amiaza tarziu", "evening"),
        ("pe inserat", "evening"),
        ("la 18", "evening"),
        ("at 6pm", "evening"),
        ("at 6 o'clock in the evening", "evening"),
        ("any time after 5", "evening"),
        ("la 7 dimineata", "morning"),  # the part of the day decides the clock
        ("mornings only", "morning"),
        ("inainte de ora 17", "afternoon"),  # before five ends in the afternoon
        ("before 12", "morning"),
        ("early afternoon", "afternoon"),
        ("afternoons work best", "afternoon"),
        ("intre 9 si 11", "morning"),
    ],
)
def test_every_phrasing_of_a_time_of_day(text: str, slot: str) -> None:
    found = find_slot(fold(text))
    assert found is not None and found.slot == slot


# --- workflow ids -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "task"),
    [
        ("Care e statusul pentru booking-apt-4f2c?", "booking-apt-4f2c"),
        ("Ce stare are fluxul clinic-1:booking:apt-9?", "clinic-1:booking:apt-9"),
        ("Verifica statusul task-ului 'booking-apt-77'", "booking-apt-77"),
        ("What's the status of workflow 7781?", "7781"),
        ("status for job abc123", "abc123"),
        (
            "Is task “b7e2c1d4-0a9f-4c3b-8d2e-5f6a7b8c9d0e” done?",
            "b7e2c1d4-0a9f-4c3b-8d2e-5f6a7b8c9d0e",
        ),
    ],
)
def test_workflow_ids_of_any_shape(query: str, task: str) -> None:
    assert calls(query) == [("get_workflow_status", {"taskId": task})]


def test_a_quoted_id_is_that_id_and_patients_are_never_workflow_ids() -> None:
    assert [(s.kind, s.value) for s in parse("Anulează 'apt-5'").spans] == [
        ("appointment", "apt-5")
    ]
    assert [s.kind for s in parse("starea pacientului pat-12").spans] == ["patient"]


# --- message language ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("in engleza", "en"),
        ("in english", "en"),
        ("auf deutsch", "de"),
        ("in limba germana", "de"),
        ("in romana", "ro"),
        ("confirmarea programarii", None),
    ],
)
def test_language_only_when_said(text: str, language: str | None) -> None:
    assert value(find_language(text)) == language


def test_a_template_language_is_never_guessed() -> None:
    [(_, said)] = calls("Send the appointment reminder to 0733 222 111 on WhatsApp in English")
    assert said["language"] == "en"
    [(_, unsaid)] = calls("Send the appointment reminder to 0733 222 111 on WhatsApp")
    assert "language" not in unsaid
