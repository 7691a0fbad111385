"""The in-memory, SQLite and PostgreSQL process manager stores pass the contract."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager

import pytest_asyncio

from dockyard.sagas import ProcessWriter
from dockyard.sagas.memory import InMemoryProcessStore, memory_process_writer
from dockyard.sql import Database, SqlProcessStore, SqlProcessWriter
from dockyard.testing.contracts import ProcessStoreContract, ProcessStoreHarness


def memory_harness() -> ProcessStoreHarness:
    store = InMemoryProcessStore()

    @asynccontextmanager
    async def transaction() -> AsyncIterator[ProcessWriter]:
        scope: AsyncGenerator[ProcessWriter, BaseException | None] = memory_process_writer(store)
        writer = await anext(scope)
        try:
            yield writer
        except BaseException as error:
            with contextlib.suppress(StopAsyncIteration):
                await scope.asend(error)
            raise
        with contextlib.suppress(StopAsyncIteration):
            await scope.asend(None)

    return ProcessStoreHarness(store=store, transaction=transaction)


def sql_harness(database: Database) -> ProcessStoreHarness:
    @asynccontextmanager
    async def transaction() -> AsyncIterator[ProcessWriter]:
        async with database.unit_of_work() as uow:
            yield SqlProcessWriter(uow)

    return ProcessStoreHarness(store=SqlProcessStore(database), transaction=transaction)


class TestInMemoryProcessStore(ProcessStoreContract):
    @pytest_asyncio.fixture
    async def process_store_factory(self) -> AsyncIterator[ProcessStoreHarness]:
        yield memory_harness()


class TestSqlProcessStore(ProcessStoreContract):
    @pytest_asyncio.fixture
    async def process_store_factory(self, database: Database) -> AsyncIterator[ProcessStoreHarness]:
        yield sql_harness(database)  # SQLite, then PostgreSQL (the `database` fixture)
