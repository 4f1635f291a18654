"""Rule-based lead scoring (DOMAIN.md "Lead scoring")."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.scoring import (
    Channel,
    Classification,
    LeadMessage,
    LeadScore,
    SuggestedAction,
    UtmParams,
    classify,
    score_lead,
)
from domain.services import ServiceType


def user(*texts: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": t} for t in texts]


def score(*texts: str) -> LeadScore:
    return score_lead(user(*texts), Channel.WHATSAPP)


@pytest.mark.parametrize(
    "text",
    [
        "Bună ziua, cât costă un All-on-4?",
        "buna, vreau all on 6, ce pret are?",
        "Is All-on-X available with financing?",
        "Aș vrea all-on-4 în rate",
        "all on x, buget 8000 euro",
    ],
)
def test_all_on_x_with_a_budget_word_is_five(text: str) -> None:
    result = score(text)
    assert result.score == 5
    assert result.classification is Classification.HOT
    assert result.suggested_action is SuggestedAction.SCHEDULE_APPOINTMENT
    assert result.procedure_interest is ServiceType.ALL_ON_X
    assert any("All-on-X" in r for r in result.reasons)


def test_all_on_x_alone_is_four() -> None:
    result = score("Mă interesează procedura All on 4")
    assert (result.score, result.classification) == (4, Classification.HOT)
    assert result.procedure_interest is ServiceType.ALL_ON_X


@pytest.mark.parametrize(
    ("text", "interest"),
    [
        ("Vreau un implant dentar", ServiceType.IMPLANT),
        ("Sunt interesată de fațete", ServiceType.VENEERS),
        ("I'd like teeth whitening", ServiceType.WHITENING),
        ("Trebuie să-mi fac o extracție", ServiceType.EXTRACTION),
    ],
)
def test_premium_procedures_are_at_least_three(text: str, interest: ServiceType) -> None:
    result = score(text)
    assert result.score == 3
    assert result.classification is Classification.WARM
    assert result.suggested_action is SuggestedAction.SEND_FOLLOW_UP
    assert result.procedure_interest is interest


def test_urgency_and_budget_each_add_one_up_to_five() -> None:
    assert score("implant, am dureri").score == 4
    assert score("implant, cât costă?").score == 4
    assert score("implant urgent, cât costă?").score == 5
    assert score("all on 4 urgent, cat costa, nu mai pot").score == 5


def test_urgency_words_count_in_romanian_and_english() -> None:
    for text in ("albire mâine", "albire azi", "albire cât mai repede", "whitening asap"):
        assert score(text).score == 4, text


def test_a_plain_dental_need_is_cold() -> None:
    result = score("Bună, aș vrea o programare la curățare")
    assert (result.score, result.classification) == (2, Classification.COLD)
    assert result.suggested_action is SuggestedAction.NURTURE_SEQUENCE
    assert result.procedure_interest is ServiceType.CLEANING


def test_nothing_dental_is_unqualified_and_asks_for_more() -> None:
    result = score("Salut")
    assert (result.score, result.classification) == (1, Classification.UNQUALIFIED)
    assert result.suggested_action is SuggestedAction.REQUEST_MORE_INFO
    assert result.procedure_interest is None
    assert result.reasons


def test_not_interested_is_unqualified() -> None:
    result = score("Vreau implant", "De fapt nu sunt interesat, mulțumesc")
    assert result.score == 1
    assert result.suggested_action is SuggestedAction.MARK_UNQUALIFIED
    assert any("not interested" in r for r in result.reasons)


@pytest.mark.parametrize(
    "text",
    [
        "Am avut un accident și mi-am spart un dinte",
        "Copilul a căzut și sângerează",
        "e o urgență medicală",
        "I fell and broke my tooth",
    ],
)
def test_emergencies_say_call_112_and_go_to_a_human(text: str) -> None:
    result = score(text)
    assert result.emergency
    assert result.suggested_action is SuggestedAction.TRANSFER_TO_HUMAN
    assert any("112" in r for r in result.reasons)


def test_pain_alone_is_urgency_not_emergency() -> None:
    result = score("Am dureri mari de măsea")
    assert not result.emergency
    assert result.score == 3  # dental need 2 + urgency 1


def test_only_user_messages_are_evidence() -> None:
    messages = [
        {"role": "assistant", "content": "Oferim All-on-4 cu finanțare, cât de urgent e?"},
        {"role": "user", "content": "Bună"},
    ]
    assert score_lead(messages, "web").score == 1


def test_no_user_message_at_all() -> None:
    result = score_lead([], Channel.REFERRAL)
    assert result.score == 1
    assert result.confidence == 0.2
    assert result.suggested_action is SuggestedAction.REQUEST_MORE_INFO


def test_confidence_grows_with_evidence() -> None:
    weak = score("programare").confidence
    medium = score("implant, cât costă?").confidence
    strong = score("implant urgent, cât costă?").confidence
    assert 0 < weak < medium < strong <= 0.95


def test_lead_message_objects_and_utm_are_accepted() -> None:
    messages = [LeadMessage(role="user", content="Vreau fațete")]
    result = score_lead(messages, Channel.WEB, UtmParams(source="facebook", campaign="smile"))
    assert result.score == 3
    assert score_lead(messages, "web", {"source": "google"}).score == 3


def test_invalid_inputs_are_rejected() -> None:
    with pytest.raises(ValueError):
        score_lead(user("implant"), "fax")
    with pytest.raises(ValidationError):
        score_lead([{"role": "user", "content": "x" * 2001}], "web")
    with pytest.raises(ValidationError):
        score_lead([{"role": "system", "content": "hi"}], "web")
    with pytest.raises(ValidationError):
        score_lead(user("implant"), "web", {"source": 5, "unknown": "x"})


def test_serialises_with_camel_case_names() -> None:
    data = score("all on 4 pret").model_dump(by_alias=True, mode="json")
    assert data["suggestedAction"] == "schedule_appointment"
    assert data["procedureInterest"] == "all_on_x"
    assert data["classification"] == "HOT"
    assert set(data) == {
        "score",
        "classification",
        "confidence",
        "reasons",
        "suggestedAction",
        "procedureInterest",
        "emergency",
    }


def test_the_result_is_frozen() -> None:
    result = score("implant")
    with pytest.raises(ValidationError):
        result.score = 5  # type: ignore[misc]


def test_enums_are_strings_matching_the_wire_values() -> None:
    assert [c.value for c in Channel] == ["whatsapp", "voice", "web", "referral"]
    assert SuggestedAction("transfer_to_human") == "transfer_to_human"
    assert {c.value for c in Classification} == {"HOT", "WARM", "COLD", "UNQUALIFIED"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, "HOT"), (4, "HOT"), (3, "WARM"), (2, "COLD"), (1, "UNQUALIFIED")],
)
def test_classify(value: int, expected: str) -> None:
    assert classify(value) == expected


# --- properties -------------------------------------------------------------------------

_WORDS = [
    "implant", "all on 4", "fațete", "albire", "extracție", "curățare", "preț", "cost",
    "buget", "euro", "lei", "cât costă", "finanțare", "rate", "urgent", "durere", "imediat",
    "mâine", "azi", "acum", "nu mai pot", "accident", "căzut", "spart", "bună", "mulțumesc",
    "nu sunt interesat", "dinte", "programare", "price", "pain", "whitening", "veneers",
]  # fmt: skip
_phrases = st.lists(st.sampled_from(_WORDS), max_size=6).map(" ".join)
_messages = st.lists(
    st.tuples(st.sampled_from(["user", "assistant"]), _phrases | st.text(max_size=80)),
    max_size=6,
)


def _strip_diacritics(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@given(_messages, st.sampled_from(list(Channel)))
def test_score_is_in_range_and_consistent(
    messages: list[tuple[str, str]], channel: Channel
) -> None:
    payload = [{"role": role, "content": content} for role, content in messages]
    result = score_lead(payload, channel)
    assert 1 <= result.score <= 5
    assert result.classification is classify(result.score)
    assert 0.0 <= result.confidence <= 1.0
    assert result.reasons
    assert score_lead(payload, channel) == result  # deterministic
    if result.emergency:
        assert result.suggested_action is SuggestedAction.TRANSFER_TO_HUMAN


@given(st.lists(_phrases, min_size=1, max_size=4))
def test_diacritics_and_case_do_not_change_the_score(texts: list[str]) -> None:
    written = score(*texts)
    plain = score(*(_strip_diacritics(t) for t in texts))
    shouted = score(*(t.upper() for t in texts))
    assert written == plain == shouted
