from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import pytest_asyncio

from dockyard.eventsourcing import EventStore, SnapshotStore
from dockyard.serialization import Serializer
from dockyard.sql import Database, SqlEventStore, SqlSnapshotStore
from dockyard.testing.contracts import (
    EventStoreContract,
    EventStoreFactory,
    SnapshotStoreContract,
    SnapshotStoreFactory,
)

pytestmark = pytest.mark.postgres


class TestPostgresEventStore(EventStoreContract):
    @pytest_asyncio.fixture
    async def event_store_factory(
        self, postgres_database: Database
    ) -> AsyncIterator[EventStoreFactory]:
        @asynccontextmanager
        async def session(serializer: Serializer) -> AsyncIterator[EventStore]:
            async with postgres_database.unit_of_work() as uow:
                yield SqlEventStore(uow, serializer)

        yield session


class TestPostgresSnapshotStore(SnapshotStoreContract):
    @pytest_asyncio.fixture
    async def snapshot_store_factory(
        self, postgres_database: Database
    ) -> AsyncIterator[SnapshotStoreFactory]:
        @asynccontextmanager
        async def session(serializer: Serializer) -> AsyncIterator[SnapshotStore]:
            async with postgres_database.unit_of_work() as uow:
                yield SqlSnapshotStore(uow, serializer)

        yield session


class TestPostgresEventStoreThroughSqlAlchemyOnly(EventStoreContract):
    """The fallback when SQLAlchemy's asyncpg adapter does not look as the raw paths expect."""

    @pytest_asyncio.fixture
    async def event_store_factory(
        self, postgres_database: Database, monkeypatch: pytest.MonkeyPatch
    ) -> AsyncIterator[EventStoreFactory]:
        monkeypatch.setattr(postgres_database.connections, "raw_paths", False)

        @asynccontextmanager
        async def session(serializer: Serializer) -> AsyncIterator[EventStore]:
            async with postgres_database.unit_of_work() as uow:
                yield SqlEventStore(uow, serializer)

        yield session
