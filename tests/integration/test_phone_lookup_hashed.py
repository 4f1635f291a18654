"""Looking patients up by phone through keyed hashes (issue #8), on real PostgreSQL.

Production wiring: ``CryptoShreddingEventStore`` over ``PostgresEventStore`` with
``PostgresSubjectKeyStore``, the real command and query buses (the query bus opens
sealed read-model values with the subject keys) and the real projector reading
through the shredding store in the background. The read models must let a live
patient be found by any accepted form of the phone, hold no phone or e-mail (or
other profile value) in clear, forget an erased person in live and rebuilt form, and
give the same phone a different hash in another clinic.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from adapters.cqrs import CommandBus, QueryBus
from adapters.crypto.keys import PostgresSubjectKeyStore, subject_id
from adapters.gdpr import GdprServices, PostgresReadModelEraser, erase_patient
from adapters.postgres.event_store import PostgresEventStore
from adapters.postgres.migrate import MIGRATIONS_DIR, apply_migrations
from adapters.postgres.pool import create_pool
from adapters.projections import (
    PROJECTION_NAMES,
    PROJECTION_TYPES,
    Projector,
    all_projections,
    personal_of,
    rebuild,
    run_projector,
    status,
    store_reader,
)
from adapters.projections.personal import EMAIL_LOOKUP, PHONE_LOOKUP
from adapters.pseudonym import HmacPseudonymizer
from adapters.shredding_store import CryptoShreddingEventStore
from domain import commands as c
from domain import queries as q
from domain.cqrs import Command, CommandContext
from domain.functions.context import FunctionContext
from domain.functions.patients import GetPatientArgs, get_patient
from tests.fixtures.postgres import with_database

pytestmark = pytest.mark.asyncio(loop_scope="session")

SECRET = "phone-lookup-test-secret-0123456789"
PHONE = "+40721234567"
PHONE_FORMS = ("0721 234 567", "0040721234567", "+40 721-234-567", "40721234567", PHONE)
EMAIL = "Ioana.Marginean@Example.ro"
OTHER_PHONE = "+40722000111"
IP = "198.51.100.7"
PLAINTEXT = (
    PHONE,
    "721234567",  # the national number, in any formatting
    "721 234 567",
    "ioana.marginean@example.ro",
    "Ioana.Marginean",
    "Ioana",
    "Mărginean",
    "M\\u0103rginean",  # how JSON text may spell it
    "alergie",
    IP,
)


@dataclass
class World:
    pool: asyncpg.Pool
    keys: PostgresSubjectKeyStore
    store: CryptoShreddingEventStore
    bus: CommandBus
    queries: QueryBus
    pseudonymizer: HmacPseudonymizer

    def gdpr(self) -> GdprServices:
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
    queries = QueryBus(pg_pool, pseudonymizer=pseudonymizer, keys=keys, cache_ttl=0)
    stop = asyncio.Event()
    projector = asyncio.create_task(
        run_projector(pg_pool, stop, store=store, poll_interval=0.05, leader_interval=0.2)
    )
    try:
        yield World(pg_pool, keys, store, bus, queries, pseudonymizer)
    finally:
        stop.set()
        await asyncio.wait_for(projector, 10)
        await keys.close()


@dataclass
class Clinic:
    world: World
    clinic_id: str
    position: int = 0

    def ctx(self) -> CommandContext:
        return CommandContext(clinic_id=self.clinic_id, actor="api_key:test")

    async def run(self, command: Command) -> dict[str, Any]:
        done = await self.world.bus.execute(command, self.ctx())
        self.position = max(self.position, done.position)
        return done.result

    async def ask(self, query: Any) -> Any:
        return await self.world.queries.ask(query, self.ctx(), min_position=self.position)

    async def get_patient(self, **arguments: Any) -> Any:
        """The gateway function ``get_patient``, as an agent calls it."""
        ctx = FunctionContext(
            command=self.ctx(),
            commands=self.world.bus,
            queries=self.world.queries,
            workflows=None,  # type: ignore[arg-type]  # get_patient starts no workflow
            now=datetime.now(UTC),
            min_position=self.position,
        )
        return await get_patient(GetPatientArgs.model_validate(arguments), ctx)

    def phone_hash(self, phone: str = PHONE) -> str:
        return self.world.pseudonymizer.pseudonym(self.clinic_id, PHONE_LOOKUP, phone)


async def seeded(world: World) -> Clinic:
    """Patient p1 (came as a WhatsApp lead, consented, was messaged) and patient p2."""
    clinic = Clinic(world, f"clinic-{uuid.uuid4().hex[:10]}")
    await clinic.run(c.ScoreLead(phone="0721 234 567", channel="whatsapp"))
    lead_id = world.pseudonymizer.pseudonym(clinic.clinic_id, "lead", PHONE)
    await clinic.run(
        c.RecordInboundMessage(
            provider_message_id=f"wamid.{clinic.clinic_id}", from_phone=PHONE, text="Bună ziua"
        )
    )
    await clinic.run(
        c.RegisterPatient(
            patient_id="p1",
            first_name="Ioana",
            last_name="Mărginean",
            phone="0721 234 567",
            email=EMAIL,
            notes="alergie la penicilină",
            lead_id=lead_id,
        )
    )
    await clinic.run(c.ConvertLead(lead_id=lead_id, patient_id="p1"))
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
    await clinic.run(c.QueueWhatsAppMessage(message_id="m1", to=PHONE, patient_id="p1", text="Hi"))
    await clinic.run(c.RegisterPatient(patient_id="p2", first_name="Radu", phone=OTHER_PHONE))
    await settle(clinic)
    return clinic


async def settle(clinic: Clinic) -> None:
    """Wait until every projection has applied the clinic's events."""
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        rows = await clinic.world.pool.fetch(
            "SELECT name, position FROM projection_checkpoints WHERE name = ANY($1::text[])",
            list(PROJECTION_NAMES),
        )
        reached = {r["name"]: r["position"] for r in rows}
        if all(reached.get(n, 0) >= clinic.position for n in PROJECTION_NAMES):
            return
        assert asyncio.get_running_loop().time() < deadline, f"projections stuck: {reached}"
        await asyncio.sleep(0.05)


