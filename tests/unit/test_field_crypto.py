"""Sealed personal fields: round trip, tampering, associated data, erasure markers."""

from __future__ import annotations

import base64
import json
from datetime import date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.crypto.fields import (
    ERASED,
    SealedFieldError,
    SubjectKey,
    erased_value,
    field_aad,
    is_sealed,
    new_key_material,
    open_event_data,
    open_sealed,
    seal,
    seal_event_data,
    sealed_key_ids,
)
from domain.events import (
    EVENT_TYPES,
    ConsentRecorded,
    LeadCreated,
    PatientRegistered,
    PatientUpdated,
    WhatsAppMessageQueued,
)

CLINIC, STREAM = "clinic-1", "patient-p1"


def key(kid: str = "sk_1", clinic: str = CLINIC, material: bytes | None = None) -> SubjectKey:
    return SubjectKey(kid, clinic, "patient:p1", material or new_key_material())


def aad(field: str = "phone", event_type: str = "PatientRegistered") -> bytes:
    return field_aad(CLINIC, STREAM, event_type, field)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


# --- round trip -----------------------------------------------------------------------


@settings(max_examples=300)
@given(value=json_values)
def test_any_json_value_round_trips(value: Any) -> None:
    k = key()
    assert open_sealed(k, aad(), seal(k, aad(), value)) == value


@settings(max_examples=200)
@given(text=st.text(alphabet=st.characters(codec=None), min_size=1))
def test_arbitrary_unicode_round_trips_and_never_shows(text: str) -> None:
    k = key()
    sealed = seal(k, aad("notes"), text)
    assert open_sealed(k, aad("notes"), sealed) == text
    assert set(sealed) == {"$enc", "kid", "ct"} and is_sealed(sealed)
    if len(text) >= 4:
        assert text not in json.dumps(sealed, ensure_ascii=False)


def test_lone_surrogates_and_diacritics_round_trip() -> None:
    k = key()
    for text in ("\ud800 half", "Ștefan Ăîâț", "😀 +40 721 234 567", "", " trailing  "):
        assert open_sealed(k, aad(), seal(k, aad(), text)) == text


def test_lengths_only_show_a_bucket() -> None:
    k = key()
    short, longer = seal(k, aad(), "a"), seal(k, aad(), "a much longer name")
    assert len(short["ct"]) == len(longer["ct"])


# --- nonces ---------------------------------------------------------------------------


def test_without_a_seed_every_seal_differs() -> None:
    k = key()
    assert seal(k, aad(), "+40721234567") != seal(k, aad(), "+40721234567")


def test_a_seed_makes_sealing_deterministic_for_equal_inputs_only() -> None:
    k = key()
    one = seal(k, aad(), "+40721234567", nonce_seed="idem-1\x1f0")
    assert one == seal(k, aad(), "+40721234567", nonce_seed="idem-1\x1f0")
    assert one != seal(k, aad(), "+40721234568", nonce_seed="idem-1\x1f0")
    assert one != seal(k, aad(), "+40721234567", nonce_seed="idem-2\x1f0")
    assert one != seal(k, aad("email"), "+40721234567", nonce_seed="idem-1\x1f0")
    other_key = key(material=new_key_material())
    assert one["ct"] != seal(other_key, aad(), "+40721234567", nonce_seed="idem-1\x1f0")["ct"]


# --- tampering, wrong associated data, wrong key ----------------------------------------


def _flip(ct: str, index: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(ct + "=" * (-len(ct) % 4)))
    raw[index % len(raw)] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


@settings(max_examples=100)
@given(index=st.integers(min_value=0, max_value=200))
def test_any_flipped_bit_is_detected(index: int) -> None:
    k = key()
    sealed = seal(k, aad(), "Ana Popescu")
    with pytest.raises(SealedFieldError):
        open_sealed(k, aad(), {**sealed, "ct": _flip(sealed["ct"], index)})


def test_truncated_and_garbled_values_are_refused() -> None:
    k = key()
    sealed = seal(k, aad(), "Ana")
    for ct in (sealed["ct"][:20], "", "!!!not base64!!!"):
        with pytest.raises(SealedFieldError):
            open_sealed(k, aad(), {**sealed, "ct": ct})


@pytest.mark.parametrize(
    "other",
    [
        field_aad("clinic-2", STREAM, "PatientRegistered", "phone"),
        field_aad(CLINIC, "patient-p2", "PatientRegistered", "phone"),
        field_aad(CLINIC, STREAM, "PatientUpdated", "phone"),
        field_aad(CLINIC, STREAM, "PatientRegistered", "email"),
    ],
)
def test_a_value_moved_elsewhere_fails(other: bytes) -> None:
    k = key()
    sealed = seal(k, aad(), "+40721234567")
    with pytest.raises(SealedFieldError):
        open_sealed(k, other, sealed)


def test_associated_data_parts_cannot_be_shifted() -> None:
    assert field_aad("a", "bc", "T", "f") != field_aad("ab", "c", "T", "f")


