"""Query handlers: the gateway's reads, answered from the projections' read models.

Each handler is ``async def handle(query, ctx: ReadContext) -> answer`` and is
registered in :data:`QUERY_HANDLERS` with the projections it reads, so the query bus
knows which checkpoints a caller's ``min_position`` must wait for. Every statement
filters on the caller's clinic.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from adapters.crypto.fields import ERASED
from adapters.crypto.keys import SubjectKeyStore
from adapters.projections.consents import ip_address_aad
from adapters.projections.leads import lead_phone_aad
from adapters.projections.messages import message_phone_aad
from adapters.projections.patients import PROFILE, profile_aad
from adapters.projections.personal import EMAIL_LOOKUP, PHONE_LOOKUP, lookup_hash, open_all
from domain.consent_policy import CURRENT_POLICY_VERSION
from domain.cqrs import Query
from domain.errors import ExecutionError, InvalidArguments, NotFound
from domain.events import CONSENT_TYPES
from domain.ports import Pseudonymizer
from domain.queries import (
    MAX_ANALYTICS_DAYS,
    MAX_METRICS_DAYS,
    ActivityItem,
    AppointmentView,
    AvailableSlot,
    CheckConsent,
    ClinicView,
    ConsentCheck,
    ConsentTypeStatus,
    DailyMetrics,
    DoctorView,
    GetAvailableSlots,
    GetClinicConfig,
    GetDailyMetrics,
    GetLead,
    GetLeadAnalytics,
    GetLeadStats,
    GetMessageStatus,
    GetPatient,
    GetPatientActivity,
    LeadAnalytics,
    LeadFigures,
    LeadGroup,
    LeadStats,
    LeadView,
    ListAppointments,
    MessageView,
    PatientActivity,
    PatientView,
)
from domain.scheduling import ClinicHours, DoctorInfo, available_slots, days_between

CLINIC_TZ = ZoneInfo("Europe/Bucharest")


@dataclass(frozen=True)
class ReadContext:
    """What a query handler reads with: the database, the caller's clinic, the time.

    Read models hold phones and e-mails as keyed hashes and shown personal values
    sealed (``adapters.projections.personal``): ``pseudonymizer`` hashes a phone or
    e-mail to look it up, ``keys`` (the subject key store) opens what is shown.
    """

    db: asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy
    clinic_id: str
    now: datetime
    pseudonymizer: Pseudonymizer | None = None
    keys: SubjectKeyStore | None = None

    def lookup(self, kind: str, value: str) -> str | None:
        """The clinic's keyed hash of a phone or e-mail, as the projections store it."""
        if self.pseudonymizer is None:
            raise ExecutionError("looking people up by phone or e-mail needs the pseudonymizer")
        return lookup_hash(self.pseudonymizer, self.clinic_id, kind, value)

    async def open(self, items: Sequence[tuple[bytes, Any]]) -> list[Any]:
        """Sealed read-model values opened (``ERASED`` where the key was destroyed)."""
        return await open_all(self.keys, self.clinic_id, items)


QueryHandler = Callable[[Any, ReadContext], Awaitable[Any]]


@dataclass(frozen=True)
class QuerySpec:
    """A query's handler and the projections whose checkpoints bound its freshness."""

    handler: QueryHandler
    projections: tuple[str, ...]


def _range_error(path: str, message: str, expected: str) -> InvalidArguments:
    return InvalidArguments(
        message, errors=[{"path": path, "message": message, "expected": expected}]
    )


def _check_range(start: date, end: date, max_days: int) -> None:
    if end < start:
        raise _range_error("endDate", "endDate is before startDate", "endDate ≥ startDate")
    if (end - start).days >= max_days:
        raise _range_error(
            "endDate", f"the range covers more than {max_days} days", f"at most {max_days} days"
        )


def _day_bounds(start: date, end: date, tz: ZoneInfo = CLINIC_TZ) -> tuple[datetime, datetime]:
    """The instants that open ``start`` and close ``end`` in the clinic's time zone."""
    return (
        datetime.combine(start, time(0), tzinfo=tz),
        datetime.combine(end + timedelta(days=1), time(0), tzinfo=tz),
    )


# --- patients and leads ----------------------------------------------------------------

_PATIENT = """
SELECT patient_id, profile_sealed, lead_id, created_at, updated_at
  FROM rm_patients WHERE {where} ORDER BY updated_at DESC, patient_id LIMIT 10
"""


