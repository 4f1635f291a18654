"""Projections "patients" (current profiles) and "patient_activity" (counters, recent)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from adapters.crypto.fields import ERASED, is_sealed
from adapters.crypto.keys import subject_id
from adapters.projections.base import (
    Conn,
    Counters,
    Key,
    ProjectedEvent,
    Projection,
    Row,
    Rows,
    Table,
)
from adapters.projections.personal import Sealer, value_aad, wanted_key_ids

PROFILE = ("first_name", "last_name", "phone", "email", "date_of_birth", "notes", "tags")
"""The profile fields, kept sealed together in ``profile_sealed`` (``personal``)."""

PATIENTS = Table(
    "rm_patients",
    ["clinic_id", "patient_id"],
    [
        ("clinic_id", "text"),
        ("patient_id", "text"),
        ("profile_sealed", "jsonb"),
        ("phone_hash", "text"),
        ("email_hash", "text"),
        ("lead_id", "text"),
        ("erased", "boolean"),
        ("created_at", "timestamptz"),
        ("updated_at", "timestamptz"),
    ],
)


def profile_aad(clinic_id: str, patient_id: str) -> bytes:
    """Where a patient's sealed profile belongs (its associated data)."""
    return value_aad(clinic_id, PATIENTS.name, patient_id, "profile")


def _profile_value(name: str, value: Any) -> Any:
    if name == "tags":
        return list(value or [])
    if isinstance(value, date):
        return value.isoformat()  # sealed as JSON
    return value


@dataclass
class _Profile:
    """A patient's profile in clear while a batch folds it, and the key to seal it with.

    ``fields`` is ERASED when the stored profile could no longer be opened.
    """

    fields: dict[str, Any] | str | None
    key_id: str | None


class PatientsProjection(Projection):
    """Each patient's profile (sealed), found by id or by the keyed hash of its phone or
    e-mail; hashes and profile are dropped on erasure."""

    name = "patients"
    version = 2
    personal_data = True
    tables = (PATIENTS.name,)
    handles = frozenset({"PatientRegistered", "PatientUpdated", "PatientErased"})

    async def apply(self, conn: Conn, events: Sequence[ProjectedEvent]) -> None:
        patients = Rows(PATIENTS)
        await patients.load(conn, {(e.clinic_id, e.data["patient_id"]) for e in events})
        sealer = self.personal.sealer()
        stored = [r["profile_sealed"] for r in patients.rows()]
        await sealer.load([*wanted_key_ids(stored), *(e.key_id for e in events)])
        profiles: dict[Key, _Profile] = {}
        for e in events:
            d = e.data
            key = (e.clinic_id, d["patient_id"])
            row = patients.get(key)
            if e.type == "PatientRegistered":
                fields = {name: _profile_value(name, d.get(name)) for name in PROFILE}
                profiles[key] = _Profile(fields, e.key_id)
                row = {
                    "clinic_id": e.clinic_id,
                    "patient_id": d["patient_id"],
                    "lead_id": d.get("lead_id"),
                    "erased": False,
                    "created_at": e.recorded_at,
                }
            elif row is None:
                continue  # a patient's stream always starts with PatientRegistered
            elif e.type == "PatientUpdated":
                profile = profiles.get(key) or await self._opened(sealer, row)
                if isinstance(profile.fields, dict):
                    for name, value in d["changes"].items():
                        if name in PROFILE:
                            profile.fields[name] = _profile_value(name, value)
                profile.key_id = e.key_id or profile.key_id
                profiles[key] = profile
            else:
                profiles[key] = _Profile(None, None)
                row["erased"] = True
            row["updated_at"] = e.recorded_at
            patients.put(row)
        for key, profile in profiles.items():
            row = patients.get(key)
            assert row is not None
            await self._seal(sealer, row, profile)
        await patients.flush(conn)

    async def _opened(self, sealer: Sealer, row: Row) -> _Profile:
        """The stored profile in clear (ERASED once its key was destroyed)."""
        stored = row["profile_sealed"]
        aad = profile_aad(row["clinic_id"], row["patient_id"])
        fields = await sealer.open(row["clinic_id"], aad, stored)
        return _Profile(fields, stored["kid"] if is_sealed(stored) else None)

    async def _seal(self, sealer: Sealer, row: Row, profile: _Profile) -> None:
        """Seal the profile and hash its phone and e-mail (nothing once erased)."""
        clinic, patient = row["clinic_id"], row["patient_id"]
        fields = None if row["erased"] else profile.fields
        row.update(profile_sealed=fields, phone_hash=None, email_hash=None)
        if not isinstance(fields, dict):
            return  # erased: by the event, or its key was destroyed before we opened it
        subject = subject_id("patient", patient)
        aad = profile_aad(clinic, patient)
        sealed = await sealer.seal(clinic, subject, profile.key_id, aad, fields)
        row["profile_sealed"] = sealed
        if sealed != ERASED:
            row["phone_hash"] = self.personal.phone_hash(clinic, fields["phone"])
            row["email_hash"] = self.personal.email_hash(clinic, fields["email"])


RECENT_KEPT = 20

