"""Dev-stack and operator tasks behind the CLI: migrations, the dev key, the demo seed,
projections and API keys. Everything goes through the same commands the API uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from adapters.settings import Settings

log = logging.getLogger(__name__)

DEV_CLINIC = "clinic-demo"
DEV_KEY_FILE = "dev_api_key"
SEED_MARKER = "seeded"
ALL_SCOPES = ["read", "write", "messaging", "consent", "admin"]


@contextlib.asynccontextmanager
async def services_for(
    settings: Settings, database_url: str, *, pool_max: int = 4
) -> AsyncIterator[Any]:
    from adapters.container import build_services

    services = await build_services(
        settings, database_url=database_url, pool_min=1, pool_max=pool_max
    )
    try:
        yield services
    finally:
        await services.aclose()


async def prepare(settings: Settings, database_url: str, state: Path, *, seed: bool) -> str:
    """Migrate, make sure the dev key works, seed on first start. Returns the dev key."""
    from adapters.postgres.migrate import apply_migrations

    await apply_migrations(database_url)
    async with services_for(settings, database_url) as services:
        key = await ensure_dev_key(settings, services, state)
        if seed and not (state / SEED_MARKER).exists():
            await seed_with(services)
            (state / SEED_MARKER).write_text(datetime.now(UTC).isoformat(), encoding="utf-8")
    return key


async def ensure_dev_key(settings: Settings, services: Any, state: Path) -> str:
    """The dev clinic's admin key: MEDICALCOR_DEV_API_KEY exactly, else a stored or new one."""
    from adapters.api_keys import ApiKeyStore

    store = ApiKeyStore(services.pool, settings.secret_key)
    wanted = settings.dev_api_key
    path = state / DEV_KEY_FILE
    if wanted is None and path.exists():
        wanted = path.read_text(encoding="utf-8").strip() or None
    if wanted is not None and await store.verify(wanted) is not None:
        return wanted
    _record, plaintext = await store.create(
        DEV_CLINIC, ALL_SCOPES, "dev admin key", plaintext=wanted
    )
    if settings.dev_api_key is None:
        path.write_text(plaintext + "\n", encoding="utf-8")
        os.chmod(path, 0o600)
    return str(plaintext)


# --- the demo clinic --------------------------------------------------------------------


async def seed_demo(settings: Settings, database_url: str) -> dict[str, Any]:
    from adapters.postgres.migrate import apply_migrations

    await apply_migrations(database_url)
    async with services_for(settings, database_url) as services:
        return await seed_with(services)


def _seed_commands(today: date) -> list[Any]:
    from domain import commands as c

    doctors = [
        ("dr-popescu", "Dr. Ana Popescu", ["implant", "all_on_x", "extraction", "consultation"]),
        ("dr-ionescu", "Dr. Mihai Ionescu", ["cleaning", "whitening", "filling", "consultation"]),
        ("dr-georgescu", "Dr. Elena Georgescu", ["orthodontics", "veneers", "consultation"]),
    ]
    patients = [
        ("pat-1001", "Maria", "Popa", "+40721234567", "maria.popa@example.ro"),
        ("pat-1002", "Andrei", "Stan", "+40722345678", "andrei.stan@example.ro"),
        ("pat-1003", "Ioana", "Dumitru", "+40723456789", "ioana.dumitru@example.ro"),
        ("pat-1004", "George", "Marin", "+40724567890", None),
        ("pat-1005", "Elena", "Radu", "+40725678901", "elena.radu@example.ro"),
    ]
    out: list[Any] = [
        c.ConfigureClinic(name="MedicalCor Demo Dental", location="Str. Victoriei 10, București"),
    ]
    out += [c.AddDoctor(doctor_id=d, name=n, services=s) for d, n, s in doctors]
    for pid, first, last, phone, email in patients:
        out.append(
            c.RegisterPatient(
                patient_id=pid, first_name=first, last_name=last, phone=phone, email=email
            )
        )
        for consent in ("data_processing", "appointment_reminders"):
            out.append(
                c.RecordConsent(
                    patient_id=pid,
                    phone=phone,
                    consent_type=consent,
                    status="granted",
                    source="seed_form",
                )
            )
    out.append(
        c.RecordConsent(
            patient_id="pat-1001",
            phone="+40721234567",
            consent_type="marketing_whatsapp",
            status="granted",
            source="seed_form",
        )
    )
    leads = [
        ("+40731000001", "whatsapp", "Bună, vreau All-on-4, cât costă? Am durere."),
        ("+40731000002", "web", "Aș dori un implant dentar, ce preț aveți?"),
        ("+40731000003", "voice", "Vreau o albire pentru nunta de luna viitoare."),
        ("+40731000004", "referral", "Prietena mea mi-a recomandat clinica, vreau o consultație."),
        ("+40731000005", "whatsapp", "Salut, ce program aveți?"),
        ("+40731000006", "web", "I would like veneers, what does it cost in euro?"),
    ]
    for phone, channel, text in leads:
        out.append(
            c.ScoreLead(
                phone=phone,
                channel=channel,
                messages=[{"role": "user", "content": text}],
                utm={"source": "google", "medium": "cpc", "campaign": "demo"}
                if channel == "web"
                else None,
            )
        )
    return out


