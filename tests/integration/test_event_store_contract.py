"""The PostgreSQL event store passes the shared EventStore contract."""

from __future__ import annotations

import pytest

from adapters.postgres.event_store import PostgresEventStore
from tests.contracts.event_store_contract import EventStoreContract

pytestmark = pytest.mark.asyncio(loop_scope="session")


class TestPostgresEventStore(EventStoreContract):
    @pytest.fixture
    def store(self, event_store: PostgresEventStore) -> PostgresEventStore:
        return event_store
