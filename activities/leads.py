"""Lead activities: score (creating the lead), assign to a person, read its state, sync HubSpot."""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.payloads import (
    AssignLeadPayload,
    HubSpotUpsertPayload,
    LeadPayload,
    LeadSnapshot,
    ScoreLeadPayload,
)
from activities.support import AggregateReader, compact, run
from adapters.hubspot import (
    ContactProperties,
    HubSpotClient,
    HubSpotPermanentError,
    HubSpotTransientError,
)
from domain.aggregates import Consent, Lead
from domain.commands import AssignLead, ScoreLead
from domain.cqrs import CommandExecutor
from domain.events import CONSENT_TYPES
from domain.scoring import LeadMessage, UtmParams


class LeadActivities:
    """Scoring and assignment through the command bus; reads through the event store."""

    def __init__(self, commands: CommandExecutor, reader: AggregateReader) -> None:
        self._commands = commands
        self._reader = reader

    @activity.defn
    async def score_lead(self, p: ScoreLeadPayload) -> dict[str, Any]:
        """ScoreLead: creates the lead on first contact, records its score."""
        command = ScoreLead(
            phone=p.phone,
            channel=p.channel,
            messages=[LeadMessage.model_validate(m) for m in p.messages],
            utm=UtmParams.model_validate(p.utm_params) if p.utm_params else None,
            metadata=p.metadata,
        )
        return compact((await run(self._commands, p.caller, command)).result)

    @activity.defn
    async def assign_lead(self, p: AssignLeadPayload) -> dict[str, Any]:
        """AssignLead: the lead becomes a person's task (LeadAssigned)."""
        command = AssignLead(lead_id=p.lead_id, assignee=p.assignee)
        return compact((await run(self._commands, p.caller, command)).result)

    @activity.defn
    async def lead_snapshot(self, p: LeadPayload) -> LeadSnapshot:
        lead = await self._reader.load(Lead, p.caller.clinic_id, p.lead_id)
        return LeadSnapshot(
            lead_id=p.lead_id,
            exists=lead.exists,
            status=lead.status if lead.exists else None,
            classification=lead.classification,
            patient_id=lead.patient_id,
        )


class HubSpotActivities:
    """Keeps the HubSpot contact of a lead in step (skipped when HubSpot is not configured)."""

    def __init__(self, reader: AggregateReader, hubspot: HubSpotClient | None) -> None:
        self._reader = reader
        self._hubspot = hubspot

    @activity.defn
    async def upsert_contact(self, p: HubSpotUpsertPayload) -> dict[str, Any]:
        """Upsert the contact by phone with the lead's status, score, source and consents."""
        if self._hubspot is None:
            return {"skipped": {"code": "NOT_CONFIGURED", "message": "HubSpot is not configured"}}
        lead = await self._reader.load(Lead, p.caller.clinic_id, p.lead_id)
        properties = ContactProperties(
            lead_status=lead.status,
            lead_score=lead.score,
            lead_source=lead.source or lead.channel,
            consents=await self._consents(p),
        )
        try:
            result = await self._hubspot.upsert_contact(p.phone, properties)
        except HubSpotPermanentError as exc:
            raise ApplicationError(str(exc), type="HUBSPOT_PERMANENT", non_retryable=True) from exc
        except HubSpotTransientError as exc:
            raise ApplicationError(str(exc), type="HUBSPOT_TRANSIENT") from exc
        return {"contactId": result.contact_id, "created": result.created}

    async def _consents(self, p: HubSpotUpsertPayload) -> dict[str, bool]:
        if p.patient_id is None:
            return {}
        consent = await self._reader.load(Consent, p.caller.clinic_id, p.patient_id)
        now = activity.info().current_attempt_scheduled_time
        return {t: consent.is_granted(t, now) for t in CONSENT_TYPES}