LINKS = Table(
    "patient_activity_links",
    ["clinic_id", "kind", "ref_id"],
    [("clinic_id", "text"), ("kind", "text"), ("ref_id", "text"), ("patient_id", "text")],
)
RECENT = Table(
    "patient_activity_recent",
    ["clinic_id", "patient_id", "global_position"],
    [
        ("clinic_id", "text"),
        ("patient_id", "text"),
        ("global_position", "bigint"),
        ("occurred_at", "timestamptz"),
        ("event_type", "text"),
        ("summary", "jsonb"),
    ],
)
_TRIM = f"""
DELETE FROM patient_activity_recent r
 USING (SELECT clinic_id, patient_id, global_position,
               row_number() OVER (PARTITION BY clinic_id, patient_id
                                  ORDER BY global_position DESC) AS n
          FROM patient_activity_recent
         WHERE (clinic_id, patient_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))) old
 WHERE old.n > {RECENT_KEPT}
   AND r.clinic_id = old.clinic_id AND r.patient_id = old.patient_id
   AND r.global_position = old.global_position
"""

APPOINTMENT_COUNTERS = {
    "AppointmentRequested": "appointments_requested",
    "AppointmentScheduled": "appointments_scheduled",
    "AppointmentCancelled": "appointments_cancelled",
    "AppointmentCompleted": "appointments_completed",
    "AppointmentNoShow": "appointments_no_show",
}
OTHER_COUNTERS = {
    "WhatsAppMessageSent": "messages_sent",
    "WhatsAppMessageReceived": "messages_received",
    "ConsentRecorded": "consents_recorded",
}
APPOINTMENT_EVENTS = frozenset(
    {
        *APPOINTMENT_COUNTERS,
        "AppointmentRescheduled",
        "AppointmentBookingFailed",
        "AppointmentReminderSent",
    }
)
MESSAGE_EVENTS = frozenset(
    {
        "WhatsAppMessageQueued",
        "WhatsAppMessageSent",
        "WhatsAppMessageDelivered",
        "WhatsAppMessageFailed",
    }
)
SUMMARY_FIELDS = (
    "appointment_id",
    "service_type",
    "doctor_id",
    "start",
    "kind",
    "message_id",
    "template_name",
    "status",
    "consent_type",
    "provider_message_id",
)
"""Ids, types and statuses: what a summary may show (never names, phones or text)."""


class PatientActivityProjection(Projection):
    """Per patient: appointment and message counters, last activity, recent events."""

    name = "patient_activity"
    tables = ("patient_activity", "patient_activity_recent", "patient_activity_links")
    handles = frozenset(
        {
            "PatientRegistered",
            "PatientUpdated",
            "PatientErased",
            "ConsentRecorded",
            "WhatsAppMessageReceived",
            *APPOINTMENT_EVENTS,
            *MESSAGE_EVENTS,
        }
    )

    async def apply(self, conn: Conn, events: Sequence[ProjectedEvent]) -> None:
        links = Rows(LINKS)
        await links.load(conn, {k for e in events if (k := _link_key(e)) is not None})
        counters = Counters(
            "patient_activity",
            [("clinic_id", "text"), ("patient_id", "text")],
            [*APPOINTMENT_COUNTERS.values(), *OTHER_COUNTERS.values()],
            [("last_activity_at", "timestamptz")],
        )
        recent: dict[tuple[str, str], list[Row]] = defaultdict(list)
        for e in events:
            patient = _patient_of(e, links)
            if patient is None:
                continue
            key = (e.clinic_id, patient)
            column = APPOINTMENT_COUNTERS.get(e.type) or OTHER_COUNTERS.get(e.type)
            if column:
                counters.add(key, column)
            counters.touch(key, "last_activity_at", e.recorded_at)
            recent[key].append(_activity(e, patient))
        await links.flush(conn)
        await counters.flush(conn)
        await _keep_recent(conn, recent)


def _link_key(e: ProjectedEvent) -> tuple[str, str, str] | None:
    if e.type in APPOINTMENT_EVENTS:
        return (e.clinic_id, "appointment", e.data["appointment_id"])
    if e.type in MESSAGE_EVENTS:
        return (e.clinic_id, "message", e.data["message_id"])
    return None


def _patient_of(e: ProjectedEvent, links: Rows) -> str | None:
    """The patient an event is about; links appointments and messages to it on the way."""
    key = _link_key(e)
    patient = e.data.get("patient_id")
    if key is None:
        return patient if isinstance(patient, str) else None
    if isinstance(patient, str):
        if links.get(key) is None:
            links.put(
                {"clinic_id": key[0], "kind": key[1], "ref_id": key[2], "patient_id": patient}
            )
        return patient
    link = links.get(key)
    return None if link is None else str(link["patient_id"])


def _activity(e: ProjectedEvent, patient: str) -> Row:
    d = e.data
    summary = {k: v for k in SUMMARY_FIELDS if (v := d.get(k)) is not None}
    if e.type == "PatientUpdated":
        summary["fields"] = sorted(d.get("changes", {}))
    return {
        "clinic_id": e.clinic_id,
        "patient_id": patient,
        "global_position": e.position,
        "occurred_at": e.recorded_at,
        "event_type": e.type,
        "summary": summary,
    }


async def _keep_recent(conn: Conn, recent: dict[tuple[str, str], list[Row]]) -> None:
    """Insert each patient's newest activities, then trim to the last ``RECENT_KEPT``."""
    if not recent:
        return
    rows = [r for items in recent.values() for r in items[-RECENT_KEPT:]]
    await conn.execute(
        RECENT.upsert_sql,
        *RECENT.arrays(rows, RECENT.columns),
    )
    keys = list(recent)
    await conn.execute(_TRIM, [k[0] for k in keys], [k[1] for k in keys])
