"""A catch-up projection on PostgreSQL receives each stream in version order while writers
race, and says who holds it back (docs/design/event-store-ordering.md)."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from dockyard.app import App
from dockyard.eventsourcing import ANY, RecordedEvent
from dockyard.projections import (
    Projection,
    ProjectionControl,
    RunnerSettings,
    handles,
)
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.sql import Database, SqlEventStore, SqlUnitOfWork
from dockyard.testing import wait_for_projections
from integration import projections_app
from services import POSTGRES_URL

pytestmark = pytest.mark.postgres

read_model = sa.MetaData()
heads = sa.Table(
    "test_stream_heads",
    read_model,
    sa.Column("stream_id", sa.String(100), primary_key=True),
    sa.Column("version", sa.BigInteger(), nullable=False),
)
app_rows = sa.Table("test_app_rows", read_model, sa.Column("n", sa.Integer()))


@dataclass(frozen=True, slots=True)
class Ticked:
    writer: int


SERIALIZER = Serializer(TypeRegistry([Ticked]))


class OutOfOrderError(Exception):
    pass


class StreamHeads(Projection):
    """Refuses (and so parks the projection on) any event that is not its stream's next."""

    name = "stream_heads"

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self.uow = uow

    @handles
    async def ticked(self, event: Ticked, recorded: RecordedEvent) -> None:
        connection = self.uow.connection
        where = heads.c.stream_id == recorded.stream_id
        seen = (await connection.execute(sa.select(heads.c.version).where(where))).scalar()
        if (seen or 0) != recorded.stream_version - 1:
            msg = f"{recorded.stream_id}: v{recorded.stream_version} after v{seen or 0}"
            raise OutOfOrderError(msg)
        if seen is None:
            await connection.execute(
                sa.insert(heads).values(stream_id=recorded.stream_id, version=1)
            )
        else:
            await connection.execute(
                sa.update(heads).where(where).values(version=recorded.stream_version)
            )

    async def reset(self) -> None:
        await self.uow.connection.execute(sa.delete(heads))


def build_app(database: Database, settings: RunnerSettings) -> App:
    return projections_app.build_app(
        database, settings=settings, projections=[StreamHeads], serializer=SERIALIZER
    )


async def _tables(database: Database) -> None:
    async with database.engine.begin() as connection:
        await connection.run_sync(read_model.create_all)


async def test_a_projection_gets_every_stream_in_order_while_writers_race(
    postgres_database: Database,
) -> None:
    await _tables(postgres_database)
    rng = random.Random(11)
    settings = RunnerSettings(batch_size=5, max_poll_interval=0.01)
    app = build_app(postgres_database, settings)
    committed: dict[str, int] = {}

    async def write(writer: int) -> None:
        for _ in range(15):
            async with postgres_database.unit_of_work() as uow:
                if rng.random() < 0.5:  # takes its xid now: the recipe's early transaction
                    await uow.connection.execute(sa.insert(app_rows).values(n=writer))
                await asyncio.sleep(rng.random() / 100)
                stream = f"Tick-{rng.randrange(3)}"
                result = await SqlEventStore(uow, SERIALIZER).append(
                    stream, [Ticked(writer)] * rng.randint(1, 2), ANY
                )
                await asyncio.sleep(rng.random() / 100)
                if rng.random() < 0.1:
                    await uow.rollback()
                    continue
            committed[stream] = max(committed.get(stream, 0), result.last_version)

    async with app:
        control = await app.get(ProjectionControl)
        writing = asyncio.gather(*(write(w) for w in range(5)))
        while not writing.done():  # a catch-up reader racing the writers
            await control.catch_up("stream_heads")
            await asyncio.sleep(0)
        await writing
        await wait_for_projections(app, timeout=60)
    async with postgres_database.engine.connect() as connection:
        rows = {r.stream_id: r.version for r in await connection.execute(sa.select(heads))}
    assert rows == committed


async def test_an_open_appender_is_named_in_the_status_and_the_logs(
    postgres_database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    await _tables(postgres_database)
    settings = RunnerSettings(batch_size=10, max_poll_interval=0.01, held_back_warning=0.0)
    app = build_app(postgres_database, settings)
    caplog.set_level(logging.INFO, logger="dockyard.projections")
    async with app:
        control = await app.get(ProjectionControl)
        held = postgres_database.unit_of_work()
        await held.begin()
        try:
            await SqlEventStore(held, SERIALIZER).append("Tick-held", [Ticked(0)], ANY)
            async with postgres_database.unit_of_work() as uow:
                await SqlEventStore(uow, SERIALIZER).append("Tick-free", [Ticked(1)], ANY)
            await control.catch_up("stream_heads")  # the free event waits behind the held one
            (status,) = await control.status()
            assert status.position == 0
            assert status.held_back_by is not None
            assert status.held_back_by.state == "idle in transaction"
            assert "held back" in caplog.text
            assert f"server pid {status.held_back_by.pid}" in caplog.text
        finally:
            await held.commit()
            await held.close()
        await wait_for_projections(app)
        (status,) = await control.status()
        assert status.held_back_by is None
        assert status.lag == 0
        assert "no longer held back" in caplog.text


async def test_transactions_that_never_append_do_not_hold_a_projection_back(
    postgres_database: Database,
) -> None:
    """A writing transaction in another database and one on an application table of this one
    stay open while events are appended: the projection applies them all the same."""
    await _tables(postgres_database)
    app = build_app(postgres_database, RunnerSettings(batch_size=10, max_poll_interval=0.01))
    other_database = create_async_engine(POSTGRES_URL.replace("/test", "/postgres"))
    try:
        async with (
            other_database.connect() as elsewhere,
            postgres_database.engine.connect() as here,
        ):
            for connection in (elsewhere, here):
                await connection.execute(sa.text("CREATE TEMP TABLE held (n int)"))
                await connection.execute(sa.text("INSERT INTO held VALUES (1)"))
            async with app:
                for n in range(5):
                    async with postgres_database.unit_of_work() as uow:
                        await SqlEventStore(uow, SERIALIZER).append(f"Tick-{n}", [Ticked(n)], ANY)
                await wait_for_projections(app, timeout=30)
                control = await app.get(ProjectionControl)
                (status,) = await control.status()
                assert status.lag == 0
                assert status.held_back_by is None
            await elsewhere.rollback()
            await here.rollback()
    finally:
        await other_database.dispose()
