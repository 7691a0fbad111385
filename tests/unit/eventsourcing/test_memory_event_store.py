from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest_asyncio

from dockyard.eventsourcing import EventStore, SnapshotStore
from dockyard.eventsourcing.memory import InMemoryEventStore, InMemorySnapshotStore
from dockyard.serialization import Serializer
from dockyard.testing.contracts import (
    EventStoreContract,
    EventStoreFactory,
    SnapshotStoreContract,
    SnapshotStoreFactory,
)


class TestInMemoryEventStore(EventStoreContract):
    @pytest_asyncio.fixture
    async def event_store_factory(self) -> AsyncIterator[EventStoreFactory]:
        shared = InMemoryEventStore()

        @asynccontextmanager
        async def session(serializer: Serializer) -> AsyncIterator[EventStore]:
            yield shared.using(serializer)

        yield session


class TestInMemorySnapshotStore(SnapshotStoreContract):
    @pytest_asyncio.fixture
    async def snapshot_store_factory(self) -> AsyncIterator[SnapshotStoreFactory]:
        shared = InMemorySnapshotStore()

        @asynccontextmanager
        async def session(serializer: Serializer) -> AsyncIterator[SnapshotStore]:
            yield shared.using(serializer)

        yield session
