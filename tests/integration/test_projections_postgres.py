"""Projections on PostgreSQL: the read models behind the gateway's queries, clinic
isolation, rebuild = live, crash between rows and checkpoint, leader election."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from adapters.cqrs import CommandBus, QueryBus
from adapters.crypto.keys import PostgresSubjectKeyStore
from adapters.postgres.event_store import PostgresEventStore
from adapters.postgres.pool import connect
from adapters.projections import (
    PROJECTION_TYPES,
    PersonalData,
    ProjectedEvent,
    Projector,
    all_projections,
    rebuild,
    run_projector,
    status,
)
from adapters.projections.base import Conn
from adapters.projections.leads import LeadStatsProjection
from adapters.pseudonym import HmacPseudonymizer
from adapters.telemetry.metrics import get_metrics
from domain.commands import (
    AddDoctor,
    CancelAppointment,
    ConfigureClinic,
    ConfirmAppointment,
    ConvertLead,
    ErasePatient,
    LoseLead,
    MarkMessageDelivered,
    MarkMessageSent,
    PatientChanges,
    QualifyLead,
    QueueWhatsAppMessage,
    RecordConsent,
    RecordInboundMessage,
    RegisterPatient,
    ReleaseAppointmentHold,
    RequestAppointment,
    ScoreLead,
    UpdatePatient,
)
from domain.cqrs import CommandContext
from domain.queries import (
    CheckConsent,
    GetAvailableSlots,
    GetClinicConfig,
    GetDailyMetrics,
    GetLead,
    GetLeadAnalytics,
    GetLeadStats,
    GetMessageStatus,
    GetPatient,
    GetPatientActivity,
    ListAppointments,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

NOW = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)  # Monday, 10:00 in Bucharest
TUESDAY = date(2025, 3, 4)
BUCHAREST = ZoneInfo("Europe/Bucharest")
SECRET = "projection-test-secret-0123"
PSEUDO = HmacPseudonymizer(SECRET.encode())
PHONE_A, PHONE_B, PHONE_C = "+40721000001", "+40721000002", "+40721000003"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def bus_for(store: PostgresEventStore, pool: asyncpg.Pool) -> CommandBus:
    return CommandBus(store, pool=pool, pseudonymizer=PSEUDO, clock=lambda: NOW)


def keys_for(pool: asyncpg.Pool) -> PostgresSubjectKeyStore:
    return PostgresSubjectKeyStore.from_secret(pool, SECRET)


def personal_for(pool: asyncpg.Pool) -> PersonalData:
    """Events here are stored unsealed: the projections seal under the subjects' keys."""
    return PersonalData(PSEUDO, keys_for(pool))


def queries_for(pool: asyncpg.Pool, now: datetime = NOW) -> QueryBus:
    return QueryBus(pool, pseudonymizer=PSEUDO, keys=keys_for(pool), clock=lambda: now, cache_ttl=0)


async def catch_up(pool: asyncpg.Pool, batch_size: int = 7) -> int:
    projector = Projector(pool, all_projections(personal_for(pool)), batch_size=batch_size)
    await projector.ensure_checkpoints()
    return await projector.catch_up()


