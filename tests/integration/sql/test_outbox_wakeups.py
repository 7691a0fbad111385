"""The SQL outbox wakes relays of its process through the unit of work, not the engine.

A listener on the engine's ``commit``/``rollback`` events used to do it: it turned the unit of
work's driver path off for every app with an outbox, and, raising from an invalidated
connection's rollback, turned a cancelled statement anywhere on the engine (a projection
lease renewed at shutdown) into a ``PendingRollbackError``.
"""

import asyncio
import time
import uuid

import pytest
import sqlalchemy as sa

from dockyard.outbox import OutboxMessage
from dockyard.sql import Database, SqlOutboxStore, SqlOutboxWriter


def _message() -> OutboxMessage:
    return OutboxMessage(str(uuid.uuid4()), "orders", "Placed", b"{}")


async def test_an_outbox_leaves_the_engine_without_listeners(database: Database) -> None:
    SqlOutboxStore(database)
    engine = database.engine.sync_engine
    assert not engine.dispatch.commit
    assert not engine.dispatch.rollback
    assert database.connections.fast_path()


async def test_only_a_commit_that_wrote_wakes_the_relays(sqlite_database: Database) -> None:
    # SQLite: on PostgreSQL a relay also listens to NOTIFY, which wakes it on its own
    database = sqlite_database
    store = SqlOutboxStore(database)
    async with store.listen() as wake:
        wake.clear()
        uow = database.unit_of_work()
        async with uow:
            await SqlOutboxWriter(uow).add([_message()])
            await uow.rollback()
        async with database.unit_of_work() as uow:  # same connection, nothing written
            await uow.connection.execute(sa.text("SELECT 1"))
        assert not wake.is_set()
        async with database.unit_of_work() as uow:
            await SqlOutboxWriter(uow).add([_message()])
            await asyncio.sleep(0)
            assert not wake.is_set()  # not before the commit
        assert wake.is_set()


async def test_replayed_dead_letters_wake_the_relays(database: Database) -> None:
    store = SqlOutboxStore(database)
    message = _message()
    await store.add_dead_letter(message)
    async with store.listen() as wake:
        wake.clear()
        assert await store.replay(None, 0.0) == [message.message_id]
        assert wake.is_set()


@pytest.mark.postgres
async def test_a_cancelled_statement_on_the_engine_stays_a_cancellation(
    postgres_database: Database,
) -> None:
    SqlOutboxStore(postgres_database)
    marker = f"cancelled-{uuid.uuid4().hex}"

    async def sleep_in_a_transaction() -> None:
        async with postgres_database.engine.begin() as connection:
            await connection.execute(sa.text(f"SELECT pg_sleep(30) /* {marker} */"))

    task = asyncio.create_task(sleep_in_a_transaction())
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE :q"
    )
    deadline = time.monotonic() + 60
    async with postgres_database.engine.connect() as admin:
        while not (await admin.execute(query, {"q": f"%{marker}%"})).scalar():
            assert time.monotonic() < deadline, "the statement never started"
            await admin.rollback()  # pg_stat_activity is read once per transaction
            await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
