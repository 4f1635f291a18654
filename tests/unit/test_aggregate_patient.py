"""Patient: registered once, updates record only what changes, erasure forgets."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from domain.aggregates import Patient
from domain.errors import Conflict, NotFound
from domain.events import PatientErased, PatientUpdated
from tests.contracts.aggregate_contract import AggregateMachine, attempt


def registered() -> Patient:
    patient = Patient("p-1")
    patient.register(first_name="Ana", last_name="Pop", phone="+40721234567", tags=["vip"])
    return patient


def test_a_patient_is_registered_once() -> None:
    patient = registered()
    assert patient.profile["first_name"] == "Ana" and patient.active
    with pytest.raises(Conflict):
        patient.register(first_name="Other")


def test_an_update_records_only_the_changed_fields() -> None:
    patient = registered()
    changes = patient.update({"first_name": "Ana", "last_name": "Popescu", "tags": ["vip"]})
    assert changes == {"last_name": "Popescu"}
    event = patient.pending_events[-1]
    assert isinstance(event, PatientUpdated) and event.changes == {"last_name": "Popescu"}


def test_an_update_that_changes_nothing_records_nothing() -> None:
    patient = registered()
    before = len(patient.pending_events)
    assert patient.update({"first_name": "Ana", "phone": "+40721234567"}) == {}
    assert len(patient.pending_events) == before


def test_none_clears_a_field_and_dates_are_kept_as_iso_text() -> None:
    patient = registered()
    patient.update({"date_of_birth": date(1990, 5, 17), "last_name": None})
    assert patient.profile["date_of_birth"] == "1990-05-17"
    assert patient.profile["last_name"] is None
    assert patient.update({"date_of_birth": date(1990, 5, 17)}) == {}


def test_unknown_fields_are_a_programming_error() -> None:
    with pytest.raises(TypeError):
        registered().update({"shoe_size": 42})


def test_updating_an_unknown_patient_is_not_found() -> None:
    with pytest.raises(NotFound):
        Patient("nobody").update({"first_name": "X"})


def test_erasure_forgets_the_profile_and_blocks_updates() -> None:
    patient = registered()
    assert patient.erase("dpo@clinic", "Art. 17 request") is True
    assert patient.erase("dpo@clinic") is False
    assert all(v in (None, []) for v in patient.profile.values())
    erased = patient.pending_events[-1]
    assert isinstance(erased, PatientErased) and erased.requested_by == "dpo@clinic"
    with pytest.raises(NotFound) as caught:
        patient.update({"first_name": "Ana"})
    assert caught.value.details["erased"] is True


FIELD_VALUES: dict[str, list[Any]] = {
    "first_name": ["Ana", "Ion", None],
    "last_name": ["Pop", None],
    "email": ["a@b.ro", None],
    "phone": ["+40721234567", "+40731234567"],
    "date_of_birth": [date(1990, 1, 1), None],
    "notes": ["allergic", None],
    "tags": [["vip"], [], ["vip", "implant"]],
}
updates = st.dictionaries(
    st.sampled_from(sorted(FIELD_VALUES)), st.none(), min_size=1, max_size=4
).flatmap(lambda keys: st.fixed_dictionaries({k: st.sampled_from(FIELD_VALUES[k]) for k in keys}))


def as_json(name: str, value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


class PatientMachine(AggregateMachine):
    aggregate = Patient

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[str, Any] | None = None
        self.erased = False

    @rule(first=st.sampled_from(["Ana", "Ion"]))
    def register(self, first: str) -> None:
        error = attempt(self.agg, lambda: self.agg.register(first_name=first))
        if error is None:
            self.model = {k: None for k in FIELD_VALUES} | {"first_name": first, "tags": []}
        else:
            assert self.model is not None or self.erased

    @rule(changes=updates)
    def update(self, changes: dict[str, Any]) -> None:
        before = len(self.agg.pending_events)
        error = attempt(self.agg, lambda: self.agg.update(changes))
        if self.model is None:
            assert isinstance(error, NotFound)
            return
        expected = {k: as_json(k, v) for k, v in changes.items() if as_json(k, v) != self.model[k]}
        recorded = self.agg.pending_events[before:]
        if expected:
            assert [e.changes for e in recorded] == [expected]
        else:
            assert recorded == ()
        self.model.update(expected)

    @rule()
    def erase(self) -> None:
        error = attempt(self.agg, lambda: self.agg.erase("dpo"))
        if error is None:
            self.model, self.erased = None, True

    @invariant()
    def profile_matches_the_model(self) -> None:
        if self.model is not None:
            assert self.agg.profile == self.model


PatientMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestPatientMachine = PatientMachine.TestCase