async def seed_with(services: Any) -> dict[str, Any]:
    """Run the demo clinic's commands; idempotent (each command has a fixed key)."""
    from domain.cqrs import CommandContext

    today = datetime.now(UTC).date()
    done = 0
    for n, command in enumerate(_seed_commands(today)):
        ctx = CommandContext(
            clinic_id=DEV_CLINIC,
            actor="seed",
            idempotency_key=f"seed:{n}:{command.command_type}",
            correlation_id="seed",
        )
        await services.command_bus.execute(command, ctx)
        done += 1
    return {"clinicId": DEV_CLINIC, "commands": done}


async def seed_workflows(
    settings: Settings, database_url: str, state: Path, env: dict[str, str]
) -> None:
    """Start a few real workflows through the API so the Temporal UI has something to show."""
    marker = state / "seeded-workflows"
    if marker.exists():
        return
    key_path = state / DEV_KEY_FILE
    key = settings.dev_api_key or key_path.read_text(encoding="utf-8").strip()
    base = f"http://{settings.api_host}:{settings.api_port}"
    day = _next_weekday(datetime.now(UTC).date() + timedelta(days=2))
    calls = [
        {
            "function": "schedule_appointment",
            "arguments": {
                "patientId": "pat-1001",
                "serviceType": "cleaning",
                "preferredDate": day.isoformat(),
                "preferredTimeSlot": "morning",
            },
        },
        {
            "function": "trigger_workflow",
            "arguments": {
                "workflow": "nurture-sequence",
                "payload": {"phone": "+40731000003", "classification": "WARM"},
            },
        },
    ]
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        response = await client.post(
            "/ai/execute",
            json={"type": "function_call", "calls": calls},
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "seed-workflows"},
        )
    if response.status_code == 200:
        marker.write_text(datetime.now(UTC).isoformat(), encoding="utf-8")
    else:
        log.warning("seeding workflows answered %s: %s", response.status_code, response.text)


def _next_weekday(day: date) -> date:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


# --- projections ------------------------------------------------------------------------


async def projection_status(database_url: str) -> list[dict[str, Any]]:
    from adapters.postgres.pool import create_pool
    from adapters.projections import status

    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        return [dict(row) if not isinstance(row, dict) else row for row in await status(pool)]
    finally:
        await pool.close()


async def projection_rebuild(database_url: str, name: str) -> dict[str, Any]:
    """Rebuild one projection, reading events through the crypto-shredding store."""
    from adapters.projections import rebuild

    async with services_for(Settings(), database_url) as services:
        result = await rebuild(services.pool, name, store=services.store)
    return result if isinstance(result, dict) else {"projection": name, "result": result}


async def run_projector_process(settings: Settings, database_url: str) -> None:
    """The projector until SIGTERM/SIGINT; metrics on its own port."""
    import signal

    from adapters.projections import run_projector
    from adapters.telemetry.logging import configure_logging
    from adapters.telemetry.metrics import start_metrics_server

    configure_logging("medicalcor-projector", settings.log_level)
    start_metrics_server(settings.projector_metrics_port, settings.api_host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with services_for(settings, database_url, pool_max=10) as services:
        await run_projector(services.pool, stop, store=services.store)


# --- API keys ---------------------------------------------------------------------------


async def keys_create(
    settings: Settings, database_url: str, clinic: str, scopes: list[str], name: str
) -> dict[str, Any]:
    from adapters.api_keys import ApiKeyStore
    from adapters.postgres.pool import create_pool

    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        record, plaintext = await ApiKeyStore(pool, settings.secret_key).create(
            clinic, [s.strip() for s in scopes if s.strip()], name
        )
        return {
            "keyId": record.key_id,
            "clinicId": clinic,
            "scopes": sorted(record.scopes),
            "key": plaintext,
            "note": "shown once; only its hash is stored",
        }
    finally:
        await pool.close()


async def keys_list(settings: Settings, database_url: str, clinic: str | None) -> list[Any]:
    from adapters.api_keys import ApiKeyStore
    from adapters.postgres.pool import create_pool

    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        store = ApiKeyStore(pool, settings.secret_key)
        clinics = (
            [clinic]
            if clinic
            else [
                r["clinic_id"] for r in await pool.fetch("SELECT DISTINCT clinic_id FROM api_keys")
            ]
        )
        out: list[Any] = []
        for c in clinics:
            for key in await store.list(c, include_revoked=True):
                out.append(
                    {
                        "keyId": key.key_id,
                        "clinicId": key.clinic_id,
                        "name": key.name,
                        "scopes": sorted(key.scopes),
                        "prefix": key.prefix,
                        "createdAt": key.created_at,
                        "revokedAt": key.revoked_at,
                    }
                )
        return out
    finally:
        await pool.close()


async def keys_revoke(settings: Settings, database_url: str, key_id: str) -> bool:
    from adapters.api_keys import ApiKeyStore
    from adapters.postgres.pool import create_pool

    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        return await ApiKeyStore(pool, settings.secret_key).revoke(key_id)
    finally:
        await pool.close()