async def projection_texts(pool: asyncpg.Pool, clinic_id: str) -> dict[str, list[str]]:
    """Every value of every text-like column (text, varchar, json, jsonb, arrays) of every
    row of every projection table of the clinic, by ``table.column``."""
    out: dict[str, list[str]] = {}
    for cls in PROJECTION_TYPES:
        for table in cls.tables:
            columns = await pool.fetch(
                """SELECT column_name FROM information_schema.columns
                   WHERE table_schema = 'public' AND table_name = $1
                     AND (data_type IN ('text', 'character varying', 'character', 'json',
                                        'jsonb') OR data_type = 'ARRAY')""",
                table,
            )
            for col in columns:
                name = col["column_name"]
                values = await pool.fetch(
                    f'SELECT "{name}"::text AS v FROM "{table}" WHERE clinic_id = $1', clinic_id
                )
                out[f"{table}.{name}"] = [r["v"] for r in values if r["v"] is not None]
    return out


def plaintext_in(texts: dict[str, list[str]]) -> dict[str, list[str]]:
    """The columns holding any of the seeded personal values in clear (case-insensitive)."""
    found = {
        column: [s for s in PLAINTEXT if any(s.lower() in v.lower() for v in values)]
        for column, values in texts.items()
    }
    return {column: hits for column, hits in found.items() if hits}


def holding(texts: dict[str, list[str]], value: str) -> list[str]:
    return sorted(column for column, values in texts.items() if any(value in v for v in values))


# --- a live patient -------------------------------------------------------------------------