async def get_patient(q: GetPatient, ctx: ReadContext) -> PatientView | None:
    """The patient matching every key given (id, phone, e-mail); None when none does.

    Phone and e-mail are matched by their keyed hash. A patient whose key was
    destroyed reads as absent, even before the projection has seen the erasure.
    """
    keys: list[tuple[str, str | None]] = []
    if q.patient_id is not None:
        keys.append(("patient_id", q.patient_id))
    if q.phone is not None:
        keys.append(("phone_hash", ctx.lookup(PHONE_LOOKUP, q.phone)))
    if q.email is not None:
        keys.append(("email_hash", ctx.lookup(EMAIL_LOOKUP, q.email)))
    if any(value is None for _, value in keys):
        return None  # a key given that nobody can have (e.g. a blank e-mail) matches nobody
    where, args = ["clinic_id = $1", "NOT erased"], list[Any]([ctx.clinic_id])
    for column, value in keys:
        args.append(value)
        where.append(f"{column} = ${len(args)}")
    rows = await ctx.db.fetch(_PATIENT.format(where=" AND ".join(where)), *args)
    profiles = await ctx.open(
        [(profile_aad(ctx.clinic_id, r["patient_id"]), r["profile_sealed"]) for r in rows]
    )
    for row, profile in zip(rows, profiles, strict=True):
        if isinstance(profile, dict):
            fields = {name: profile.get(name) for name in PROFILE}
            return PatientView(
                **fields,
                patient_id=row["patient_id"],
                lead_id=row["lead_id"],
                created_at=row["created_at"],
                updated_at=row["updated_at"],
            )
    return None


_LEAD = """
SELECT lead_id, phone_sealed, channel, source, status, score, classification, confidence,
       suggested_action, procedure_interest, assignee, patient_id, lost_reason,
       created_at, updated_at
  FROM rm_leads WHERE clinic_id = $1 AND lead_id = $2
"""


async def get_lead(q: GetLead, ctx: ReadContext) -> LeadView | None:
    """A lead by id, or by phone through the clinic's pseudonym of it."""
    lead_id = q.lead_id
    if lead_id is None:
        if ctx.pseudonymizer is None:
            raise ExecutionError("looking leads up by phone needs the pseudonymizer")
        assert q.phone is not None
        lead_id = ctx.pseudonymizer.pseudonym(ctx.clinic_id, "lead", q.phone)
    row = await ctx.db.fetchrow(_LEAD, ctx.clinic_id, lead_id)
    if row is None:
        return None
    fields = dict(row)
    [fields["phone"]] = await ctx.open(
        [(lead_phone_aad(ctx.clinic_id, row["lead_id"]), fields.pop("phone_sealed"))]
    )
    return LeadView(**fields)


# --- appointments and slots ------------------------------------------------------------

_APPOINTMENT_COLUMNS = (
    "appointment_id, patient_id, doctor_id, service_type, start_at AS start, end_at AS end,"
    " status, urgency, reminders, workflow_id, cancel_reason, created_at, updated_at"
)


async def list_appointments(q: ListAppointments, ctx: ReadContext) -> tuple[AppointmentView, ...]:
    """Appointments matching the filters, by start time."""
    where, args = ["clinic_id = $1"], list[Any]([ctx.clinic_id])
    for column, value in (
        ("patient_id", q.patient_id),
        ("doctor_id", q.doctor_id),
        ("status", q.status),
    ):
        if value is not None:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    if q.start_date is not None:
        args.append(_day_bounds(q.start_date, q.start_date)[0])
        where.append(f"start_at >= ${len(args)}")
    if q.end_date is not None:
        args.append(_day_bounds(q.end_date, q.end_date)[1])
        where.append(f"start_at < ${len(args)}")
    args.append(q.limit)
    rows = await ctx.db.fetch(
        f"SELECT {_APPOINTMENT_COLUMNS} FROM rm_appointments WHERE {' AND '.join(where)}"
        f" ORDER BY start_at, appointment_id LIMIT ${len(args)}",
        *args,
    )
    return tuple(AppointmentView(**dict(r)) for r in rows)


async def _clinic(ctx: ReadContext) -> tuple[ClinicHours, list[DoctorInfo]]:
    row = await ctx.db.fetchrow(
        "SELECT timezone, slot_times, working_days FROM rm_clinics WHERE clinic_id = $1",
        ctx.clinic_id,
    )
    if row is None:
        raise NotFound("the clinic is not configured yet", clinicId=ctx.clinic_id)
    hours = ClinicHours(row["timezone"], tuple(row["slot_times"]), tuple(row["working_days"]))
    doctors = await ctx.db.fetch(
        "SELECT doctor_id, name, services FROM rm_doctors WHERE clinic_id = $1 ORDER BY doctor_id",
        ctx.clinic_id,
    )
    return hours, [DoctorInfo(d["doctor_id"], d["name"], tuple(d["services"])) for d in doctors]