async def seed_clinic(bus: CommandBus, ctx: CommandContext) -> dict[str, Any]:
    """A small clinic: doctors, three leads, two patients, consents, bookings, messages."""
    run = bus.execute
    await run(ConfigureClinic(name="Dental Lux", location="Str. Lunii 3"), ctx)
    await run(AddDoctor(doctor_id="d1", name="Dr. Ionescu"), ctx)
    await run(AddDoctor(doctor_id="d2", name="Dr. Pop", services=["implant"]), ctx)

    say = [{"role": "user", "content": "Vreau All-on-4, cat costa?"}]
    lead_a = (await run(ScoreLead(phone=PHONE_A, channel="web", messages=say), ctx)).result
    rescored = [{"role": "user", "content": "buna ziua"}]
    lead_a = (await run(ScoreLead(phone=PHONE_A, channel="web", messages=rescored), ctx)).result
    say_b = [{"role": "user", "content": "implant"}]
    lead_b = (await run(ScoreLead(phone=PHONE_B, channel="whatsapp", messages=say_b), ctx)).result
    await run(QualifyLead(lead_id=lead_b["leadId"]), ctx)
    await run(LoseLead(lead_id=lead_b["leadId"], reason="price"), ctx)
    say_c = [{"role": "user", "content": "albire urgent azi"}]
    lead_c = (await run(ScoreLead(phone=PHONE_C, channel="voice", messages=say_c), ctx)).result

    await run(
        RegisterPatient(patient_id="p1", first_name="Ana", phone=PHONE_A, email="ana@example.ro"),
        ctx,
    )
    await run(RegisterPatient(patient_id="p2", first_name="Ion", phone="0721000009"), ctx)
    await run(
        UpdatePatient(patient_id="p1", updates=PatientChanges(email="Ana.Pop@example.ro")), ctx
    )
    await run(ConvertLead(lead_id=lead_a["leadId"], patient_id="p1"), ctx)

    consent = {"patient_id": "p1", "phone": PHONE_A, "source": "web", "ip_address": "10.0.0.1"}
    await run(RecordConsent(consent_type="data_processing", status="granted", **consent), ctx)
    await run(RecordConsent(consent_type="marketing_whatsapp", status="granted", **consent), ctx)
    await run(RecordConsent(consent_type="marketing_whatsapp", status="withdrawn", **consent), ctx)
    await run(
        RecordConsent(
            patient_id="p2",
            phone="0721000009",
            consent_type="data_processing",
            status="denied",
            source="phone_call",
        ),
        ctx,
    )

    booked = await run(
        RequestAppointment(
            appointment_id="a1", patient_id="p1", service_type="implant", preferred_date=TUESDAY
        ),
        ctx,
    )
    await run(ConfirmAppointment(appointment_id="a1"), ctx)
    await run(
        RequestAppointment(
            appointment_id="a2", patient_id="p1", service_type="cleaning", preferred_date=TUESDAY
        ),
        ctx,
    )
    await run(ReleaseAppointmentHold(appointment_id="a2"), ctx)
    await run(
        RequestAppointment(
            appointment_id="a3",
            patient_id="p1",
            service_type="consultation",
            preferred_date=TUESDAY,
            preferred_time_slot="afternoon",
        ),
        ctx,
    )
    await run(CancelAppointment(appointment_id="a3", reason="sick"), ctx)

    await run(QueueWhatsAppMessage(message_id="m1", to=PHONE_A, patient_id="p1", text="Salut"), ctx)
    await run(MarkMessageSent(message_id="m1", provider_message_id="wamid.1"), ctx)
    await run(
        MarkMessageDelivered(message_id="m1", provider_message_id="wamid.1", status="read"), ctx
    )
    last = await run(
        RecordInboundMessage(
            provider_message_id="wamid.in.1", from_phone=PHONE_A, text="DA", patient_id="p1"
        ),
        ctx,
    )
    return {
        "leads": {"a": lead_a, "b": lead_b, "c": lead_c},
        "a1": booked.result,
        "position": last.position,
    }


async def today_in_bucharest(pool: asyncpg.Pool) -> date:
    now: datetime = await pool.fetchval("SELECT now()")
    return now.astimezone(BUCHAREST).date()


# --- the read models -------------------------------------------------------------------