async def test_a_live_patient_is_found_by_any_accepted_form_of_the_phone(world: World) -> None:
    clinic = await seeded(world)
    for form in PHONE_FORMS:
        result = await clinic.get_patient(phone=form)
        assert result.found, form
        patient = result.patient
        assert (patient.patient_id, patient.phone) == ("p1", PHONE)
        assert patient.email == EMAIL.lower()  # e-mails are stored in lower case
        assert (patient.first_name, patient.last_name) == ("Ioana", "Mărginean")
        assert patient.notes == "alergie la penicilină"
    by_email = await clinic.ask(q.GetPatient(email=EMAIL.upper()))
    by_both = await clinic.ask(q.GetPatient(phone="0721234567", email=EMAIL.lower()))
    assert by_email is not None and by_email == by_both and by_email.patient_id == "p1"
    assert await clinic.ask(q.GetPatient(phone="0721234567", email="other@example.ro")) is None
    assert await clinic.ask(q.GetPatient(email="   ")) is None  # a blank key matches nobody
    assert not (await clinic.get_patient(phone="0729 999 999")).found
    other = await clinic.get_patient(phone="0722 000 111")
    assert other.found and other.patient.patient_id == "p2"

    consent = await clinic.ask(q.CheckConsent(phone="0721 234 567"))
    assert consent is not None and consent.patient_id == "p1"
    [decision] = [s for s in consent.consents if s.consent_type == "data_processing"]
    assert (decision.status, decision.ip_address) == ("granted", IP)
    lead = await clinic.ask(q.GetLead(phone="0721 234 567"))
    assert lead is not None and (lead.phone, lead.patient_id) == (PHONE, "p1")
    messages = await clinic.ask(q.GetMessageStatus(patient_id="p1"))
    assert [(m.message_id, m.phone) for m in messages] == [("m1", PHONE)]


async def test_the_read_models_hold_keyed_hashes_and_no_plaintext(world: World) -> None:
    clinic = await seeded(world)
    texts = await projection_texts(world.pool, clinic.clinic_id)
    assert plaintext_in(texts) == {}
    # Lookup columns are the clinic's keyed hashes of the normalised values...
    assert holding(texts, clinic.phone_hash()) == [
        "rm_consents.phone_hash",
        "rm_patients.phone_hash",
    ]
    email_hash = world.pseudonymizer.pseudonym(clinic.clinic_id, EMAIL_LOOKUP, EMAIL.lower())
    assert holding(texts, email_hash) == ["rm_patients.email_hash"]
    # ...and no column of a projection table is still named after a personal value.
    plain_columns = await world.pool.fetch(
        """SELECT table_name, column_name FROM information_schema.columns
           WHERE table_schema = 'public' AND table_name = ANY($1::text[])
             AND column_name IN ('phone', 'email', 'first_name', 'last_name', 'notes',
                                 'date_of_birth', 'ip_address', 'to', 'from_phone')""",
        [t for cls in PROJECTION_TYPES for t in cls.tables],
    )
    assert [dict(r) for r in plain_columns] == []
    # The scan does see the sealed values it could have found text in.
    sealed = {column for column, values in texts.items() if any('"$enc"' in v for v in values)}
    assert sealed == {
        "rm_patients.profile_sealed",
        "rm_leads.phone_sealed",
        "rm_consents.ip_address_sealed",
        "rm_messages.phone_sealed",
    }


async def test_the_same_phone_in_another_clinic_has_another_hash(world: World) -> None:
    one = await seeded(world)
    other = Clinic(world, f"clinic-{uuid.uuid4().hex[:10]}")
    await other.run(c.RegisterPatient(patient_id="p9", first_name="Elena", phone="0721 234 567"))
    await settle(other)
    hashes = {
        r["clinic_id"]: r["phone_hash"]
        for r in await world.pool.fetch(
            "SELECT clinic_id, phone_hash FROM rm_patients"
            " WHERE clinic_id = ANY($1::text[]) AND phone_hash IS NOT NULL"
            " AND patient_id IN ('p1', 'p9')",
            [one.clinic_id, other.clinic_id],
        )
    }
    assert hashes == {one.clinic_id: one.phone_hash(), other.clinic_id: other.phone_hash()}
    assert hashes[one.clinic_id] != hashes[other.clinic_id]
    mine, theirs = (
        await one.get_patient(phone=PHONE),
        await other.get_patient(phone=PHONE),
    )
    assert (mine.patient.patient_id, theirs.patient.patient_id) == ("p1", "p9")
    assert theirs.patient.first_name == "Elena"
    # A hash copied from another clinic finds nothing: ids do not cross clinics either.
    assert (await other.get_patient(patientId="p1")).found is False


# --- erasure ---------------------------------------------------------------------------------