_OCCUPANCY = """
SELECT doctor_id, start_at, end_at FROM rm_slot_occupancy
 WHERE clinic_id = $1 AND start_at < $3 AND end_at > $2
"""


async def get_available_slots(q: GetAvailableSlots, ctx: ReadContext) -> tuple[AvailableSlot, ...]:
    """Free slots: the clinic's hours minus held and booked slots (``domain.scheduling``)."""
    days_between(q.start_date, q.end_date)  # refuses a backwards or too long range
    hours, doctors = await _clinic(ctx)
    if q.doctor_id is not None and q.doctor_id not in {d.doctor_id for d in doctors}:
        raise NotFound(f"doctor {q.doctor_id!r} not found", doctorId=q.doctor_id)
    opens, closes = _day_bounds(q.start_date, q.end_date, hours.tz)
    taken = [
        (r["doctor_id"], r["start_at"], r["end_at"])
        for r in await ctx.db.fetch(
            _OCCUPANCY, ctx.clinic_id, opens - timedelta(days=1), closes + timedelta(days=1)
        )
    ]
    slots = available_slots(
        hours,
        doctors,
        q.start_date,
        q.end_date,
        now=ctx.now,
        occupancy=taken,
        doctor_id=q.doctor_id,
        service=q.service_type.value if q.service_type else None,
        duration=q.duration,
        time_slot=q.time_slot,
        limit=q.limit,
    )
    return tuple(
        AvailableSlot(
            doctor_id=s.doctor_id,
            start=s.start,
            end=s.end,
            duration_minutes=int((s.end - s.start).total_seconds() // 60),
        )
        for s in slots
    )


# --- consent ---------------------------------------------------------------------------

_CONSENTS = """
SELECT consent_type, status, policy_version, decided_at, expires_at, source, ip_address_sealed,
       event_position
  FROM rm_consents WHERE clinic_id = $1 AND patient_id = $2
"""
_PATIENT_BY_ID = "SELECT 1 FROM rm_patients WHERE clinic_id = $1 AND patient_id = $2 AND NOT erased"
_PATIENT_BY_PHONE = """
SELECT patient_id FROM (
    SELECT patient_id, updated_at AS at FROM rm_patients
     WHERE clinic_id = $1 AND phone_hash = $2 AND NOT erased
    UNION ALL
    SELECT patient_id, recorded_at AS at FROM rm_consents WHERE clinic_id = $1 AND phone_hash = $2
) found ORDER BY at DESC LIMIT 1
"""


async def check_consent(q: CheckConsent, ctx: ReadContext) -> ConsentCheck | None:
    """Current status per consent type (expired grants say so); None: no such patient."""
    patient_id = q.patient_id
    if patient_id is None:
        assert q.phone is not None
        phone_hash = ctx.lookup(PHONE_LOOKUP, q.phone)
        if phone_hash is None:
            return None
        patient_id = await ctx.db.fetchval(_PATIENT_BY_PHONE, ctx.clinic_id, phone_hash)
        if patient_id is None:
            return None
    found = await ctx.db.fetch(_CONSENTS, ctx.clinic_id, patient_id)
    if not found and await ctx.db.fetchval(_PATIENT_BY_ID, ctx.clinic_id, patient_id) is None:
        return None
    ips = await ctx.open(
        [
            (ip_address_aad(ctx.clinic_id, patient_id, r["consent_type"]), r["ip_address_sealed"])
            for r in found
        ]
    )
    rows = {
        r["consent_type"]: {**dict(r), "ip_address": None if ip == ERASED else ip}
        for r, ip in zip(found, ips, strict=True)
    }
    consents = tuple(
        _consent_status(t, rows.get(t), ctx.now) for t in (q.consent_types or CONSENT_TYPES)
    )
    return ConsentCheck(
        patient_id=patient_id,
        consents=consents,
        all_granted=all(c.granted for c in consents),
    )


def _consent_status(
    consent_type: str, row: dict[str, Any] | None, now: datetime
) -> ConsentTypeStatus:
    if row is None:
        return ConsentTypeStatus(consent_type=consent_type, status="unknown", granted=False)
    status = row["status"]
    expires = row["expires_at"]
    if status == "granted" and expires is not None and now >= expires:
        status = "expired"
    return ConsentTypeStatus(
        consent_type=consent_type,
        status=status,
        granted=status == "granted",
        policy_version=row["policy_version"],
        policy_current=row["policy_version"] == CURRENT_POLICY_VERSION,
        decided_at=row["decided_at"],
        expires_at=expires,
        source=row["source"],
        ip_address=row["ip_address"],
        event_position=row["event_position"],
    )


# --- analytics -------------------------------------------------------------------------

_GROUP_KEYS = {
    None: "'all'",
    "day": "to_char(created_day, 'YYYY-MM-DD')",
    "week": "to_char(created_day, 'IYYY-\"W\"IW')",
    "month": "to_char(created_day, 'YYYY-MM')",
    "channel": "channel",
    "classification": "coalesce(classification, 'UNSCORED')",
}
_ANALYTICS = """
SELECT {key} AS key,
       count(*) AS leads,
       count(score) AS scored,
       count(*) FILTER (WHERE qualified) AS qualified,
       count(*) FILTER (WHERE status = 'converted') AS converted,
       count(*) FILTER (WHERE status = 'lost') AS lost,
       count(*) FILTER (WHERE classification = 'HOT') AS hot,
       count(*) FILTER (WHERE classification = 'WARM') AS warm,
       count(*) FILTER (WHERE classification = 'COLD') AS cold,
       count(*) FILTER (WHERE classification = 'UNQUALIFIED') AS unqualified,
       coalesce(sum(score), 0) AS score_sum
  FROM lead_stats_leads
 WHERE clinic_id = $1 AND created_day BETWEEN $2 AND $3 AND ($4::text IS NULL OR channel = $4)
 GROUP BY 1 ORDER BY 1
"""
_COUNTS = (
    "leads",
    "scored",
    "qualified",
    "converted",
    "lost",
    "hot",
    "warm",
    "cold",
    "unqualified",
)


async def get_lead_analytics(q: GetLeadAnalytics, ctx: ReadContext) -> LeadAnalytics:
    """Figures of the leads created in the range (clinic days), grouped and filtered."""
    _check_range(q.start_date, q.end_date, MAX_ANALYTICS_DAYS)
    sql = _ANALYTICS.format(key=_GROUP_KEYS[q.group_by])
    rows = await ctx.db.fetch(sql, ctx.clinic_id, q.start_date, q.end_date, q.channel)
    sums = {c: sum(r[c] for r in rows) for c in (*_COUNTS, "score_sum")}
    groups = tuple(LeadGroup(key=str(r["key"]), **_figures(dict(r))) for r in rows)
    return LeadAnalytics(
        start_date=q.start_date,
        end_date=q.end_date,
        group_by=q.group_by,
        channel=q.channel,
        totals=LeadFigures(**_figures(sums)),
        groups=groups if q.group_by is not None else (),
        extra={"cohort": "leads created in the range (Europe/Bucharest days)"},
    )


def _figures(counts: dict[str, Any]) -> dict[str, Any]:
    figures: dict[str, Any] = {c: int(counts[c]) for c in _COUNTS}
    scored, leads = figures["scored"], figures["leads"]
    figures["average_score"] = round(counts["score_sum"] / scored, 2) if scored else None
    figures["conversion_rate"] = round(figures["converted"] / leads, 4) if leads else None
    return figures


async def get_lead_stats(q: GetLeadStats, ctx: ReadContext) -> LeadStats:
    """All-time totals by channel, classification and status, average score, conversion."""
    totals = await ctx.db.fetch(
        "SELECT dimension, value, leads FROM lead_stats_totals WHERE clinic_id = $1 AND leads <> 0",
        ctx.clinic_id,
    )
    summary = await ctx.db.fetchrow(
        "SELECT leads, scored, score_sum, qualified, converted, lost"
        " FROM lead_stats_summary WHERE clinic_id = $1",
        ctx.clinic_id,
    )
    by: dict[str, dict[str, int]] = {"channel": {}, "classification": {}, "status": {}}
    for r in totals:
        by[r["dimension"]][r["value"]] = int(r["leads"])
    s = (
        dict(summary)
        if summary
        else dict.fromkeys(("leads", "scored", "score_sum", "qualified", "converted", "lost"), 0)
    )
    return LeadStats(
        leads=s["leads"],
        by_channel=by["channel"],
        by_classification=by["classification"],
        by_status=by["status"],
        scored=s["scored"],
        qualified=s["qualified"],
        converted=s["converted"],
        lost=s["lost"],
        average_score=round(s["score_sum"] / s["scored"], 2) if s["scored"] else None,
        conversion_rate=round(s["converted"] / s["leads"], 4) if s["leads"] else None,
    )


async def get_daily_metrics(q: GetDailyMetrics, ctx: ReadContext) -> tuple[DailyMetrics, ...]:
    """The days of the range that had activity, in order."""
    _check_range(q.start_date, q.end_date, MAX_METRICS_DAYS)
    rows = await ctx.db.fetch(
        "SELECT day, new_leads, qualified_leads, converted_leads, lost_leads,"
        " appointments_scheduled, appointments_cancelled, messages_received, messages_sent"
        " FROM daily_metrics WHERE clinic_id = $1 AND day BETWEEN $2 AND $3 ORDER BY day",
        ctx.clinic_id,
        q.start_date,
        q.end_date,
    )
    return tuple(DailyMetrics(**dict(r)) for r in rows)


# --- activity, messages, clinic --------------------------------------------------------


async def get_patient_activity(q: GetPatientActivity, ctx: ReadContext) -> PatientActivity | None:
    row = await ctx.db.fetchrow(
        "SELECT * FROM patient_activity WHERE clinic_id = $1 AND patient_id = $2",
        ctx.clinic_id,
        q.patient_id,
    )
    if row is None:
        return None
    recent = await ctx.db.fetch(
        "SELECT global_position AS position, occurred_at, event_type, summary"
        " FROM patient_activity_recent WHERE clinic_id = $1 AND patient_id = $2"
        " ORDER BY global_position DESC LIMIT $3",
        ctx.clinic_id,
        q.patient_id,
        q.limit,
    )
    counters = {k: v for k, v in dict(row).items() if k != "clinic_id"}
    return PatientActivity(**counters, recent=tuple(ActivityItem(**dict(r)) for r in recent))


_MESSAGE_COLUMNS = (
    "message_id, direction, patient_id, phone_sealed, template_name, status, provider_message_id,"
    " error_code, error_message, queued_at, sent_at, delivered_at, read_at, failed_at,"
    " received_at, updated_at"
)


async def get_message_status(q: GetMessageStatus, ctx: ReadContext) -> tuple[MessageView, ...]:
    """One message (by id) or a patient's messages, newest first."""
    where, args = ["clinic_id = $1"], list[Any]([ctx.clinic_id])
    for column, value in (("message_id", q.message_id), ("patient_id", q.patient_id)):
        if value is not None:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    args.append(q.limit)
    rows = await ctx.db.fetch(
        f"SELECT {_MESSAGE_COLUMNS} FROM rm_messages WHERE {' AND '.join(where)}"
        f" ORDER BY updated_at DESC, message_id LIMIT ${len(args)}",
        *args,
    )
    phones = await ctx.open(
        [(message_phone_aad(ctx.clinic_id, r["message_id"]), r["phone_sealed"]) for r in rows]
    )
    return tuple(
        MessageView(**{k: v for k, v in r.items() if k != "phone_sealed"}, phone=phone)
        for r, phone in zip(rows, phones, strict=True)
    )


async def get_clinic_config(q: GetClinicConfig, ctx: ReadContext) -> ClinicView | None:
    row = await ctx.db.fetchrow(
        "SELECT clinic_id, name, timezone, slot_times, working_days, location"
        " FROM rm_clinics WHERE clinic_id = $1",
        ctx.clinic_id,
    )
    if row is None:
        return None
    doctors = await ctx.db.fetch(
        "SELECT doctor_id, name, services FROM rm_doctors WHERE clinic_id = $1 ORDER BY doctor_id",
        ctx.clinic_id,
    )
    return ClinicView(
        **{
            **dict(row),
            "slot_times": tuple(row["slot_times"]),
            "working_days": tuple(row["working_days"]),
        },
        doctors=tuple(
            DoctorView(doctor_id=d["doctor_id"], name=d["name"], services=tuple(d["services"]))
            for d in doctors
        ),
    )


QUERY_HANDLERS: dict[type[Query], QuerySpec] = {
    GetPatient: QuerySpec(get_patient, ("patients",)),
    GetLead: QuerySpec(get_lead, ("leads",)),
    ListAppointments: QuerySpec(list_appointments, ("appointments",)),
    GetAvailableSlots: QuerySpec(get_available_slots, ("clinics", "appointments")),
    CheckConsent: QuerySpec(check_consent, ("patients", "consents")),
    GetLeadAnalytics: QuerySpec(get_lead_analytics, ("lead_stats",)),
    GetLeadStats: QuerySpec(get_lead_stats, ("lead_stats",)),
    GetDailyMetrics: QuerySpec(get_daily_metrics, ("daily_metrics",)),
    GetPatientActivity: QuerySpec(get_patient_activity, ("patient_activity",)),
    GetMessageStatus: QuerySpec(get_message_status, ("messages",)),
    GetClinicConfig: QuerySpec(get_clinic_config, ("clinics",)),
}
"""Every query type, its handler and the projections it reads."""
