"""The SQL saga store passes the contract on PostgreSQL (SQLite's run is a unit test)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import pytest_asyncio

from dockyard.sagas import SagaWriter
from dockyard.sql import Database, SqlSagaStore, SqlSagaWriter
from dockyard.testing.contracts import SagaStoreContract, SagaStoreHarness


@pytest.mark.postgres
class TestPostgresSagaStore(SagaStoreContract):
    @pytest_asyncio.fixture
    async def saga_store_factory(
        self, postgres_database: Database
    ) -> AsyncIterator[SagaStoreHarness]:
        database = postgres_database

        @asynccontextmanager
        async def transaction() -> AsyncIterator[SagaWriter]:
            async with database.unit_of_work() as uow:
                yield SqlSagaWriter(uow)

        yield SagaStoreHarness(store=SqlSagaStore(database), transaction=transaction)