def test_the_wrong_key_material_fails() -> None:
    sealed = seal(key(), aad(), "Ana")
    with pytest.raises(SealedFieldError):
        open_sealed(key(material=new_key_material()), aad(), sealed)


def test_a_value_naming_another_key_id_is_refused() -> None:
    k = key()
    sealed = seal(k, aad(), "Ana")
    with pytest.raises(SealedFieldError):
        open_sealed(k, aad(), {**sealed, "kid": "sk_other"})


# --- events -----------------------------------------------------------------------------


def registered() -> PatientRegistered:
    return PatientRegistered(
        patient_id="p1",
        first_name="Ioana",
        last_name="Mărginean",
        phone="+40721234567",
        email="ioana@example.ro",
        notes="alergie la penicilină",
        lead_id="lead-1",
    )


def sealed_registered(k: SubjectKey, seed: str | None = None) -> dict[str, Any]:
    event = registered()
    return seal_event_data(
        PatientRegistered, event.data(), k, clinic_id=CLINIC, stream_id=STREAM, nonce_seed=seed
    )


def test_only_personal_fields_are_sealed_and_none_stays_none() -> None:
    k = key()
    data = sealed_registered(k)
    for name in ("first_name", "last_name", "phone", "email", "notes"):
        assert is_sealed(data[name]), name
    assert data["date_of_birth"] is None
    assert (data["patient_id"], data["lead_id"], data["tags"]) == ("p1", "lead-1", [])
    text = json.dumps(data, ensure_ascii=False)
    for secret in ("Ioana", "Mărginean", "721234567", "ioana@", "penicilin"):
        assert secret not in text
    assert sealed_key_ids(data) == {k.key_id}


def test_event_data_opens_back_to_the_event() -> None:
    k = key()
    opened = open_event_data(
        "PatientRegistered", sealed_registered(k), {k.key_id: k}, clinic_id=CLINIC, stream_id=STREAM
    )
    assert PatientRegistered.model_validate(opened) == registered()


def test_a_destroyed_key_yields_erased_markers_and_a_valid_event() -> None:
    k = key()
    data = sealed_registered(k)
    destroyed = SubjectKey(k.key_id, CLINIC, k.subject_id, None)
    opened = open_event_data(
        "PatientRegistered", data, {k.key_id: destroyed}, clinic_id=CLINIC, stream_id=STREAM
    )
    event = PatientRegistered.model_validate(opened)
    assert (event.first_name, event.phone, event.email, event.notes) == (None, None, None, None)
    assert (event.patient_id, event.lead_id) == ("p1", "lead-1")


def test_an_unknown_key_or_another_clinics_key_is_an_error_not_an_erasure() -> None:
    k = key()
    data = sealed_registered(k)
    with pytest.raises(SealedFieldError):
        open_event_data("PatientRegistered", data, {}, clinic_id=CLINIC, stream_id=STREAM)
    foreign = SubjectKey(k.key_id, "clinic-2", k.subject_id, k.material)
    with pytest.raises(SealedFieldError):
        open_event_data(
            "PatientRegistered", data, {k.key_id: foreign}, clinic_id=CLINIC, stream_id=STREAM
        )


def test_a_sealed_value_moved_to_another_field_fails() -> None:
    k = key()
    data = sealed_registered(k)
    data["email"] = data["phone"]
    with pytest.raises(SealedFieldError):
        open_event_data(
            "PatientRegistered", data, {k.key_id: k}, clinic_id=CLINIC, stream_id=STREAM
        )


def test_plain_values_of_old_events_pass_through() -> None:
    data = registered().data()
    assert (
        open_event_data("PatientRegistered", data, {}, clinic_id=CLINIC, stream_id=STREAM) == data
    )


def test_erased_markers_follow_each_fields_type() -> None:
    assert erased_value(LeadCreated, "phone") == ERASED
    assert erased_value(PatientRegistered, "first_name") is None
    assert erased_value(PatientUpdated, "changes") == {}
    assert erased_value(WhatsAppMessageQueued, "template_params") == []
    assert erased_value(WhatsAppMessageQueued, "to") == ERASED
    assert erased_value(ConsentRecorded, "ip_address") is None


@pytest.mark.parametrize(
    "event_type", sorted(n for n, c in EVENT_TYPES.items() if c.personal_fields)
)
def test_every_event_with_personal_fields_validates_fully_erased(event_type: str) -> None:
    cls = EVENT_TYPES[event_type]
    data: dict[str, Any] = {}
    for name, info in cls.model_fields.items():
        if name in cls.personal_fields:
            data[name] = erased_value(cls, name)
        elif info.is_required():
            data[name] = _sample(info.annotation)
    cls.model_validate(data)


def _sample(annotation: Any) -> Any:
    """A valid value of a non-personal required field (ids, enums, dates, numbers)."""
    if "Literal" in str(annotation):
        return annotation.__args__[0]
    if annotation is datetime:
        return "2025-03-04T09:00:00+02:00"
    if annotation is date:
        return "2025-03-04"
    if annotation is int:
        return 1
    if annotation is float:
        return 1.0
    if annotation is bool:
        return True
    return "x"
