"""What only the SQL adapters have: one transaction with the app's tables, rows gone bad."""

from dataclasses import dataclass

import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.eventsourcing import NO_STREAM
from dockyard.exceptions import CorruptEventError, UnknownEventTypeError
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.sql import Database, SqlEventStore, SqlSnapshotStore, events_table, snapshots_table

app_metadata = sa.MetaData()
orders = sa.Table(
    "shop_orders",
    app_metadata,
    sa.Column("order_id", sa.String(50), primary_key=True),
    sa.Column("total", sa.Integer(), nullable=False),
)


@dataclass(frozen=True)
class OrderPlaced:
    order_id: str
    total: int


@pytest_asyncio.fixture
async def database(database: Database) -> Database:
    """The dialect's database with dockyard's tables and the app's own ``shop_orders``."""
    async with database.engine.begin() as connection:
        await connection.run_sync(app_metadata.create_all)
    return database


@pytest.fixture
def serializer() -> Serializer:
    return Serializer(TypeRegistry([OrderPlaced]))


async def _state(database: Database, serializer: Serializer) -> tuple[list[str], list[object]]:
    async with database.unit_of_work() as uow:
        rows = (await uow.connection.execute(sa.select(orders.c.order_id))).scalars().all()
        stored = await SqlEventStore(uow, serializer).read_stream("Order-1")
    return list(rows), [e.data for e in stored]


async def _place_order(uow_connection: AsyncConnection) -> None:
    await uow_connection.execute(sa.insert(orders).values(order_id="o-1", total=42))


async def test_events_and_app_rows_roll_back_together(
    database: Database, serializer: Serializer
) -> None:
    async with database.unit_of_work() as uow:
        await _place_order(uow.connection)
        await SqlEventStore(uow, serializer).append("Order-1", [OrderPlaced("o-1", 42)], NO_STREAM)
        await uow.rollback()
    assert await _state(database, serializer) == ([], [])


async def test_an_error_leaving_the_block_rolls_both_back(
    database: Database, serializer: Serializer
) -> None:
    class Boom(Exception):
        pass

    async def place_and_fail() -> None:
        async with database.unit_of_work() as uow:
            await _place_order(uow.connection)
            await SqlEventStore(uow, serializer).append(
                "Order-1", [OrderPlaced("o-1", 42)], NO_STREAM
            )
            raise Boom

    with pytest.raises(Boom):
        await place_and_fail()
    assert await _state(database, serializer) == ([], [])


async def test_events_and_app_rows_commit_together(
    database: Database, serializer: Serializer
) -> None:
    async with database.unit_of_work() as uow:
        await _place_order(uow.connection)
        await SqlEventStore(uow, serializer).append("Order-1", [OrderPlaced("o-1", 42)], NO_STREAM)
    assert await _state(database, serializer) == (["o-1"], [OrderPlaced("o-1", 42)])


async def test_work_continues_after_a_commit_in_a_new_transaction(
    database: Database, serializer: Serializer
) -> None:
    async with database.unit_of_work() as uow:
        store = SqlEventStore(uow, serializer)
        await store.append("Order-1", [OrderPlaced("o-1", 1)], NO_STREAM)
        await uow.commit()
        await store.append("Order-1", [OrderPlaced("o-1", 2)], 1)
        await uow.rollback()
    assert await _state(database, serializer) == ([], [OrderPlaced("o-1", 1)])


async def _corrupt(database: Database, version: int, **values: object) -> None:
    async with database.unit_of_work() as uow:
        await uow.connection.execute(
            sa.update(events_table)
            .where(events_table.c.stream_id == "Order-1", events_table.c.stream_version == version)
            .values(**values)
        )


async def _append_three(database: Database, serializer: Serializer) -> list[int]:
    async with database.unit_of_work() as uow:
        store = SqlEventStore(uow, serializer)
        await store.append("Order-1", [OrderPlaced("o-1", i) for i in (1, 2, 3)], NO_STREAM)
        await store.append("Order-2", [OrderPlaced("o-2", 9)], NO_STREAM)
    async with database.unit_of_work() as uow:
        stored = await SqlEventStore(uow, serializer).read_stream("Order-1")
    return [e.global_position for e in stored]


async def test_a_corrupt_row_names_its_stream_and_position_and_loses_nothing_else(
    database: Database, serializer: Serializer
) -> None:
    positions = await _append_three(database, serializer)
    await _corrupt(database, 2, data=b"\xff\xfe not json")
    async with database.unit_of_work() as uow:
        store = SqlEventStore(uow, serializer)
        with pytest.raises(CorruptEventError) as info:
            await store.read_stream("Order-1")
        error = info.value
        assert (error.stream_id, error.stream_version, error.position) == (
            "Order-1",
            2,
            positions[1],
        )
        assert str(error).startswith(
            f"Stored event `OrderPlaced` in stream `Order-1` at version 2, global position "
            f"{positions[1]} cannot be decoded: "
        )
        assert "The other events are intact." in str(error)
        after = await store.read_stream("Order-1", from_version=3)
        assert [e.data for e in after] == [OrderPlaced("o-1", 3)]
        before = await store.read_stream("Order-1", limit=1)
        assert [e.data for e in before] == [OrderPlaced("o-1", 1)]
        assert [e.data for e in await store.read_stream("Order-2")] == [OrderPlaced("o-2", 9)]


async def test_a_row_of_a_vanished_type_names_its_stream_and_position(
    database: Database, serializer: Serializer
) -> None:
    positions = await _append_three(database, serializer)
    await _corrupt(database, 3, type_name="OrderVanished")
    async with database.unit_of_work() as uow:
        store = SqlEventStore(uow, serializer)
        with pytest.raises(UnknownEventTypeError) as info:
            await store.read_stream("Order-1")
        assert (info.value.stream_version, info.value.position) == (3, positions[2])
        kept = await store.read_stream("Order-1", skip_unknown=True)
        assert [e.stream_version for e in kept] == [1, 2]


async def test_a_snapshot_that_no_longer_decodes_is_ignored(
    database: Database, serializer: Serializer, caplog: pytest.LogCaptureFixture
) -> None:
    async with database.unit_of_work() as uow:
        await SqlSnapshotStore(uow, serializer).save("Order-1", 3, OrderPlaced("o-1", 3))
        await uow.connection.execute(sa.update(snapshots_table).values(data=b"{not json"))
    async with database.unit_of_work() as uow:
        assert await SqlSnapshotStore(uow, serializer).load("Order-1", OrderPlaced) is None
    assert "Ignoring the snapshot of stream 'Order-1'" in caplog.text
