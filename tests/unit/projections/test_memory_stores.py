"""The in-memory checkpoint and lease stores pass the contracts."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest_asyncio

from dockyard.projections import CheckpointStore, LeaseStore
from dockyard.projections.memory import InMemoryCheckpointStore, InMemoryLeaseStore
from dockyard.testing.contracts import (
    CheckpointStoreContract,
    CheckpointStoreFactory,
    LeaseStoreContract,
)


class TestInMemoryCheckpointStore(CheckpointStoreContract):
    @pytest_asyncio.fixture
    async def checkpoint_store_factory(self) -> AsyncIterator[CheckpointStoreFactory]:
        store = InMemoryCheckpointStore()

        @asynccontextmanager
        async def session() -> AsyncIterator[CheckpointStore]:
            yield store

        yield session


class TestInMemoryLeaseStore(LeaseStoreContract):
    @pytest_asyncio.fixture
    async def lease_store(self) -> AsyncIterator[LeaseStore]:
        yield InMemoryLeaseStore()
