"""The raw-driver hot paths run inside the unit of work's transaction, never beside it."""

import asyncio
import contextlib
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.eventsourcing import NO_STREAM
from dockyard.exceptions import StoreUnavailableError
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.sql import Database, SqlEventStore

pytestmark = pytest.mark.postgres


@dataclass(frozen=True)
class Noted:
    text: str


async def _transaction_began_before(uow_connection: AsyncConnection) -> bool:
    await asyncio.sleep(0.02)
    began_earlier = sa.text("SELECT now() < clock_timestamp() - interval '10 milliseconds'")
    result: bool = (await uow_connection.execute(began_earlier)).scalar_one()
    return result


async def test_a_read_as_the_first_statement_begins_the_transaction(
    postgres_database: Database,
) -> None:
    serializer = Serializer(TypeRegistry([Noted]))
    async with postgres_database.unit_of_work() as uow:
        await SqlEventStore(uow, serializer).append("Noted-1", [Noted("a")], NO_STREAM)
    async with postgres_database.unit_of_work() as uow:
        assert await SqlEventStore(uow, serializer).read_stream("Noted-1")
        assert await _transaction_began_before(uow.connection)
    async with postgres_database.unit_of_work() as uow:
        await SqlEventStore(uow, serializer).read_all()
        assert await _transaction_began_before(uow.connection)


async def test_an_append_after_a_commit_joins_the_next_transaction(
    postgres_database: Database,
) -> None:
    serializer = Serializer(TypeRegistry([Noted]))
    async with postgres_database.unit_of_work() as uow:
        store = SqlEventStore(uow, serializer)
        await store.append("Noted-1", [Noted("kept")], NO_STREAM)
        await uow.commit()
        await store.append("Noted-1", [Noted("rolled back")], 1)
        assert await _transaction_began_before(uow.connection)
        await uow.rollback()
    async with postgres_database.unit_of_work() as uow:
        events = await SqlEventStore(uow, serializer).read_stream("Noted-1")
    assert [e.data for e in events] == [Noted("kept")]


async def test_a_connection_killed_mid_unit_of_work_is_store_unavailable(
    postgres_database: Database,
) -> None:
    uow = postgres_database.unit_of_work()
    await uow.begin()
    try:
        store = SqlEventStore(uow)
        await store.read_stream("Noted-1")  # begins the transaction on the raw driver
        pid = (await uow.connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
        async with postgres_database.engine.connect() as admin:
            await admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(StoreUnavailableError) as info:
            await store.read_stream("Noted-1")
        assert info.value.operation == "read stream `Noted-1`"
        assert info.value.__cause__ is not None
    finally:
        with contextlib.suppress(StoreUnavailableError):
            await uow.close()
