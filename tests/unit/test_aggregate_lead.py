"""Lead: created once, scored, qualified, assigned; closed leads never change."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from domain.aggregates import Lead
from domain.errors import Conflict, InvalidArguments, NotFound
from domain.events import LeadConverted, LeadLost, LeadQualified, LeadScored
from tests.contracts.aggregate_contract import AggregateMachine, attempt, json_state

SCORE: dict[str, Any] = {
    "score": 4,
    "classification": "HOT",
    "confidence": 0.8,
    "reasons": ["implant"],
    "suggested_action": "schedule_appointment",
}


def new_lead() -> Lead:
    lead = Lead("lead-1")
    lead.create("+40721234567", "whatsapp", source="facebook", utm={"source": "facebook"})
    return lead


def test_a_new_lead_is_created_once() -> None:
    lead = new_lead()
    assert lead.status == "new" and lead.phone == "+40721234567"
    with pytest.raises(Conflict):
        lead.create("+40721234567", "web")


def test_the_first_score_has_no_previous_classification_a_rescore_has_one() -> None:
    lead = new_lead()
    lead.record_score(**SCORE)
    lead.record_score(**{**SCORE, "score": 2, "classification": "COLD"})
    first, second = (e for e in lead.pending_events if isinstance(e, LeadScored))
    assert first.previous_classification is None
    assert second.previous_classification == "HOT"
    assert (lead.status, lead.classification, lead.score) == ("scored", "COLD", 2)


def test_a_score_outside_one_to_five_is_refused() -> None:
    lead = new_lead()
    with pytest.raises(InvalidArguments):
        lead.record_score(**{**SCORE, "score": 6})


def test_actions_on_an_unknown_lead_are_not_found() -> None:
    lead = Lead("nobody")
    for action in (
        lambda: lead.record_score(**SCORE),
        lambda: lead.qualify("HOT"),
        lambda: lead.assign("ana"),
        lambda: lead.convert("p-1"),
        lambda: lead.lose("spam"),
    ):
        with pytest.raises(NotFound):
            action()


def test_qualify_uses_the_current_classification_and_happens_once() -> None:
    lead = new_lead()
    with pytest.raises(Conflict):
        lead.qualify()  # nothing to qualify with yet
    lead.record_score(**SCORE)
    assert lead.qualify() is True
    assert lead.qualify("WARM") is False
    [qualified] = [e for e in lead.pending_events if isinstance(e, LeadQualified)]
    assert qualified.classification == "HOT" and qualified.previous_status == "scored"


def test_status_only_moves_forward() -> None:
    lead = new_lead()
    lead.assign("ana")
    lead.record_score(**SCORE)
    lead.qualify()
    assert lead.status == "assigned"


def test_assigning_to_the_same_person_again_changes_nothing() -> None:
    lead = new_lead()
    assert lead.assign("ana") is True
    assert lead.assign("ana") is False
    assert lead.assign("bob") is True
    assert len(lead.pending_events) == 3


def test_a_lost_lead_remembers_its_previous_status() -> None:
    lead = new_lead()
    lead.record_score(**SCORE)
    assert lead.lose("no budget") is True
    lost = lead.pending_events[-1]
    assert isinstance(lost, LeadLost) and lost.previous_status == "scored"
    assert lead.lose("again") is False


def test_closed_leads_refuse_score_qualify_assign() -> None:
    for close in (lambda lead: lead.convert("p-1"), lambda lead: lead.lose("gone")):
        lead = new_lead()
        lead.record_score(**SCORE)
        close(lead)
        for action in (
            lambda lead=lead: lead.record_score(**SCORE),
            lambda lead=lead: lead.qualify(),
            lambda lead=lead: lead.assign("ana"),
        ):
            error = attempt(lead, action)
            assert isinstance(error, Conflict) and error.details["status"] == lead.status


def test_convert_is_idempotent_for_the_same_patient_only() -> None:
    lead = new_lead()
    assert lead.convert("p-1") is True
    assert lead.convert("p-1") is False
    with pytest.raises(Conflict):
        lead.convert("p-2")
    with pytest.raises(Conflict):
        lead.lose("changed mind")
    converted = lead.pending_events[-1]
    assert isinstance(converted, LeadConverted) and converted.previous_status == "new"


def test_a_lost_lead_cannot_be_converted() -> None:
    lead = new_lead()
    lead.lose("spam")
    with pytest.raises(Conflict):
        lead.convert("p-1")


RANK = {"new": 0, "scored": 1, "qualified": 2, "assigned": 3}


class LeadMachine(AggregateMachine):
    aggregate = Lead

    def __init__(self) -> None:
        super().__init__()
        self.closed_state: dict[str, Any] | None = None
        self.rank = 0

    @rule(channel=st.sampled_from(["whatsapp", "voice", "web", "referral"]))
    def create(self, channel: str) -> None:
        existed = self.agg.exists
        error = attempt(self.agg, lambda: self.agg.create("+40721234567", channel))
        assert (error is not None) == existed

    @rule(
        score=st.integers(1, 5),
        classification=st.sampled_from(["HOT", "WARM", "COLD", "UNQUALIFIED"]),
    )
    def score(self, score: int, classification: str) -> None:
        before = self.agg.classification
        error = attempt(
            self.agg,
            lambda: self.agg.record_score(
                **{**SCORE, "score": score, "classification": classification}
            ),
        )
        if error is None:
            event = self.agg.pending_events[-1]
            assert isinstance(event, LeadScored) and event.previous_classification == before

    @rule(classification=st.sampled_from([None, "HOT", "WARM"]))
    def qualify(self, classification: str | None) -> None:
        attempt(self.agg, lambda: self.agg.qualify(classification))

    @rule(assignee=st.sampled_from(["ana", "bob"]))
    def assign(self, assignee: str) -> None:
        attempt(self.agg, lambda: self.agg.assign(assignee))

    @rule(patient=st.sampled_from(["p-1", "p-2"]))
    def convert(self, patient: str) -> None:
        attempt(self.agg, lambda: self.agg.convert(patient))

    @rule()
    def lose(self) -> None:
        attempt(self.agg, lambda: self.agg.lose("no answer"))

    @invariant()
    def closed_leads_never_change(self) -> None:
        if self.closed_state is not None:
            assert json_state(self.agg) == self.closed_state
        elif self.agg.closed:
            self.closed_state = json_state(self.agg)

    @precondition(lambda self: not self.agg.closed)
    @invariant()
    def status_never_moves_back(self) -> None:
        assert RANK[self.agg.status] >= self.rank
        self.rank = RANK[self.agg.status]


LeadMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestLeadMachine = LeadMachine.TestCase
