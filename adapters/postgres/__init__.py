"""PostgreSQL adapters: the pool, migrations and the event store (asyncpg)."""