async def test_after_erasure_the_phone_finds_nothing_live_or_rebuilt(world: World) -> None:
    clinic = await seeded(world)
    report = await erase_patient(world.gdpr(), clinic.clinic_id, "p1", actor="api_key:admin")
    assert report["readModels"]["projectionsBehind"] == {}
    clinic.position = report["position"]
    await settle(clinic)

    async def nothing_left(when: str) -> None:
        for form in PHONE_FORMS:
            assert not (await clinic.get_patient(phone=form)).found, (when, form)
        assert not (await clinic.get_patient(email=EMAIL)).found, when
        assert not (await clinic.get_patient(patientId="p1")).found, when
        assert await clinic.ask(q.CheckConsent(phone=PHONE)) is None, when
        texts = await projection_texts(world.pool, clinic.clinic_id)
        assert plaintext_in(texts) == {}, when
        assert holding(texts, clinic.phone_hash()) == [], when
        live = await clinic.get_patient(phone=OTHER_PHONE)
        assert live.found and live.patient.first_name == "Radu", when
        lead = await clinic.ask(q.GetLead(phone=PHONE))
        assert lead is not None and lead.phone == "[erased]", when  # facts kept, phone not
        [message] = await clinic.ask(q.GetMessageStatus(message_id="m1"))
        assert message.phone is None, when

    await nothing_left("live")
    for name in PROJECTION_NAMES:
        await rebuild(world.pool, name, store=world.store)
    await nothing_left("rebuilt")


async def test_a_destroyed_key_hides_the_patient_before_the_projection_catches_up(
    world: World,
) -> None:
    """Shown values are opened on read: once the keys are gone the row reveals nothing,
    even while it still carries its hash (the projection has not seen an erasure)."""
    clinic = await seeded(world)
    assert (await clinic.get_patient(phone=PHONE)).found
    await world.keys.destroy(
        clinic.clinic_id, [subject_id("patient", "p1")], actor="test", reason="test"
    )
    row = await world.pool.fetchrow(
        "SELECT erased, phone_hash FROM rm_patients WHERE clinic_id = $1 AND patient_id = 'p1'",
        clinic.clinic_id,
    )
    assert row is not None and dict(row) == {"erased": False, "phone_hash": clinic.phone_hash()}
    assert not (await clinic.get_patient(phone=PHONE)).found
    assert not (await clinic.get_patient(patientId="p1")).found
    consent = await clinic.ask(q.CheckConsent(patient_id="p1"))
    assert consent is not None and all(s.ip_address is None for s in consent.consents)


# --- versions: the projector rebuilds what an older version wrote -------------------------------


async def test_an_outdated_projection_is_rebuilt_by_the_projector(world: World) -> None:
    clinic = await seeded(world)
    # As migration 0070 leaves it: rows gone, checkpoint at 0 and at the old version.
    async with world.pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM rm_patients")
        await conn.execute(
            "UPDATE projection_checkpoints SET position = 0, version = 1 WHERE name = 'patients'"
        )
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        version = await world.pool.fetchval(
            "SELECT version FROM projection_checkpoints WHERE name = 'patients'"
        )
        if version == 2:
            break
        assert asyncio.get_running_loop().time() < deadline, "the projector did not rebuild"
        await asyncio.sleep(0.05)
    await settle(clinic)
    result = await clinic.get_patient(phone="0721 234 567")
    assert result.found and result.patient.first_name == "Ioana"
    patients = {row["name"]: row for row in await status(world.pool)}["patients"]
    assert (patients["version"], patients["outdated"]) == (2, False)