async def test_the_read_models_answer_the_gateway(
    event_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    ctx = CommandContext(clinic_id=new_id("clinic"), actor="test")
    seeded = await seed_clinic(bus_for(event_store, pg_pool), ctx)
    await catch_up(pg_pool)
    ask = queries_for(pg_pool).ask
    at = {"min_position": seeded["position"]}

    by_phone = await ask(GetPatient(phone="0721 000 001"), ctx, **at)
    by_email = await ask(GetPatient(email="ANA.POP@example.ro"), ctx, **at)
    assert by_phone == by_email and by_phone is not None and by_phone.patient_id == "p1"
    assert await ask(GetPatient(email="ana@example.ro"), ctx, **at) is None  # changed since
    assert await ask(GetPatient(patient_id="nobody"), ctx, **at) is None

    lead = await ask(GetLead(phone=PHONE_A), ctx, **at)
    assert lead is not None and lead.status == "converted" and lead.patient_id == "p1"
    assert lead.classification == seeded["leads"]["a"]["classification"]

    appointments = await ask(ListAppointments(patient_id="p1"), ctx, **at)
    assert {a.appointment_id: a.status for a in appointments} == {
        "a1": "scheduled",
        "a2": "failed",
        "a3": "cancelled",
    }
    slots = await ask(GetAvailableSlots(start_date=TUESDAY, end_date=TUESDAY), ctx, **at)
    starts = {(s.doctor_id, s.start.astimezone(BUCHAREST).strftime("%H:%M")) for s in slots}
    assert ("d1", "09:00") not in starts  # a1 is booked 09:00-10:30
    assert {("d1", "10:30"), ("d1", "14:00"), ("d2", "09:00")} <= starts  # released holds
    implant = await ask(
        GetAvailableSlots(
            start_date=TUESDAY, end_date=TUESDAY, service_type="implant", doctor_id="d1"
        ),
        ctx,
        **at,
    )
    assert [s.start.astimezone(BUCHAREST).strftime("%H:%M") for s in implant] == [
        "10:30",
        "14:00",
        "15:30",
        "17:00",
    ]

    config = await ask(GetClinicConfig(), ctx, **at)
    assert config is not None and [d.doctor_id for d in config.doctors] == ["d1", "d2"]
    assert config.doctors[1].services == ("implant",)

    messages = await ask(GetMessageStatus(patient_id="p1"), ctx, **at)
    assert {(m.message_id, m.direction, m.status) for m in messages} == {
        ("m1", "outbound", "read"),
        ("inbound:wamid.in.1", "inbound", "received"),
    }


async def test_consent_status_carries_expiry_and_proof(
    event_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    ctx = CommandContext(clinic_id=new_id("clinic"), actor="test")
    seeded = await seed_clinic(bus_for(event_store, pg_pool), ctx)
    await catch_up(pg_pool)
    types = ("data_processing", "marketing_whatsapp", "marketing_sms")
    check = CheckConsent(patient_id="p1", consent_types=types)
    now = await queries_for(pg_pool).ask(check, ctx, min_position=seeded["position"])
    assert now is not None and not now.all_granted
    assert [(c.consent_type, c.status) for c in now.consents] == [
        ("data_processing", "granted"),
        ("marketing_whatsapp", "withdrawn"),
        ("marketing_sms", "unknown"),
    ]
    proof = now.consents[0]
    [decision] = [
        e
        for e in await event_store.read_stream(ctx.clinic_id, "consent-p1")
        if e.data["consent_type"] == "data_processing"
    ]
    assert (proof.source, proof.ip_address, proof.event_position) == (
        "web",
        "10.0.0.1",
        decision.global_position,
    )
    assert proof.decided_at == NOW and proof.expires_at is not None and proof.policy_current

    later = await queries_for(pg_pool, now=proof.expires_at + timedelta(days=1)).ask(check, ctx)
    assert later is not None and later.consents[0].status == "expired"
    by_phone = await queries_for(pg_pool).ask(CheckConsent(phone="0721000009"), ctx)
    assert by_phone is not None and by_phone.patient_id == "p2"
    assert {c.consent_type: c.status for c in by_phone.consents}["data_processing"] == "denied"
    assert await queries_for(pg_pool).ask(CheckConsent(patient_id="nobody"), ctx) is None


async def test_lead_stats_count_each_lead_once(
    event_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    ctx = CommandContext(clinic_id=new_id("clinic"), actor="test")
    seeded = await seed_clinic(bus_for(event_store, pg_pool), ctx)
    await catch_up(pg_pool)
    leads = seeded["leads"]
    stats = await queries_for(pg_pool).ask(GetLeadStats(), ctx)
    assert stats.leads == 3 and stats.scored == 3
    assert stats.by_channel == {"web": 1, "whatsapp": 1, "voice": 1}
    final = [leads[k]["classification"] for k in "abc"]
    assert stats.by_classification == {c: final.count(c) for c in set(final)}  # a was re-scored
    assert stats.by_status == {"converted": 1, "lost": 1, "scored": 1}  # b left "qualified"
    assert (stats.qualified, stats.converted, stats.lost) == (1, 1, 1)
    assert stats.average_score == round(sum(leads[k]["score"] for k in "abc") / 3, 2)
    assert stats.conversion_rate == round(1 / 3, 4)


async def test_analytics_and_daily_metrics_honour_range_groups_and_filters(
    event_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    ctx = CommandContext(clinic_id=new_id("clinic"), actor="test")
    seeded = await seed_clinic(bus_for(event_store, pg_pool), ctx)
    await catch_up(pg_pool)
    ask = queries_for(pg_pool).ask
    today = await today_in_bucharest(pg_pool)
    span = {"start_date": today - timedelta(days=1), "end_date": today + timedelta(days=1)}

    by_channel = await ask(GetLeadAnalytics(**span, group_by="channel"), ctx)
    assert by_channel.totals.leads == 3 and by_channel.totals.converted == 1
    assert [(g.key, g.leads) for g in by_channel.groups] == [
        ("voice", 1),
        ("web", 1),
        ("whatsapp", 1),
    ]
    whatsapp = await ask(GetLeadAnalytics(**span, channel="whatsapp", group_by="day"), ctx)
    assert [(g.key, g.leads, g.lost, g.qualified) for g in whatsapp.groups] == [
        (today.isoformat(), 1, 1, 1)
    ]
    classes = await ask(GetLeadAnalytics(**span, group_by="classification"), ctx)
    final = sorted(seeded["leads"][k]["classification"] for k in "abc")
    assert sorted(k for g in classes.groups for k in [g.key] * g.leads) == final
    before = await ask(
        GetLeadAnalytics(start_date=today - timedelta(days=30), end_date=today - timedelta(days=1)),
        ctx,
    )
    assert before.totals.leads == 0 and before.groups == ()

    [day] = await ask(GetDailyMetrics(**span), ctx)
    assert day.day == today
    assert (day.new_leads, day.qualified_leads, day.converted_leads, day.lost_leads) == (3, 1, 1, 1)
    assert (day.appointments_scheduled, day.appointments_cancelled) == (1, 1)
    assert (day.messages_sent, day.messages_received) == (1, 1)


async def test_patient_activity_counts_without_personal_data(
    event_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    ctx = CommandContext(clinic_id=new_id("clinic"), actor="test")
    await seed_clinic(bus_for(event_store, pg_pool), ctx)
    await catch_up(pg_pool)
    activity = await queries_for(pg_pool).ask(GetPatientActivity(patient_id="p1"), ctx)
    assert activity is not None
    assert (activity.appointments_requested, activity.appointments_scheduled) == (3, 1)
    assert (activity.appointments_cancelled, activity.consents_recorded) == (1, 3)
    assert (activity.messages_sent, activity.messages_received) == (1, 1)
    assert activity.recent[0].event_type == "WhatsAppMessageReceived"
    positions = [item.position for item in activity.recent]
    assert positions == sorted(positions, reverse=True)
    text = json.dumps([item.summary for item in activity.recent])
    assert PHONE_A not in text and "Ana" not in text and "Salut" not in text


async def test_an_erased_patient_leaves_no_personal_data_in_the_read_models(
    event_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    ctx = CommandContext(clinic_id=new_id("clinic"), actor="test")
    bus = bus_for(event_store, pg_pool)
    await seed_clinic(bus, ctx)
    erased = await bus.execute(ErasePatient(patient_id="p1"), ctx)
    await catch_up(pg_pool)
    ask = queries_for(pg_pool).ask
    assert await ask(GetPatient(patient_id="p1"), ctx, min_position=erased.position) is None
    row = await pg_pool.fetchrow(
        "SELECT profile_sealed, phone_hash, email_hash, erased FROM rm_patients"
        " WHERE clinic_id = $1 AND patient_id = 'p1'",
        ctx.clinic_id,
    )
    assert row is not None
    assert dict(row) == {
        "profile_sealed": None,
        "phone_hash": None,
        "email_hash": None,
        "erased": True,
    }
    consents = await pg_pool.fetch(
        "SELECT phone_hash, ip_address_sealed, status FROM rm_consents"
        " WHERE clinic_id = $1 AND patient_id = 'p1'",
        ctx.clinic_id,
    )
    assert consents
    assert all(r["phone_hash"] is None and r["ip_address_sealed"] is None for r in consents)
    phones = await pg_pool.fetch(
        "SELECT phone_sealed FROM rm_messages WHERE clinic_id = $1 AND patient_id = 'p1'",
        ctx.clinic_id,
    )
    assert phones and all(r["phone_sealed"] is None for r in phones)


async def test_two_clinics_with_the_same_ids_never_mix(
    event_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    bus = bus_for(event_store, pg_pool)
    one = CommandContext(clinic_id=new_id("clinic"), actor="test")
    other = CommandContext(clinic_id=new_id("clinic"), actor="test")
    await seed_clinic(bus, one)
    await seed_clinic(bus, other)
    await bus.execute(ScoreLead(phone="0729999999", channel="referral"), other)
    await bus.execute(
        UpdatePatient(patient_id="p1", updates=PatientChanges(first_name="Ioana")), other
    )
    await catch_up(pg_pool)
    ask = queries_for(pg_pool).ask
    assert (await ask(GetLeadStats(), one)).leads == 3
    assert (await ask(GetLeadStats(), other)).leads == 4
    first, second = (
        await ask(GetPatient(patient_id="p1"), one),
        await ask(GetPatient(patient_id="p1"), other),
    )
    assert (first.first_name, second.first_name) == ("Ana", "Ioana")
    assert len(await ask(ListAppointments(patient_id="p1"), one)) == 3
    activity = await ask(GetPatientActivity(patient_id="p1"), one)
    assert activity is not None and activity.appointments_requested == 3
    for table in ("rm_patients", "rm_appointments", "rm_consents", "lead_stats_leads"):
        rows = await pg_pool.fetchval(f"SELECT count(*) FROM {table} WHERE clinic_id IS NULL")
        assert rows == 0


# --- rebuild, crashes, leaders ---------------------------------------------------------


async def dump(pool: asyncpg.Pool) -> dict[str, list[str]]:
    """Every projection table's rows, as sorted JSON lines."""
    tables: dict[str, list[str]] = {}
    for cls in PROJECTION_TYPES:
        for table in cls.tables:
            rows = await pool.fetch(f"SELECT * FROM {table}")
            tables[table] = sorted(json.dumps(dict(r), sort_keys=True, default=str) for r in rows)
    return tables


async def test_rebuild_equals_live(event_store: PostgresEventStore, pg_pool: asyncpg.Pool) -> None:
    bus = bus_for(event_store, pg_pool)
    for _ in range(2):  # live: projected in small batches, between the clinics' commands
        await seed_clinic(bus, CommandContext(clinic_id=new_id("clinic"), actor="test"))
        await catch_up(pg_pool, batch_size=5)
    live = await dump(pg_pool)
    assert all(live[t] for t in ("rm_leads", "lead_stats_totals", "rm_slot_occupancy"))
    for cls in PROJECTION_TYPES:
        result = await rebuild(pg_pool, cls.name, personal=personal_for(pg_pool))
        assert result["events_applied"] > 0
    rebuilt = await dump(pg_pool)
    assert rebuilt == live
    assert await catch_up(pg_pool) == 0  # the checkpoints ended where the log ends


class CrashAfterRows(LeadStatsProjection):
    """lead_stats, dying after its rows are written and before the checkpoint moves."""

    async def apply(self, conn: Conn, events: Sequence[ProjectedEvent]) -> None:
        await super().apply(conn, events)
        assert await conn.fetchval("SELECT count(*) FROM lead_stats_leads") > 0
        raise RuntimeError("crash between rows and checkpoint")


async def test_a_crash_between_rows_and_checkpoint_reapplies_nothing_twice(
    event_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    await catch_up(pg_pool)
    ctx = CommandContext(clinic_id=new_id("clinic"), actor="test")
    await seed_clinic(bus_for(event_store, pg_pool), ctx)
    checkpoint = "SELECT position FROM projection_checkpoints WHERE name = 'lead_stats'"
    before_position = await pg_pool.fetchval(checkpoint)
    before = await dump(pg_pool)

    crashing = Projector(pg_pool, [CrashAfterRows()])
    with pytest.raises(RuntimeError, match="crash between rows and checkpoint"):
        await crashing.step()
    assert await pg_pool.fetchval(checkpoint) == before_position
    assert await dump(pg_pool) == before

    await Projector(pg_pool, [LeadStatsProjection()]).catch_up()
    stats = await queries_for(pg_pool).ask(GetLeadStats(), ctx)
    assert (stats.leads, stats.converted, stats.lost) == (3, 1, 1)
    assert sum(stats.by_status.values()) == 3


async def test_lag_is_reported_until_the_projector_catches_up(
    event_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    await catch_up(pg_pool)
    ctx = CommandContext(clinic_id=new_id("clinic"), actor="test")
    await bus_for(event_store, pg_pool).execute(ScoreLead(phone=PHONE_B, channel="web"), ctx)
    behind = {row["name"]: row for row in await status(pg_pool)}
    assert behind["leads"]["lag_events"] == 2 and behind["leads"]["lag_seconds"] >= 0
    gauge = get_metrics().projection_lag_events.labels("leads")
    assert gauge._value.get() == 2
    await catch_up(pg_pool)
    caught_up = {row["name"]: row for row in await status(pg_pool)}
    assert all(row["lag_events"] == 0 and row["lag_seconds"] == 0 for row in caught_up.values())
    assert gauge._value.get() == 0


async def _leaders(pool: asyncpg.Pool) -> dict[str, str | None]:
    return {
        row["name"]: row["leader"]["application"] if row["leader"] else None
        for row in await status(pool)
    }


async def _until(predicate: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_two_projectors_one_leader_per_projection_and_failover(
    event_store: PostgresEventStore, pg_pool: asyncpg.Pool, pg_dsn: str
) -> None:
    await catch_up(pg_pool)
    bus = bus_for(event_store, pg_pool)
    names = [cls.name for cls in PROJECTION_TYPES]
    stops = {"A": asyncio.Event(), "B": asyncio.Event()}

    def connector(who: str) -> Callable[[], Awaitable[asyncpg.Connection]]:
        return lambda: connect(pg_dsn, application_name=f"projector-{who}")

    tasks = {
        who: asyncio.create_task(
            run_projector(
                pg_pool,
                stops[who],
                personal=personal_for(pg_pool),
                poll_interval=0.1,
                leader_interval=0.1,
                connect=connector(who),
            )
        )
        for who in ("A", "B")
    }
    try:

        async def all_led() -> bool:
            leaders = await _leaders(pg_pool)
            return all(leaders[n] in ("projector-A", "projector-B") for n in names)

        await _until(all_led)
        ctx = CommandContext(clinic_id=new_id("clinic"), actor="test")
        last = None
        for n in range(6):
            last = await bus.execute(ScoreLead(phone=f"072100010{n}", channel="web"), ctx)
        assert last is not None
        queries = QueryBus(pg_pool, wait_timeout=10.0)
        stats = await queries.ask(GetLeadStats(), ctx, min_position=last.position)
        assert stats.leads == 6 and stats.scored == 6  # applied once, whoever led

        held = await _leaders(pg_pool)
        leader = "A" if "projector-A" in held.values() else "B"
        follower = "B" if leader == "A" else "A"
        stops[leader].set()
        await asyncio.wait_for(tasks[leader], 10)

        async def taken_over() -> bool:
            leaders = await _leaders(pg_pool)
            return all(leaders[n] == f"projector-{follower}" for n in names)

        await _until(taken_over)
        more = await bus.execute(ScoreLead(phone="0721000199", channel="voice"), ctx)
        stats = await queries.ask(GetLeadStats(), ctx, min_position=more.position)
        assert stats.leads == 7 and stats.by_channel == {"web": 6, "voice": 1}
    finally:
        for stop in stops.values():
            stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks.values(), return_exceptions=True), 10)
    assert all(leader is None for leader in (await _leaders(pg_pool)).values())
