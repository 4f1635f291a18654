"""Projections "leads" (one row per lead) and "lead_stats" (totals and per-lead facts)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters.crypto.keys import subject_id
from adapters.projections.base import Conn, Counters, ProjectedEvent, Projection, Row, Rows, Table
from adapters.projections.personal import value_aad

LEAD_EVENTS = frozenset(
    {"LeadCreated", "LeadScored", "LeadQualified", "LeadAssigned", "LeadConverted", "LeadLost"}
)
OPEN_RANK = {"new": 0, "scored": 1, "qualified": 2, "assigned": 3}
"""Open statuses only move forward; converted and lost close a lead."""


def advanced(status: str, to: str) -> str:
    """``to`` when it is further along than the open status ``status``."""
    if status not in OPEN_RANK:
        return status
    return to if OPEN_RANK[to] > OPEN_RANK[status] else status


LEADS = Table(
    "rm_leads",
    ["clinic_id", "lead_id"],
    [
        ("clinic_id", "text"),
        ("lead_id", "text"),
        ("phone_sealed", "jsonb"),
        ("channel", "text"),
        ("source", "text"),
        ("utm", "jsonb"),
        ("status", "text"),
        ("score", "integer"),
        ("classification", "text"),
        ("confidence", "double precision"),
        ("suggested_action", "text"),
        ("procedure_interest", "text"),
        ("qualified_as", "text"),
        ("assignee", "text"),
        ("patient_id", "text"),
        ("lost_reason", "text"),
        ("created_at", "timestamptz"),
        ("updated_at", "timestamptz"),
    ],
)


def lead_phone_aad(clinic_id: str, lead_id: str) -> bytes:
    """Where a lead's sealed phone belongs (its associated data)."""
    return value_aad(clinic_id, LEADS.name, lead_id, "phone")


class LeadsProjection(Projection):
    """Each lead's current state, for ``GetLead`` (by id or by phone pseudonym: the lead
    id is the clinic's keyed hash of the phone). The phone itself is kept sealed under
    the lead's key, so erasing the person who used it makes it unreadable."""

    name = "leads"
    version = 2
    personal_data = True
    tables = (LEADS.name,)
    handles = LEAD_EVENTS

    async def apply(self, conn: Conn, events: Sequence[ProjectedEvent]) -> None:
        leads = Rows(LEADS)
        await leads.load(conn, {(e.clinic_id, e.data["lead_id"]) for e in events})
        created: list[tuple[Row, ProjectedEvent]] = []
        for e in events:
            key = (e.clinic_id, e.data["lead_id"])
            row = leads.get(key) or _new_lead(e)
            _fold_lead(row, e)
            if e.type == "LeadCreated":
                created.append((row, e))
            row["updated_at"] = e.recorded_at
            leads.put(row)
        sealer = self.personal.sealer()
        await sealer.load(e.key_id for _, e in created)
        for row, e in created:
            lead_id = e.data["lead_id"]
            row["phone_sealed"] = await sealer.seal(
                e.clinic_id,
                subject_id("lead", lead_id),
                e.key_id,
                lead_phone_aad(e.clinic_id, lead_id),
                e.data["phone"],
            )
        await leads.flush(conn)


def _new_lead(e: ProjectedEvent) -> Row:
    row: Row = {c: None for c in LEADS.columns}
    row.update(clinic_id=e.clinic_id, lead_id=e.data["lead_id"], status="new", utm={})
    return row


def _fold_lead(row: Row, e: ProjectedEvent) -> None:
    d = e.data
    match e.type:
        case "LeadCreated":
            row.update(  # the phone is sealed after the fold (``LeadsProjection.apply``)
                channel=d["channel"],
                source=d.get("source"),
                utm=d.get("utm") or {},
                created_at=e.recorded_at,
            )
        case "LeadScored":
            row.update(
                score=d["score"],
                classification=d["classification"],
                confidence=d.get("confidence"),
                suggested_action=d.get("suggested_action"),
                procedure_interest=d.get("procedure_interest"),
                status=advanced(row["status"], "scored"),
            )
        case "LeadQualified":
            row.update(
                qualified_as=d["classification"],
                classification=d["classification"],
                status=advanced(row["status"], "qualified"),
            )
        case "LeadAssigned":
            row.update(assignee=d["assignee"], status=advanced(row["status"], "assigned"))
        case "LeadConverted":
            row.update(patient_id=d["patient_id"], status="converted")
        case "LeadLost":
            row.update(lost_reason=d["reason"], status="lost")


