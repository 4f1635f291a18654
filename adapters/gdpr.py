"""GDPR: erasure (Art. 17) by crypto-shredding, and the right of access (Art. 15).

``erase_patient`` destroys the keys of the patient and of every subject linked to it
(its leads, its conversations: see ``adapters.shredding_store.subject_plan``), then
runs the ``ErasePatient`` command (a ``PatientErased`` event without personal data),
then lets the read models forget the patient and deletes the Temporal histories of
the patient's bookings and messages. Keys go first: if anything after fails, the
data is already unreadable and a retry completes the rest (every step is
idempotent). Events stay, so aggregates, statistics and the audit trail are intact.

``export_patient`` gathers everything held on a patient as JSON: the profile, every
event of every stream linked to the patient (decrypted), consents with their proof
(source, IP, time, policy version, who recorded them), messages, appointments,
leads and the keys' history. After erasure the same export shows erased markers
where the personal data was, and when and by whom the keys were destroyed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import asyncpg
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from adapters.crypto.fields import ERASED
from adapters.crypto.keys import KeyRecord, SubjectKeyStore, subject_id
from domain.aggregate import Aggregate
from domain.aggregates import Appointment, Consent, Lead, Message, Patient
from domain.commands import ErasePatient
from domain.cqrs import CommandContext, CommandExecutor
from domain.errors import NotFound
from domain.events import RecordedEvent
from domain.ports import EventStore

log = logging.getLogger(__name__)

A = TypeVar("A", bound=Aggregate)

EXPORT_FORMAT = "medicalcor.gdpr-export/v1"


class ReadModelEraser(Protocol):
    """Forgets what the read models hold on erased subjects (statistics stay)."""

    async def erase_patient(
        self,
        clinic_id: str,
        patient_id: str,
        *,
        subjects: Collection[str],
        streams: Collection[str],
        position: int,
    ) -> dict[str, Any]: ...


class WorkflowHistoryEraser(Protocol):
    """Deletes a patient's workflow executions (and their payload history)."""

    async def erase(
        self,
        clinic_id: str,
        *,
        patient_id: str,
        lead_ids: Collection[str],
        workflow_ids: Collection[str],
    ) -> list[str]: ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class GdprServices:
    """What erasure and export need.

    ``store`` must be the crypto-shredding store (it decrypts); ``read_models`` is
    optional when the projections forget a patient on ``PatientErased`` themselves;
    ``workflows`` deletes Temporal histories (None: left to the namespace retention).
    """

    store: EventStore
    keys: SubjectKeyStore
    commands: CommandExecutor
    read_models: ReadModelEraser | None = None
    workflows: WorkflowHistoryEraser | None = None
    clock: Callable[[], datetime] = _utc_now


# --- erasure ------------------------------------------------------------------------------


async def erase_patient(
    services: GdprServices,
    clinic_id: str,
    patient_id: str,
    *,
    actor: str,
    reason: str | None = None,
) -> dict[str, Any]:
    """Forget a patient (Art. 17): destroy the keys, record the erasure, clean up.

    Returns a JSON-ready report (no personal data). Repeating it is harmless.
    ``NotFound`` for a patient that was never registered.
    """
    stream = Patient.stream_id_for(patient_id)
    if not await services.store.read_stream(clinic_id, stream):
        raise NotFound(f"patient {patient_id!r} not found", patientId=patient_id)
    patient = subject_id("patient", patient_id)
    subjects = await services.keys.reachable(clinic_id, patient)
    destroyed = await services.keys.destroy(clinic_id, subjects, actor=actor, reason=reason)
    context = CommandContext(clinic_id=clinic_id, actor=actor, correlation_id=f"gdpr:{patient}")
    command = await services.commands.execute(
        ErasePatient(patient_id=patient_id, reason=reason), context
    )
    streams = await services.keys.streams_of(clinic_id, subjects)
    read_models: dict[str, Any] = {}
    if services.read_models is not None:
        read_models = await services.read_models.erase_patient(
            clinic_id, patient_id, subjects=subjects, streams=streams, position=command.position
        )
    deleted = await _delete_workflows(services, clinic_id, patient_id, subjects, streams)
    log.info(
        "patient erased",
        extra={"clinic_id": clinic_id, "patient_id": patient_id, "keys": len(destroyed)},
    )
    return {
        "patientId": patient_id,
        "erased": True,
        "alreadyErased": not command.result.get("changed", True),
        "subjects": sorted(subjects),
        "keysDestroyed": [r.key_id for r in destroyed],
        "position": command.position,
        "readModels": read_models,
        "workflowsDeleted": deleted,
    }