async def test_migration_0070_removes_plaintext_and_the_projector_rebuilds(
    pg_server_dsn: str, tmp_path: Path
) -> None:
    """An old database (plaintext columns, version-1 rows) migrated to 0070, then projected."""
    name = f"mc_phone_migration_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_server_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = with_database(pg_server_dsn, name)
    before = tmp_path / "before"
    before.mkdir()
    for path in MIGRATIONS_DIR.iterdir():
        if path.suffix == ".sql" and path.name < "0070":
            shutil.copy(path, before / path.name)
    await apply_migrations(dsn, directory=before)
    pool = await create_pool(dsn, min_size=1, max_size=4)
    inner = PostgresEventStore(pool)
    keys = PostgresSubjectKeyStore.from_secret(pool, SECRET)
    pseudonymizer = HmacPseudonymizer(SECRET.encode())
    store = CryptoShreddingEventStore(inner, keys, pseudonymizer)
    try:
        ctx = CommandContext(clinic_id="clinic-old", actor="test")
        bus = CommandBus(store, pool=pool, pseudonymizer=pseudonymizer)
        done = await bus.execute(
            c.RegisterPatient(patient_id="p1", first_name="Ioana", phone=PHONE, email=EMAIL), ctx
        )
        # What the version-1 projection had written: the profile in clear.
        await pool.execute(
            "INSERT INTO rm_patients (clinic_id, patient_id, first_name, phone, email,"
            " created_at, updated_at) VALUES ('clinic-old', 'p1', 'Ioana', $1, $2, now(), now())",
            PHONE,
            EMAIL,
        )
        await pool.execute(
            "INSERT INTO projection_checkpoints (name, position) VALUES ('patients', $1)",
            done.position,
        )

        await apply_migrations(dsn)
        row = await pool.fetchrow(
            "SELECT position, version FROM projection_checkpoints WHERE name = 'patients'"
        )
        assert dict(row) == {"position": 0, "version": 1}
        assert await pool.fetchval("SELECT count(*) FROM rm_patients") == 0

        projector = Projector(pool, all_projections(personal_of(store)), reader=store_reader(store))
        # Readers stop below the server's oldest open transaction (any database's: other
        # tests share this server), so catch up until the event is visible to them.
        for _ in range(200):
            await projector.catch_up()
            row = await pool.fetchrow(
                "SELECT position, version FROM projection_checkpoints WHERE name = 'patients'"
            )
            if row["position"] >= done.position:
                break
            await asyncio.sleep(0.05)
        assert dict(row) == {"position": done.position, "version": 2}
        queries = QueryBus(pool, pseudonymizer=pseudonymizer, keys=keys, cache_ttl=0)
        found = await queries.ask(q.GetPatient(phone="0721 234 567"), ctx)
        assert found is not None and (found.first_name, found.email) == ("Ioana", EMAIL.lower())
        texts = await projection_texts(pool, "clinic-old")
        assert plaintext_in(texts) == {}
    finally:
        await inner.aclose()
        await pool.close()
        admin = await asyncpg.connect(pg_server_dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_a_projector_without_the_secret_and_keys_refuses_to_start(
    pg_pool: asyncpg.Pool, event_store: PostgresEventStore
) -> None:
    """Without them it could neither hash nor seal: it must not write plaintext instead."""
    with pytest.raises(ValueError, match="keeps personal data"):
        all_projections()
    with pytest.raises(ValueError, match="keeps personal data"):
        await run_projector(pg_pool, asyncio.Event(), store=event_store)
    with pytest.raises(ValueError, match="keeps personal data"):
        await rebuild(pg_pool, "patients")


async def test_the_projector_reads_events_as_the_store_hands_them_out(world: World) -> None:
    """The projector reads the events table itself (data as JSON text, no metadata) and
    opens it through the shredding store: the same events and data as ``read_all``
    through the store, erased values included, each with the key that sealed it."""
    clinic = await seeded(world)
    await world.keys.destroy(
        clinic.clinic_id, [subject_id("patient", "p2")], actor="test", reason="test"
    )
    projected = await store_reader(world.store)(0, 100_000)
    assert projected and projected[-1].position >= clinic.position
    opened = await world.store.read_all(after_position=0, limit=len(projected))
    raw = await world.store.inner.read_all(after_position=0, limit=len(projected))
    assert [e.position for e in projected] == [e.global_position for e in opened]
    for p, o, r in zip(projected, opened, raw, strict=True):
        assert (p.clinic_id, p.stream_id, p.stream_type, p.version, p.type, p.recorded_at) == (
            o.clinic_id,
            o.stream_id,
            o.stream_type,
            o.version,
            o.event_type,
            o.recorded_at,
        )
        assert p.data == o.data
        kids = {v["kid"] for v in r.data.values() if isinstance(v, dict) and "kid" in v}
        assert p.key_id == (kids.pop() if len(kids) == 1 else None)
    mine = [p for p in projected if p.clinic_id == clinic.clinic_id]
    p2 = next(p for p in mine if p.type == "PatientRegistered" and p.data["patient_id"] == "p2")
    assert p2.data["phone"] is None and p2.key_id is not None  # erased, and says by which key
    p1 = next(p for p in mine if p.type == "PatientRegistered" and p.data["patient_id"] == "p1")
    assert p1.data["first_name"] == "Ioana"
