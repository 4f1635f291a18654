"""Schema migrations: plain SQL files applied in order, each once.

Files are ``adapters/postgres/migrations/NNNN_name.sql``; each runs in its own
transaction together with its row in ``schema_migrations``. A session advisory
lock serialises concurrent callers (several replicas starting at once): the first
applies, the others wait and then find nothing left to do.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import asyncpg

from adapters.postgres.pool import connect

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
MIGRATION_LOCK = (0x4D434D47, 0)  # "MCMG"
_NAME = re.compile(r"^(\d{4})_[A-Za-z0-9_]+\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       text        PRIMARY KEY,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[Path]:
    """The migration files in apply order; a duplicated number is refused."""
    files = sorted(p for p in directory.iterdir() if _NAME.match(p.name))
    numbers = [p.name[:4] for p in files]
    duplicates = sorted({n for n in numbers if numbers.count(n) > 1})
    if duplicates:
        raise RuntimeError(f"duplicate migration numbers: {', '.join(duplicates)}")
    return files


async def apply_migrations(
    dsn_or_conn: str | asyncpg.Connection, *, directory: Path = MIGRATIONS_DIR
) -> list[str]:
    """Apply the migrations not applied yet; returns their names (without ``.sql``)."""
    if isinstance(dsn_or_conn, str):
        conn = await connect(dsn_or_conn, application_name="medicalcor-migrate")
        try:
            return await _apply(conn, directory)
        finally:
            await conn.close()
    return await _apply(dsn_or_conn, directory)


async def _apply(conn: asyncpg.Connection, directory: Path) -> list[str]:
    await conn.execute("SELECT pg_advisory_lock($1, $2)", *MIGRATION_LOCK)
    try:
        await conn.execute(_CREATE_TABLE)
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        applied: list[str] = []
        for path in migration_files(directory):
            name = path.stem
            if name in done:
                continue
            sql = path.read_text(encoding="utf-8")
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
                    name,
                    hashlib.sha256(sql.encode()).hexdigest(),
                )
            applied.append(name)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1, $2)", *MIGRATION_LOCK)
