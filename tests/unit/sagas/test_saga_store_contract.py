"""The in-memory and SQLite saga stores pass the contract every adapter passes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest_asyncio

from dockyard.sagas import SagaWriter
from dockyard.sagas.memory import InMemorySagaStore, memory_saga_writer
from dockyard.sql import Database, SqlSagaStore, SqlSagaWriter
from dockyard.testing.contracts import SagaStoreContract, SagaStoreHarness


def memory_harness() -> SagaStoreHarness:
    store = InMemorySagaStore()

    @asynccontextmanager
    async def transaction() -> AsyncIterator[SagaWriter]:
        scope: AsyncGenerator[SagaWriter, BaseException | None] = memory_saga_writer(store)
        writer = await anext(scope)
        try:
            yield writer
        except BaseException as error:
            with contextlib.suppress(StopAsyncIteration):
                await scope.asend(error)
            raise
        with contextlib.suppress(StopAsyncIteration):
            await scope.asend(None)

    return SagaStoreHarness(store=store, transaction=transaction)


def sql_harness(database: Database) -> SagaStoreHarness:
    @asynccontextmanager
    async def transaction() -> AsyncIterator[SagaWriter]:
        async with database.unit_of_work() as uow:
            yield SqlSagaWriter(uow)

    return SagaStoreHarness(store=SqlSagaStore(database), transaction=transaction)


class TestInMemorySagaStore(SagaStoreContract):
    @pytest_asyncio.fixture
    async def saga_store_factory(self) -> AsyncIterator[SagaStoreHarness]:
        yield memory_harness()


class TestSqliteSagaStore(SagaStoreContract):
    @pytest_asyncio.fixture
    async def saga_store_factory(self, tmp_path: Path) -> AsyncIterator[SagaStoreHarness]:
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'sagas.db'}")
        await database.create_tables()
        try:
            yield sql_harness(database)
        finally:
            await database.dispose()