def workflow_ids(clinic_id: str, streams: Iterable[str]) -> list[str]:
    """Ids of the workflows that carried a patient's data (bookings, message deliveries)."""
    ids = []
    for stream in sorted(streams):
        kind, _, ident = stream.partition("-")
        if kind == "appointment":
            ids.append(f"{clinic_id}:booking:{ident}")
        elif kind == "message":
            ids.append(f"{clinic_id}:message-delivery:{ident}")
    return ids


async def _delete_workflows(
    services: GdprServices,
    clinic_id: str,
    patient_id: str,
    subjects: Iterable[str],
    streams: Iterable[str],
) -> list[str]:
    if services.workflows is None:
        return []
    return await services.workflows.erase(
        clinic_id,
        patient_id=patient_id,
        lead_ids=sorted(s.partition(":")[2] for s in subjects if s.startswith("lead:")),
        workflow_ids=workflow_ids(clinic_id, streams),
    )


# --- read models ----------------------------------------------------------------------------

_CHECKPOINTS = "SELECT name, position FROM projection_checkpoints WHERE name = ANY($1::text[])"
_FORGET_LEADS = """
UPDATE rm_leads SET phone_sealed = to_jsonb($3::text)
 WHERE clinic_id = $1 AND lead_id = ANY($2::text[])
   AND phone_sealed IS NOT NULL AND phone_sealed <> to_jsonb($3::text)
"""
_FORGET_MESSAGES = """
UPDATE rm_messages SET phone_sealed = to_jsonb($3::text)
 WHERE clinic_id = $1 AND message_id = ANY($2::text[])
   AND phone_sealed IS NOT NULL AND phone_sealed <> to_jsonb($3::text)
"""


class PostgresReadModelEraser:
    """Forgets, in the read models, what only the subject index ties to a patient.

    The projections forget the patient's own rows on ``PatientErased`` (profile,
    consents' phone and IP, messages that name the patient). They cannot know the
    lead of a phone the patient used or the inbound messages of that phone that name
    no patient; this blanks those (``rm_leads.phone_sealed``, ``rm_messages.phone_sealed``,
    unreadable anyway once the keys are destroyed) with the erased marker, as a
    rebuild would. It first waits (bounded) until those
    projections have passed the erasure, so a batch they read before the keys were
    destroyed cannot write the data back after this ran.
    """

    PROJECTIONS = ("leads", "messages")

    def __init__(self, pool: asyncpg.Pool, store: EventStore, *, wait_s: float = 10.0) -> None:
        self._pool = pool
        self._store = store
        self._wait_s = wait_s

    async def erase_patient(
        self,
        clinic_id: str,
        patient_id: str,
        *,
        subjects: Collection[str],
        streams: Collection[str],
        position: int,
    ) -> dict[str, Any]:
        behind = await self._wait_for(position)
        leads = sorted(s.partition(":")[2] for s in subjects if s.startswith("lead:"))
        messages = await self._message_ids(clinic_id, streams)
        async with self._pool.acquire() as conn, conn.transaction():
            lead_rows = await conn.execute(_FORGET_LEADS, clinic_id, leads, ERASED)
            message_rows = await conn.execute(_FORGET_MESSAGES, clinic_id, messages, ERASED)
        if behind:
            log.warning("read models behind the erasure of a patient", extra={"behind": behind})
        return {
            "leadsBlanked": _count(lead_rows),
            "messagesBlanked": _count(message_rows),
            "projectionsBehind": behind,
        }

    async def _message_ids(self, clinic_id: str, streams: Collection[str]) -> list[str]:
        ids: list[str] = []
        for stream in sorted(streams):
            kind, _, ident = stream.partition("-")
            if kind == "message":
                ids.append(ident)
            elif kind == "conversation":
                ids += [
                    f"inbound:{e.data['provider_message_id']}"
                    for e in await self._store.read_stream(clinic_id, stream)
                    if e.event_type == "WhatsAppMessageReceived"
                ]
        return ids

    async def _wait_for(self, position: int) -> dict[str, int]:
        """Wait until the projections that ran reach ``position``; those still behind."""
        deadline = time.monotonic() + self._wait_s
        while True:
            rows = await self._pool.fetch(_CHECKPOINTS, list(self.PROJECTIONS))
            behind = {r["name"]: r["position"] for r in rows if r["position"] < position}
            if not behind or time.monotonic() >= deadline:
                return behind
            await asyncio.sleep(0.05)


