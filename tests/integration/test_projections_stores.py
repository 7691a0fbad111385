"""The SQL checkpoint and lease stores pass the contracts, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest_asyncio

from dockyard.projections import CheckpointStore, LeaseStore
from dockyard.sql import Database, SqlCheckpointStore, SqlLeaseStore
from dockyard.testing.contracts import (
    CheckpointStoreContract,
    CheckpointStoreFactory,
    LeaseStoreContract,
)


class TestSqlCheckpointStore(CheckpointStoreContract):
    @pytest_asyncio.fixture
    async def checkpoint_store_factory(
        self, database: Database
    ) -> AsyncIterator[CheckpointStoreFactory]:
        @asynccontextmanager
        async def session() -> AsyncIterator[CheckpointStore]:
            async with database.unit_of_work() as uow:
                yield SqlCheckpointStore(uow)

        yield session


class TestSqlLeaseStore(LeaseStoreContract):
    @pytest_asyncio.fixture
    async def lease_store(self, database: Database) -> AsyncIterator[LeaseStore]:
        yield SqlLeaseStore(database)