STATS_LEADS = Table(
    "lead_stats_leads",
    ["clinic_id", "lead_id"],
    [
        ("clinic_id", "text"),
        ("lead_id", "text"),
        ("channel", "text"),
        ("created_day", "date"),
        ("status", "text"),
        ("classification", "text"),
        ("score", "integer"),
        ("qualified", "boolean"),
    ],
)


class LeadStatsProjection(Projection):
    """Totals by channel, classification and status; average score; conversion rate.

    Every change is computed from the lead's previous facts (kept per lead), so a
    re-score moves the lead between classifications and the score sum by the
    difference: nothing is counted twice.
    """

    name = "lead_stats"
    tables = ("lead_stats_leads", "lead_stats_totals", "lead_stats_summary")
    handles = LEAD_EVENTS

    async def apply(self, conn: Conn, events: Sequence[ProjectedEvent]) -> None:
        facts = Rows(STATS_LEADS)
        totals = Counters(
            "lead_stats_totals",
            [("clinic_id", "text"), ("dimension", "text"), ("value", "text")],
            ["leads"],
        )
        summary = Counters(
            "lead_stats_summary",
            [("clinic_id", "text")],
            ["leads", "scored", "score_sum", "qualified", "converted", "lost"],
        )
        await facts.load(conn, {(e.clinic_id, e.data["lead_id"]) for e in events})
        tally = _Tally(totals, summary)
        for e in events:
            key = (e.clinic_id, e.data["lead_id"])
            row = facts.get(key)
            if e.type == "LeadCreated":
                if row is None:
                    facts.put(tally.created(e))
                continue
            if row is None:  # events of a lead always start with LeadCreated
                continue
            tally.changed(row, e)
            facts.put(row)
        await facts.flush(conn)
        await totals.flush(conn)
        await summary.flush(conn)


class _Tally:
    """Turns one lead's change into counter deltas."""

    def __init__(self, totals: Counters, summary: Counters) -> None:
        self.totals = totals
        self.summary = summary

    def move(self, clinic: str, dimension: str, old: Any, new: Any) -> None:
        if old == new:
            return
        if old is not None:
            self.totals.add((clinic, dimension, old), "leads", -1)
        if new is not None:
            self.totals.add((clinic, dimension, new), "leads", 1)

    def created(self, e: ProjectedEvent) -> Row:
        clinic, channel = e.clinic_id, e.data["channel"]
        self.summary.add((clinic,), "leads")
        self.move(clinic, "channel", None, channel)
        self.move(clinic, "status", None, "new")
        return {
            "clinic_id": clinic,
            "lead_id": e.data["lead_id"],
            "channel": channel,
            "created_day": e.day,
            "status": "new",
            "classification": None,
            "score": None,
            "qualified": False,
        }

    def changed(self, row: Row, e: ProjectedEvent) -> None:
        clinic, d = e.clinic_id, e.data
        status = row["status"]
        match e.type:
            case "LeadScored":
                self._score(row, clinic, d["score"])
                self.move(clinic, "classification", row["classification"], d["classification"])
                row["classification"] = d["classification"]
                status = advanced(status, "scored")
            case "LeadQualified":
                self.move(clinic, "classification", row["classification"], d["classification"])
                row["classification"] = d["classification"]
                if not row["qualified"]:
                    self.summary.add((clinic,), "qualified")
                    row["qualified"] = True
                status = advanced(status, "qualified")
            case "LeadAssigned":
                status = advanced(status, "assigned")
            case "LeadConverted":
                if status != "converted":
                    self.summary.add((clinic,), "converted")
                status = "converted"
            case "LeadLost":
                if status != "lost":
                    self.summary.add((clinic,), "lost")
                status = "lost"
        self.move(clinic, "status", row["status"], status)
        row["status"] = status

    def _score(self, row: Row, clinic: str, score: int) -> None:
        if row["score"] is None:
            self.summary.add((clinic,), "scored")
            self.summary.add((clinic,), "score_sum", score)
        else:
            self.summary.add((clinic,), "score_sum", score - row["score"])
        row["score"] = score