class TemporalHistoryEraser:
    """Deletes a patient's workflow executions, every run, with their payload history.

    The payload codec encrypts histories with the service's payload key, not the
    patient's, so erasure must delete them. Found by the ``PatientId`` / ``LeadId``
    search attributes of the clinic (``adapters.temporal.search_attributes``) and by
    the ids of the patient's bookings and message deliveries; running ones are
    terminated by the server first. Deletion completes asynchronously on the server.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    async def erase(
        self,
        clinic_id: str,
        *,
        patient_id: str,
        lead_ids: Collection[str],
        workflow_ids: Collection[str],
    ) -> list[str]:
        runs: dict[str, set[str]] = {w: set() for w in workflow_ids}
        query = _visibility_query(clinic_id, patient_id, lead_ids, workflow_ids)
        if query is not None:
            async for execution in self._client.list_workflows(query):
                runs.setdefault(execution.id, set()).add(execution.run_id)
        deleted = []
        for workflow_id, run_ids in sorted(runs.items()):
            done = [await self._delete(workflow_id, run) for run in sorted(run_ids or {""})]
            if any(done):
                deleted.append(workflow_id)
        return deleted

    async def _delete(self, workflow_id: str, run_id: str) -> bool:
        request = DeleteWorkflowExecutionRequest(
            namespace=self._client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
        )
        try:
            await self._client.workflow_service.delete_workflow_execution(request)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True


def _visibility_query(
    clinic_id: str, patient_id: str, lead_ids: Collection[str], workflow_ids: Collection[str]
) -> str | None:
    """The list filter of a patient's workflows; None if an id cannot be quoted."""
    values = [clinic_id, patient_id, *lead_ids, *workflow_ids]
    if any("'" in v or "\\" in v for v in values):
        return None  # explicit ids are still deleted (their latest run)

    def quoted(items: Iterable[str]) -> str:
        return ", ".join(f"'{i}'" for i in sorted(items))

    alternatives = [f"PatientId = '{patient_id}'"]
    if lead_ids:
        alternatives.append(f"LeadId IN ({quoted(lead_ids)})")
    if workflow_ids:
        alternatives.append(f"WorkflowId IN ({quoted(workflow_ids)})")
    return f"ClinicId = '{clinic_id}' AND ({' OR '.join(alternatives)})"


def _count(status: str) -> int:
    """Rows an ``UPDATE n`` status names."""
    return int(status.rsplit(" ", 1)[-1])


# --- right of access ------------------------------------------------------------------------


async def export_patient(services: GdprServices, clinic_id: str, patient_id: str) -> dict[str, Any]:
    """Everything held on a patient (Art. 15), as JSON-ready data (see module doc)."""
    patient = subject_id("patient", patient_id)
    patient_stream = Patient.stream_id_for(patient_id)
    profile_events = await services.store.read_stream(clinic_id, patient_stream)
    if not profile_events:
        raise NotFound(f"patient {patient_id!r} not found", patientId=patient_id)
    subjects = await services.keys.reachable(clinic_id, patient)
    streams = await services.keys.streams_of(clinic_id, subjects)
    streams |= {patient_stream, Consent.stream_id_for(patient_id)}
    by_stream = {s: await services.store.read_stream(clinic_id, s) for s in sorted(streams)}
    by_stream = {s: events for s, events in by_stream.items() if events}
    records = await services.keys.records(clinic_id, subjects)
    now = services.clock()
    profile = _aggregate(Patient, patient_stream, by_stream[patient_stream])
    return {
        "format": EXPORT_FORMAT,
        "clinicId": clinic_id,
        "patientId": patient_id,
        "exportedAt": now.isoformat(),
        "erased": profile.erased,
        "erasure": _erasure(by_stream[patient_stream], records),
        "profile": _profile(profile, by_stream[patient_stream]),
        "consents": _consents(by_stream, patient_id, now),
        "appointments": _appointments(by_stream),
        "messages": _messages(by_stream),
        "leads": _leads(by_stream),
        "events": _events(by_stream),
        "keys": [r.to_dict() for r in records],
    }


def _of_type(by_stream: dict[str, list[RecordedEvent]], stream_type: str) -> list[str]:
    return [s for s, events in by_stream.items() if events[0].stream_type == stream_type]


def _aggregate(cls: type[A], stream: str, events: list[RecordedEvent]) -> A:
    ident = stream[len(cls.stream_type) + 1 :]
    return cls.rehydrate(ident, [e.to_domain() for e in events], events[-1].version)


