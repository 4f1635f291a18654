"""A lead: someone who contacted the clinic, scored, qualified, assigned, then closed.

Status moves forward only (new → scored → qualified → assigned); converted and lost
close the lead, and a closed lead accepts no score, qualification or assignment.
One lead per phone: its id is the clinic's pseudonym of the phone number.
"""

from __future__ import annotations

from typing import Any, Self

from domain.aggregate import Aggregate
from domain.aggregates._common import require_exists
from domain.errors import Conflict, InvalidArguments
from domain.events import (
    LeadAssigned,
    LeadChannel,
    LeadClassification,
    LeadConverted,
    LeadCreated,
    LeadLost,
    LeadQualified,
    LeadScored,
    LeadStatus,
)

CLOSED: frozenset[str] = frozenset({"converted", "lost"})
_RANK: dict[str, int] = {"new": 0, "scored": 1, "qualified": 2, "assigned": 3}


class Lead(Aggregate):
    """One lead per phone number in a clinic."""

    stream_type = "lead"
    snapshot_every = 50  # every inbound message re-scores: streams grow with conversations

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.phone: str | None = None
        self.channel: LeadChannel | None = None
        self.source: str | None = None
        self.status: LeadStatus = "new"
        self.score: int | None = None
        self.classification: LeadClassification | None = None
        self.qualified_as: LeadClassification | None = None
        self.assignee: str | None = None
        self.patient_id: str | None = None
        self.lost_reason: str | None = None

    @property
    def closed(self) -> bool:
        """Converted or lost: the lead accepts no further change."""
        return self.status in CLOSED

    # --- behaviour ----------------------------------------------------------------

    def create(
        self,
        phone: str,
        channel: LeadChannel,
        source: str | None = None,
        utm: dict[str, str] | None = None,
    ) -> None:
        """Record the first contact; a lead is created once."""
        if self.exists:
            raise Conflict("lead already exists", leadId=self.id)
        self._record(
            LeadCreated(lead_id=self.id, phone=phone, channel=channel, source=source, utm=utm or {})
        )

    def record_score(
        self,
        *,
        score: int,
        classification: LeadClassification,
        confidence: float,
        reasons: list[str],
        suggested_action: str,
        procedure_interest: str | None = None,
        emergency: bool = False,
    ) -> None:
        """Record a (re-)score; carries the previous classification for the projections."""
        self._require_open("score")
        if not 1 <= score <= 5:
            raise InvalidArguments(f"score must be 1–5, got {score}", score=score)
        self._record(
            LeadScored(
                lead_id=self.id,
                score=score,
                classification=classification,
                confidence=confidence,
                reasons=reasons,
                suggested_action=suggested_action,
                procedure_interest=procedure_interest,
                emergency=emergency,
                previous_classification=self.classification,
            )
        )

    def qualify(self, classification: LeadClassification | None = None) -> bool:
        """Mark the lead qualified (once); False when it already was."""
        self._require_open("qualify")
        if self.qualified_as is not None:
            return False
        chosen = classification or self.classification
        if chosen is None:
            raise Conflict("the lead has no score yet: give a classification", leadId=self.id)
        self._record(
            LeadQualified(lead_id=self.id, classification=chosen, previous_status=self.status)
        )
        return True

    def assign(self, assignee: str) -> bool:
        """Hand the lead to a person; False when it already is theirs."""
        self._require_open("assign")
        if self.assignee == assignee:
            return False
        self._record(LeadAssigned(lead_id=self.id, assignee=assignee, previous_status=self.status))
        return True

    def convert(self, patient_id: str) -> bool:
        """Close the lead as converted into ``patient_id``; False on an identical repeat."""
        require_exists(self, "lead")
        if self.status == "converted" and self.patient_id == patient_id:
            return False
        self._require_open("convert")
        self._record(
            LeadConverted(lead_id=self.id, patient_id=patient_id, previous_status=self.status)
        )
        return True

    def lose(self, reason: str) -> bool:
        """Close the lead as lost; False when it already is lost."""
        require_exists(self, "lead")
        if self.status == "lost":
            return False
        self._require_open("lose")
        self._record(LeadLost(lead_id=self.id, reason=reason, previous_status=self.status))
        return True

    def _require_open(self, action: str) -> None:
        require_exists(self, "lead")
        if self.closed:
            raise Conflict(
                f"lead is {self.status}: cannot {action} a closed lead",
                leadId=self.id,
                status=self.status,
            )

    def _advance(self, status: LeadStatus) -> None:
        if _RANK[status] > _RANK[self.status]:
            self.status = status

    # --- state --------------------------------------------------------------------

    def when_LeadCreated(self, e: LeadCreated) -> None:
        self.phone, self.channel, self.source = e.phone, e.channel, e.source

    def when_LeadScored(self, e: LeadScored) -> None:
        self.score, self.classification = e.score, e.classification
        self._advance("scored")

    def when_LeadQualified(self, e: LeadQualified) -> None:
        self.qualified_as = self.classification = e.classification
        self._advance("qualified")

    def when_LeadAssigned(self, e: LeadAssigned) -> None:
        self.assignee = e.assignee
        self._advance("assigned")

    def when_LeadConverted(self, e: LeadConverted) -> None:
        self.patient_id, self.status = e.patient_id, "converted"

    def when_LeadLost(self, e: LeadLost) -> None:
        self.lost_reason, self.status = e.reason, "lost"

    _FIELDS = (
        "phone",
        "channel",
        "source",
        "status",
        "score",
        "classification",
        "qualified_as",
        "assignee",
        "patient_id",
        "lost_reason",
    )

    def snapshot_state(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._FIELDS}

    @classmethod
    def from_snapshot(cls, aggregate_id: str, state: dict[str, Any], version: int) -> Self:
        lead = cls(aggregate_id)
        for name in cls._FIELDS:
            setattr(lead, name, state.get(name))
        lead.version = version
        return lead
