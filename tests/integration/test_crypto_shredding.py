"""Crypto-shredding on real PostgreSQL: sealed at rest, erased for good, facts kept.

Everything here is the production wiring: ``PostgresEventStore`` wrapped by
``CryptoShreddingEventStore`` with ``PostgresSubjectKeyStore``, the real command
and query buses, and the real projector (``run_projector`` reading through the
shredding store), running in the background for the whole module.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from adapters.api_keys import ApiKeyStore
from adapters.audit import AuditLog
from adapters.cqrs import CommandBus, QueryBus
from adapters.crypto.fields import ERASED, SubjectKey, erased_value
from adapters.crypto.keys import (
    PostgresSubjectKeyStore,
    SubjectErased,
    master_key_from_secret,
    subject_id,
)
from adapters.gdpr import GdprServices, PostgresReadModelEraser, erase_patient, export_patient
from adapters.postgres.event_store import PostgresEventStore
from adapters.projections import PROJECTION_NAMES, rebuild, run_projector
from adapters.projections.personal import PHONE_LOOKUP
from adapters.pseudonym import HmacPseudonymizer
from adapters.shredding_store import CryptoShreddingEventStore
from api.auth import Authenticator
from api.errors import install_problem_handlers
from api.gdpr import create_gdpr_router
from domain import commands as c
from domain import queries as q
from domain.aggregates import Appointment, Conversation, Lead, Message, Patient
from domain.cqrs import Command, CommandContext
from domain.events import EventMetadata, PatientRegistered
from domain.ports import NO_STREAM, EventStore, Snapshot, StreamAppend
from domain.scoring import LeadMessage
from tests.contracts.event_store_contract import EventStoreContract

pytestmark = pytest.mark.asyncio(loop_scope="session")

SECRET = "crypto-shredding-test-secret"
PHONE = "+40721234567"
OTHER_PHONE = "+40722000111"
IP = "198.51.100.7"
SECRETS = (
    "Ioana",
    "Mărginean",
    "M\\u0103rginean",  # how JSON text may spell it
    "721234567",
    "ioana.m@example.ro",
    "penicilin",
    "dinte rupt",
    "preferă dimineața",
    "vă așteptăm",
    IP,
)


@dataclass
class World:
    pool: asyncpg.Pool
    inner: PostgresEventStore
    keys: PostgresSubjectKeyStore
    store: CryptoShreddingEventStore
    bus: CommandBus
    queries: QueryBus
    pseudonymizer: HmacPseudonymizer

    def services(self) -> GdprServices:
        return GdprServices(
            store=self.store,
            keys=self.keys,
            commands=self.bus,
            read_models=PostgresReadModelEraser(self.pool, self.store),
        )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(pg_pool: asyncpg.Pool, event_store: PostgresEventStore) -> AsyncIterator[World]:
    pseudonymizer = HmacPseudonymizer(SECRET.encode())
    keys = PostgresSubjectKeyStore.from_secret(pg_pool, SECRET)
    await keys.start()
    store = CryptoShreddingEventStore(event_store, keys, pseudonymizer)
    bus = CommandBus(store, pool=pg_pool, pseudonymizer=pseudonymizer)
    queries = QueryBus(
        pg_pool, pseudonymizer=pseudonymizer, keys=keys, cache_ttl=0, wait_timeout=10
    )
    stop = asyncio.Event()
    projector = asyncio.create_task(
        run_projector(pg_pool, stop, store=store, poll_interval=0.05, leader_interval=0.2)
    )
    try:
        yield World(pg_pool, event_store, keys, store, bus, queries, pseudonymizer)
    finally:
        stop.set()
        await projector
        await keys.close()


# --- the shared contract over the decorator ------------------------------------------------


class TestShreddingOverPostgres(EventStoreContract):
    @pytest.fixture
    def store(self, world: World) -> EventStore:
        return world.store


# --- a clinic with one patient's whole history -----------------------------------------------


@dataclass
class Clinic:
    world: World
    clinic_id: str
    lead_id: str
    conversation_id: str
    position: int = 0

    def ctx(self) -> CommandContext:
        return CommandContext(clinic_id=self.clinic_id, actor="api_key:test")

    async def run(self, command: Command) -> dict[str, Any]:
        done = await self.world.bus.execute(command, self.ctx())
        self.position = max(self.position, done.position)
        return done.result

    async def ask(self, query: Any) -> Any:
        return await self.world.queries.ask(query, self.ctx(), min_position=self.position)

    async def events(self, stream: str) -> list[Any]:
        return await self.world.store.read_stream(self.clinic_id, stream)


def next_weekday(days_ahead: int = 7) -> date:
    day = datetime.now(UTC).date() + timedelta(days=days_ahead)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


async def seeded_clinic(world: World) -> Clinic:
    """A lead who wrote on WhatsApp, became patient p1, consented, booked, was messaged;
    and p2, another patient with no link to p1."""
    clinic_id = f"clinic-{uuid.uuid4().hex[:10]}"
    clinic = Clinic(
        world,
        clinic_id,
        world.pseudonymizer.pseudonym(clinic_id, "lead", PHONE),
        world.pseudonymizer.pseudonym(clinic_id, "conversation", PHONE),
    )
    await clinic.run(c.ConfigureClinic(name="Zâmbet"))
    await clinic.run(c.AddDoctor(doctor_id="d1", name="Dr. Pop"))
    await clinic.run(
        c.ScoreLead(
            phone="0721 234 567",
            channel="whatsapp",
            messages=[LeadMessage(role="user", content="Vreau un implant, cât costă?")],
        )
    )
    await clinic.run(
        c.RecordInboundMessage(
            provider_message_id=f"wamid.{clinic_id}.1", from_phone=PHONE, text="Am un dinte rupt"
        )
    )
    await clinic.run(
        c.RegisterPatient(
            patient_id="p1",
            first_name="Ioana",
            last_name="Mărginean",
            phone=PHONE,
            email="ioana.m@example.ro",
            notes="alergie la penicilină",
            lead_id=clinic.lead_id,
        )
    )
    await clinic.run(c.ConvertLead(lead_id=clinic.lead_id, patient_id="p1"))
    await clinic.run(
        c.RecordConsent(
            patient_id="p1",
            phone=PHONE,
            consent_type="data_processing",
            status="granted",
            source="web_form",
            ip_address=IP,
        )
    )
    await clinic.run(
        c.RequestAppointment(
            appointment_id="a1",
            patient_id="p1",
            service_type=c.ServiceType.IMPLANT,
            preferred_date=next_weekday(),
            notes="Ioana preferă dimineața",
        )
    )
    await clinic.run(
        c.QueueWhatsAppMessage(
            message_id="m1", to=PHONE, patient_id="p1", text="Bună Ioana, vă așteptăm!"
        )
    )
    await clinic.run(c.RegisterPatient(patient_id="p2", first_name="Radu", phone=OTHER_PHONE))
    await settle(clinic)
    return clinic


async def settle(clinic: Clinic, position: int | None = None) -> None:
    """Wait until every projection has applied events up to ``position``."""
    target = clinic.position if position is None else position
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        rows = await clinic.world.pool.fetch(
            "SELECT name, position FROM projection_checkpoints WHERE name = ANY($1::text[])",
            list(PROJECTION_NAMES),
        )
        reached = {r["name"]: r["position"] for r in rows}
        if all(reached.get(n, 0) >= target for n in PROJECTION_NAMES):
            return
        assert asyncio.get_running_loop().time() < deadline, f"projections stuck: {reached}"
        await asyncio.sleep(0.05)


async def table_texts(pool: asyncpg.Pool, clinic_id: str) -> dict[str, str]:
    """Every row of every table of the database, as text, by table.

    Tables with a ``clinic_id`` column only for this clinic (other tests of the module
    keep their own live patients); tables without one entirely.
    """
    tables = await pool.fetch(
        """SELECT t.table_name,
                  EXISTS (SELECT 1 FROM information_schema.columns c
                          WHERE c.table_schema = 'public' AND c.table_name = t.table_name
                            AND c.column_name = 'clinic_id') AS scoped
           FROM information_schema.tables t
           WHERE t.table_schema = 'public' AND t.table_type = 'BASE TABLE'"""
    )
    out = {}
    for t in tables:
        name = t["table_name"]
        if t["scoped"]:
            rows = await pool.fetch(
                f'SELECT t::text AS row FROM "{name}" t WHERE clinic_id = $1', clinic_id
            )
        else:
            rows = await pool.fetch(f'SELECT t::text AS row FROM "{name}" t')
        out[name] = "\n".join(r["row"] for r in rows)
    return out


def leaks(texts: dict[str, str], secrets: tuple[str, ...] = SECRETS) -> dict[str, list[str]]:
    found = {name: [s for s in secrets if s in text] for name, text in texts.items()}
    return {name: hits for name, hits in found.items() if hits}


async def stats(clinic: Clinic) -> tuple[Any, Any]:
    today = datetime.now(UTC).date()
    lead_stats = await clinic.ask(q.GetLeadStats())
    daily = await clinic.ask(
        q.GetDailyMetrics(start_date=today - timedelta(days=1), end_date=today + timedelta(days=1))
    )
    return lead_stats, daily


# --- sealed at rest ---------------------------------------------------------------------------


async def test_the_events_table_holds_no_plaintext_and_reads_back_in_clear(world: World) -> None:
    clinic = await seeded_clinic(world)
    rows = await world.pool.fetch(
        "SELECT event_type, data::text AS data, convert_to(data::text, 'UTF8') AS raw"
        " FROM events WHERE clinic_id = $1",
        clinic.clinic_id,
    )
    assert rows and any('"$enc"' in r["data"] for r in rows)
    for r in rows:
        for secret in SECRETS:
            assert secret not in r["data"], (r["event_type"], secret)
            assert secret.encode() not in bytes(r["raw"]), (r["event_type"], secret)
    [registered] = await clinic.events(Patient.stream_id_for("p1"))
    event = registered.to_domain()
    assert isinstance(event, PatientRegistered)
    assert (event.first_name, event.last_name, event.email) == (
        "Ioana",
        "Mărginean",
        "ioana.m@example.ro",
    )
    # the projections saw the clear values through the same store
    found = await clinic.ask(q.GetPatient(phone=PHONE))
    assert found is not None and found.first_name == "Ioana"


async def test_keys_are_stored_wrapped_never_in_clear(world: World) -> None:
    clinic_id = f"clinic-{uuid.uuid4().hex[:10]}"
    key = await world.keys.encryption_key(clinic_id, "patient:p1")
    assert key.material is not None and len(key.material) == 32
    row = await world.pool.fetchrow(
        "SELECT wrapped_key, master_key_id FROM subject_keys WHERE key_id = $1", key.key_id
    )
    assert row is not None and key.material not in bytes(row["wrapped_key"])
    stranger = PostgresSubjectKeyStore(world.pool, [master_key_from_secret("another secret")])
    with pytest.raises(LookupError):
        await stranger.get_keys([key.key_id])


async def test_one_live_key_per_subject_even_under_concurrency(world: World) -> None:
    clinic_id = f"clinic-{uuid.uuid4().hex[:10]}"
    stores = [PostgresSubjectKeyStore.from_secret(world.pool, SECRET) for _ in range(4)]
    keys = await asyncio.gather(
        *(stores[i % 4].encryption_key(clinic_id, "lead:l1") for i in range(16))
    )
    assert len({k.key_id for k in keys}) == 1
    assert len({k.material for k in keys}) == 1


async def test_the_same_idempotent_append_replays_through_postgres(world: World) -> None:
    clinic_id = f"clinic-{uuid.uuid4().hex[:10]}"
    event = PatientRegistered(patient_id="p1", first_name="Ioana", phone=PHONE)
    append = [
        StreamAppend(
            stream_id="patient-p1", stream_type="patient", expected_version=NO_STREAM,
            events=(event,),
        )
    ]  # fmt: skip
    meta = EventMetadata(actor="test")
    first = await world.store.append(clinic_id, append, metadata=meta, idempotency_key="i-1")
    again = await world.store.append(clinic_id, append, metadata=meta, idempotency_key="i-1")
    assert again.replayed and again.last_position == first.last_position
    assert [e.to_domain() for e in await world.store.read_stream(clinic_id, "patient-p1")] == [
        event
    ]


async def test_snapshots_are_sealed_in_postgres(world: World) -> None:
    clinic_id = f"clinic-{uuid.uuid4().hex[:10]}"
    state = {"phone": PHONE, "decisions": {}}
    await world.store.save_snapshot(
        clinic_id, Snapshot(stream_id="consent-p1", version=50, state=state)
    )
    stored = await world.pool.fetchval(
        "SELECT state::text FROM snapshots WHERE clinic_id = $1", clinic_id
    )
    assert "$enc" in stored and "721234567" not in stored
    loaded = await world.store.load_snapshot(clinic_id, "consent-p1")
    assert loaded is not None and loaded.state == state


# --- revocation across processes ---------------------------------------------------------------


async def test_a_destruction_reaches_other_processes_caches(world: World) -> None:
    clinic_id = f"clinic-{uuid.uuid4().hex[:10]}"
    reader = PostgresSubjectKeyStore.from_secret(world.pool, SECRET, cache_ttl_s=3600)
    eraser = PostgresSubjectKeyStore.from_secret(world.pool, SECRET)
    await reader.start()
    try:
        key = await eraser.encryption_key(clinic_id, "patient:p1")
        cached = (await reader.get_keys([key.key_id]))[key.key_id]
        assert not cached.destroyed and reader.caching
        await eraser.destroy(clinic_id, ["patient:p1"], actor="admin", reason=None)
        deadline = asyncio.get_running_loop().time() + 5
        while not (await reader.get_keys([key.key_id]))[key.key_id].destroyed:
            assert asyncio.get_running_loop().time() < deadline, "destruction never arrived"
            await asyncio.sleep(0.01)
    finally:
        await reader.close()


async def test_without_a_listener_nothing_live_is_cached(world: World) -> None:
    clinic_id = f"clinic-{uuid.uuid4().hex[:10]}"
    reader = PostgresSubjectKeyStore.from_secret(world.pool, SECRET, cache_ttl_s=3600)
    eraser = PostgresSubjectKeyStore.from_secret(world.pool, SECRET)
    key = await eraser.encryption_key(clinic_id, "patient:p1")
    assert not (await reader.get_keys([key.key_id]))[key.key_id].destroyed
    await eraser.destroy(clinic_id, ["patient:p1"], actor="admin", reason=None)
    assert (await reader.get_keys([key.key_id]))[key.key_id].destroyed


async def test_destroyed_keys_stay_destroyed_and_their_rows_stay(world: World) -> None:
    clinic_id = f"clinic-{uuid.uuid4().hex[:10]}"
    key = await world.keys.encryption_key(clinic_id, "patient:p1")
    [record] = await world.keys.destroy(clinic_id, ["patient:p1"], actor="admin", reason="asked")
    assert (record.key_id, record.destroyed_by, record.destroy_reason) == (
        key.key_id,
        "admin",
        "asked",
    )
    with pytest.raises(asyncpg.PostgresError):
        await world.pool.execute(
            "UPDATE subject_keys SET wrapped_key = '\\x00', master_key_id = 'x',"
            " destroyed_at = NULL WHERE key_id = $1",
            key.key_id,
        )
    with pytest.raises(asyncpg.PostgresError):
        await world.pool.execute("DELETE FROM subject_keys WHERE key_id = $1", key.key_id)
    with pytest.raises(SubjectErased):
        await world.keys.encryption_key(clinic_id, "patient:p1")
    fresh = await world.keys.encryption_key(clinic_id, "conversation:c1")
    await world.keys.destroy(clinic_id, ["conversation:c1"], actor="admin", reason=None)
    renewed = await world.keys.encryption_key(clinic_id, "conversation:c1")
    assert renewed.key_id != fresh.key_id and not renewed.destroyed


async def test_a_master_key_rotation_rewraps_live_keys(world: World) -> None:
    clinic_id = f"clinic-{uuid.uuid4().hex[:10]}"
    old = master_key_from_secret(SECRET)
    new = master_key_from_secret("the next secret")
    key = await world.keys.encryption_key(clinic_id, "lead:l1")
    rotating = PostgresSubjectKeyStore(world.pool, [new, old])
    assert await rotating.rewrap() >= 1
    only_new = PostgresSubjectKeyStore(world.pool, [new])
    moved: SubjectKey = (await only_new.get_keys([key.key_id]))[key.key_id]
    assert moved.material == key.material
    await PostgresSubjectKeyStore(world.pool, [old, new]).rewrap()  # back, for the module


# --- erasure end to end -------------------------------------------------------------------------


async def test_erasure_end_to_end(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    clinic = await seeded_clinic(world)
    services = clinic.world.services()

    # Before: the read models hold the live patient, but only sealed or as keyed hashes
    # (issue #8): nothing in clear anywhere, yet the scan sees the patient's rows (the
    # hash of the phone, the sealed profile) and the queries read the profile back.
    before_texts = await table_texts(world.pool, clinic.clinic_id)
    assert leaks(before_texts) == {}
    phone_hash = world.pseudonymizer.pseudonym(clinic.clinic_id, PHONE_LOOKUP, PHONE)
    assert phone_hash in before_texts["rm_patients"] and '"$enc"' in before_texts["rm_patients"]
    found = await clinic.ask(q.GetPatient(phone=PHONE))
    assert found is not None and found.notes == "alergie la penicilină"
    export = await export_patient(services, clinic.clinic_id, "p1")
    assert export["profile"]["firstName"] == "Ioana" and export["erased"] is False
    [decision] = export["consents"]["decisions"]
    assert (decision["source"], decision["ipAddress"]) == ("web_form", IP)
    stats_before = await stats(clinic)
    lead_before = await clinic.ask(q.GetLead(lead_id=clinic.lead_id))
    assert lead_before is not None and lead_before.status == "converted"

    report = await erase_patient(
        services, clinic.clinic_id, "p1", actor="api_key:admin", reason="Art. 17 request"
    )
    assert report["erased"] and not report["alreadyErased"]
    assert set(report["subjects"]) == {
        "patient:p1",
        subject_id("lead", clinic.lead_id),
        subject_id("conversation", clinic.conversation_id),
    }
    assert len(report["keysDestroyed"]) == 3
    assert report["readModels"]["projectionsBehind"] == {}
    clinic.position = report["position"]
    await settle(clinic)

    # Nothing anywhere: events, snapshots, every read model, every other table.
    after_texts = await table_texts(world.pool, clinic.clinic_id)
    assert leaks(after_texts) == {}
    assert all(phone_hash not in text for text in after_texts.values())

    # Rebuild every projection from the first event: still nothing.
    for name in PROJECTION_NAMES:
        await rebuild(world.pool, name, store=world.store)
    assert leaks(await table_texts(world.pool, clinic.clinic_id)) == {}

    # Statistics and facts unchanged.
    assert await stats(clinic) == stats_before
    lead_after = await clinic.ask(q.GetLead(lead_id=clinic.lead_id))
    assert lead_after is not None
    assert (lead_after.status, lead_after.score, lead_after.classification) == (
        lead_before.status,
        lead_before.score,
        lead_before.classification,
    )
    assert lead_after.phone == ERASED

    # Aggregates rehydrate: ids, versions, statuses, counts.
    async def load(cls: Any, ident: str) -> Any:
        events = await clinic.events(cls.stream_id_for(ident))
        return cls.rehydrate(ident, [e.to_domain() for e in events], events[-1].version)

    patient = await load(Patient, "p1")
    assert patient.erased and patient.profile["email"] is None and patient.version == 2
    lead = await load(Lead, clinic.lead_id)
    assert (lead.status, lead.patient_id, lead.phone) == ("converted", "p1", ERASED)
    assert (await load(Appointment, "a1")).status == "requested"
    message = await load(Message, "m1")
    assert (message.status, message.content["text"]) == ("queued", None)
    assert (await load(Conversation, clinic.conversation_id)).received == 1

    # Lookup by phone: the erased patient is gone, the live one is found.
    assert await clinic.ask(q.GetPatient(phone=PHONE)) is None
    live = await clinic.ask(q.GetPatient(phone=OTHER_PHONE))
    assert live is not None and (live.patient_id, live.first_name) == ("p2", "Radu")

    # The export shows erased markers and the proof of erasure, nothing personal.
    after = await export_patient(services, clinic.clinic_id, "p1")
    text = str(after)
    assert [s for s in SECRETS if s in text] == []
    assert after["erased"] is True
    assert after["erasure"]["requestedBy"] == "api_key:admin"
    assert after["erasure"]["reason"] == "Art. 17 request"
    [decision] = after["consents"]["decisions"]
    assert (decision["source"], decision["phone"], decision["ipAddress"]) == (
        "web_form",
        ERASED,
        None,
    )
    assert all(k["destroyedAt"] for k in after["keys"])

    # No log line of the whole story (commands, projector, erasure) named the person.
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert caplog.records and [s for s in SECRETS if s in logged] == []

    # Repeating is harmless; the patient can no longer be written about.
    again = await erase_patient(services, clinic.clinic_id, "p1", actor="api_key:admin")
    assert again["alreadyErased"] and again["keysDestroyed"] == []
    with pytest.raises(SubjectErased):
        await clinic.run(
            c.QueueWhatsAppMessage(message_id="m2", to=PHONE, patient_id="p1", text="x")
        )


# --- the admin API -------------------------------------------------------------------------------


@dataclass
class Api:
    client: httpx.AsyncClient
    keys: ApiKeyStore
    audit: AuditLog


@pytest_asyncio.fixture(loop_scope="session")
async def api(world: World) -> AsyncIterator[Api]:
    app = FastAPI()
    install_problem_handlers(app)
    keys = ApiKeyStore(world.pool, SECRET)
    audit = AuditLog(world.pool)
    app.state.authenticator = Authenticator(keys, rate_per_s=1000, burst=1000)
    app.state.gdpr = world.services()
    app.state.audit = audit
    app.include_router(create_gdpr_router())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield Api(client, keys, audit)


async def key_for(api: Api, clinic_id: str, *scopes: str) -> dict[str, str]:
    _, plaintext = await api.keys.create(clinic_id, scopes, "gdpr-test")
    return {"Authorization": f"Bearer {plaintext}"}


async def test_the_admin_routes_need_an_admin_key_of_the_clinic(world: World, api: Api) -> None:
    clinic = await seeded_clinic(world)
    url = "/admin/patients/p1"
    missing = await api.client.get(f"{url}/export")
    assert missing.status_code == 401
    assert missing.headers["content-type"].startswith("application/problem+json")

    writer = await key_for(api, clinic.clinic_id, "read", "write", "consent")
    refused = await api.client.post(f"{url}/erase", headers=writer, json={"reason": "x"})
    assert refused.status_code == 403 and refused.json()["code"] == "FORBIDDEN"
    denied = [r for r in await api.audit.recent(clinic.clinic_id) if r.entry.decision == "denied"]
    assert [r.entry.function for r in denied] == ["admin.erase_patient"]
    assert (await clinic.ask(q.GetPatient(patient_id="p1"))) is not None  # nothing ran

    other_admin = await key_for(api, f"clinic-{uuid.uuid4().hex[:10]}", "admin")
    elsewhere = await api.client.get(f"{url}/export", headers=other_admin)
    assert elsewhere.status_code == 404 and elsewhere.json()["code"] == "NOT_FOUND"


async def test_export_then_erase_over_http(world: World, api: Api) -> None:
    clinic = await seeded_clinic(world)
    admin = await key_for(api, clinic.clinic_id, "admin")

    export = await api.client.get("/admin/patients/p1/export", headers=admin)
    assert export.status_code == 200
    assert export.headers["cache-control"] == "no-store"
    assert "attachment" in export.headers["content-disposition"]
    body = export.json()
    assert body["profile"]["firstName"] == "Ioana" and body["consents"]["decisions"]

    unknown = await api.client.post("/admin/patients/nobody/erase", headers=admin)
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")

    erased = await api.client.post(
        "/admin/patients/p1/erase", headers=admin, json={"reason": "Art. 17 request"}
    )
    assert erased.status_code == 200, erased.text
    report = erased.json()
    assert report["erased"] is True and len(report["keysDestroyed"]) == 3

    after = await api.client.get("/admin/patients/p1/export", headers=admin)
    assert after.status_code == 200
    assert after.json()["erased"] is True
    assert [s for s in SECRETS if s in after.text] == []
    allowed = [r.entry.function for r in await api.audit.recent(clinic.clinic_id)]
    assert allowed.count("admin.export_patient") == 2 and "admin.erase_patient" in allowed


async def test_a_cold_write_in_another_process_reuses_what_its_read_proved(world: World) -> None:
    """Another process (its own key store) reads a patient's stream: its keys come in the
    same statement as its events (no key lookup of their own), the key that opened it
    is the subject's live key (no second lookup to seal the update) and the stream's link
    to the subject is known (no INSERT into the subject index); the update still lands."""
    clinic = await seeded_clinic(world)
    counted: list[str] = []

    class Counting(PostgresSubjectKeyStore):
        async def get_keys(self, key_ids: Any) -> Any:
            counted.append(f"key lookup {sorted(key_ids)}")
            return await super().get_keys(key_ids)

        async def _live_key(self, clinic_id: str, subject: str) -> Any:
            counted.append("live-key lookup")
            return await super()._live_key(clinic_id, subject)

        async def link(self, clinic_id: str, links: Any) -> None:
            fresh = self._seen.new(clinic_id, links)
            if fresh:
                counted.append(f"link insert {fresh}")
            await super().link(clinic_id, links)

    keys = Counting.from_secret(world.pool, SECRET)
    await keys.start()
    try:
        store = CryptoShreddingEventStore(world.inner, keys, world.pseudonymizer)
        bus = CommandBus(store, pool=world.pool, pseudonymizer=world.pseudonymizer)
        result = await bus.execute(
            c.UpdatePatient(patient_id="p1", updates=c.PatientChanges(notes="second process")),
            clinic.ctx(),
        )
        assert result.stream_versions[Patient.stream_id_for("p1")] >= 2
        assert counted == []
        [*_, updated] = await clinic.events(Patient.stream_id_for("p1"))
        assert updated.to_domain().changes == {"notes": "second process"}  # type: ignore[attr-defined]
    finally:
        await keys.close()


async def test_a_stream_read_with_its_keys_trusts_the_table_over_a_cached_live_key(
    world: World,
) -> None:
    """The keys read along with a stream are the table's: a key destroyed there is
    not opened even while this process still caches it live (a missed notification)."""
    clinic = await seeded_clinic(world)
    stream = Patient.stream_id_for("p1")
    [registered, *_] = await clinic.events(stream)  # opened: the key is cached live
    assert registered.data["first_name"] == "Ioana"
    await world.pool.execute(  # destroyed behind the cache's back: no NOTIFY
        "UPDATE subject_keys SET wrapped_key = NULL, master_key_id = NULL, destroyed_at = now()"
        " WHERE clinic_id = $1 AND subject_id = $2",
        clinic.clinic_id,
        "patient:p1",
    )
    [registered, *_] = await clinic.events(stream)
    assert registered.data["first_name"] == erased_value(PatientRegistered, "first_name")
    assert registered.data["phone"] == erased_value(PatientRegistered, "phone")