def _event(e: RecordedEvent) -> dict[str, Any]:
    return {
        "position": e.global_position,
        "recordedAt": e.recorded_at.isoformat(),
        "stream": e.stream_id,
        "version": e.version,
        "type": e.event_type,
        "schemaVersion": e.schema_version,
        "data": e.data,
        "actor": e.metadata.actor,
        "correlationId": e.metadata.correlation_id,
    }


def _events(by_stream: dict[str, list[RecordedEvent]]) -> list[dict[str, Any]]:
    everything = [e for events in by_stream.values() for e in events]
    return [_event(e) for e in sorted(everything, key=lambda e: e.global_position)]


def _erasure(events: list[RecordedEvent], records: list[KeyRecord]) -> dict[str, Any] | None:
    erased = [e for e in events if e.event_type == "PatientErased"]
    if not erased:
        return None
    first = erased[0]
    return {
        "erasedAt": first.recorded_at.isoformat(),
        "requestedBy": first.data.get("requested_by"),
        "reason": first.data.get("reason"),
        "keysDestroyed": sum(1 for r in records if r.destroyed_at is not None),
    }


def _profile(patient: Patient, events: list[RecordedEvent]) -> dict[str, Any]:
    return {
        "patientId": patient.id,
        **{_camel(k): v for k, v in patient.profile.items()},
        "leadId": patient.lead_id,
        "registeredAt": events[0].recorded_at.isoformat(),
    }


def _consents(
    by_stream: dict[str, list[RecordedEvent]], patient_id: str, now: datetime
) -> dict[str, Any]:
    stream = Consent.stream_id_for(patient_id)
    events = by_stream.get(stream, [])
    decisions = [
        {
            "consentType": e.data["consent_type"],
            "status": e.data["status"],
            "source": e.data["source"],
            "ipAddress": e.data.get("ip_address"),
            "phone": e.data.get("phone"),
            "policyVersion": e.data["policy_version"],
            "decidedAt": e.data.get("decided_at"),
            "expiresAt": e.data.get("expires_at"),
            "recordedAt": e.recorded_at.isoformat(),
            "recordedBy": e.metadata.actor,
            "correlationId": e.metadata.correlation_id,
        }
        for e in events
        if e.event_type == "ConsentRecorded"
    ]
    current = _aggregate(Consent, stream, events).view(None, now) if events else {}
    return {"current": current, "decisions": decisions}


def _appointments(by_stream: dict[str, list[RecordedEvent]]) -> list[dict[str, Any]]:
    out = []
    for stream in _of_type(by_stream, "appointment"):
        events = by_stream[stream]
        appointment = _aggregate(Appointment, stream, events)
        requested = next((e.data for e in events if e.event_type == "AppointmentRequested"), {})
        out.append(
            {
                "appointmentId": appointment.id,
                "status": appointment.status,
                "serviceType": appointment.service_type,
                "doctorId": appointment.doctor_id,
                "start": appointment.start.isoformat() if appointment.start else None,
                "end": appointment.end.isoformat() if appointment.end else None,
                "urgency": requested.get("urgency"),
                "notes": requested.get("notes"),
                "requestedAt": events[0].recorded_at.isoformat(),
                "reminders": list(appointment.reminders),
            }
        )
    return out


def _messages(by_stream: dict[str, list[RecordedEvent]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for stream in _of_type(by_stream, "message"):
        events = by_stream[stream]
        message = _aggregate(Message, stream, events)
        out.append(
            {
                "direction": "outbound",
                "messageId": message.id,
                **{_camel(k): v for k, v in message.content.items()},
                "status": message.status,
                "queuedAt": events[0].recorded_at.isoformat(),
            }
        )
    for stream in _of_type(by_stream, "conversation"):
        for e in by_stream[stream]:
            if e.event_type == "WhatsAppMessageReceived":
                out.append(
                    {
                        "direction": "inbound",
                        "providerMessageId": e.data["provider_message_id"],
                        "from": e.data["from_phone"],
                        "text": e.data["text"],
                        "patientId": e.data.get("patient_id"),
                        "receivedAt": e.recorded_at.isoformat(),
                    }
                )
    return out


def _leads(by_stream: dict[str, list[RecordedEvent]]) -> list[dict[str, Any]]:
    out = []
    for stream in _of_type(by_stream, "lead"):
        lead = _aggregate(Lead, stream, by_stream[stream])
        out.append(
            {
                "leadId": lead.id,
                "phone": lead.phone,
                "channel": lead.channel,
                "source": lead.source,
                "status": lead.status,
                "score": lead.score,
                "classification": lead.classification,
                "patientId": lead.patient_id,
                "createdAt": by_stream[stream][0].recorded_at.isoformat(),
            }
        )
    return out


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
