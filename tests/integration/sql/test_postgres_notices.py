"""``NOTIFY dockyard_events`` comes from the appending process after its commit, coalesced;
no trigger serialises appending commits (sql/_notices.py)."""

import asyncio
import time
from dataclasses import dataclass

import asyncpg
import pytest
import sqlalchemy as sa

from dockyard.eventsourcing import NO_STREAM
from dockyard.outbox import OutboxMessage
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.sql import Database, SqlEventStore, SqlOutboxWriter, SqlUnitOfWork
from services import POSTGRES_URL

pytestmark = pytest.mark.postgres


@dataclass(frozen=True)
class Ticked:
    n: int


SERIALIZER = Serializer(TypeRegistry([Ticked]))


async def _schema(database: Database) -> str:
    async with database.unit_of_work() as uow:
        schema: str = (
            await uow.connection.execute(sa.text("SELECT current_schema()"))
        ).scalar_one()
    return schema


async def _triggers(database: Database) -> list[str]:
    async with database.unit_of_work() as uow:
        rows = await uow.connection.execute(
            sa.text(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'dockyard_events'::regclass"
                " AND NOT tgisinternal"
            )
        )
        return [r.tgname for r in rows]


async def test_a_listener_in_another_session_hears_of_committed_appends_only(
    postgres_database: Database,
) -> None:
    # The channel is database-wide: other apps (and tests) in other schemas notify on it too,
    # so only notifications sent by this database's own sessions count (by backend pid).
    heard: list[int] = []
    arrived = asyncio.Event()

    def on_notice(_connection: object, pid: int, _channel: str, _payload: object) -> None:
        heard.append(pid)
        arrived.set()

    async def pid_of(uow: SqlUnitOfWork) -> int:
        return int((await uow.connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())

    listener = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg", "postgresql"))
    try:
        await listener.add_listener("dockyard_events", on_notice)
        async with postgres_database.unit_of_work() as uow:
            ours = {await pid_of(uow)}
            await SqlEventStore(uow, SERIALIZER).append("Tick-rolled", [Ticked(0)], NO_STREAM)
            await uow.rollback()
        async with postgres_database.unit_of_work() as uow:
            ours.add(await pid_of(uow))
            await SqlEventStore(uow, SERIALIZER).append("Tick-1", [Ticked(1)], NO_STREAM)
            assert not ours & set(heard)  # not before the commit
        async with asyncio.timeout(30):
            while not ours & set(heard):
                arrived.clear()
                await arrived.wait()
        await postgres_database.notices.close()  # nothing else pending
        await asyncio.sleep(0)
        assert len([pid for pid in heard if pid in ours]) == 1, "the rolled-back one was announced"
    finally:
        await listener.close()


@pytest.mark.parametrize("concurrent", [True, False], ids=["concurrent", "one-after-another"])
async def test_a_read_woken_by_the_last_notification_sees_every_commit(
    postgres_database: Database, concurrent: bool
) -> None:
    """40 appends, few notifications: each wakes a read of the table, as a runner does; one of
    those reads sees all 40 (no commit is left without a notification after it). One after
    another, most commit within the window of the last notification and are announced by a
    trailing ``NOTIFY``, the last one's included."""
    url = POSTGRES_URL.replace("postgresql+asyncpg", "postgresql")
    schema = await _schema(postgres_database)
    listener = await asyncpg.connect(url)
    reader = await asyncpg.connect(url, server_settings={"search_path": schema})
    database = Database(
        postgres_database.engine.url,
        pool_size=6,
        connect_args={"server_settings": {"search_path": schema}},
    )
    reading = asyncio.Lock()
    seen_all = asyncio.Event()
    reads: set[asyncio.Task[None]] = set()

    async def read() -> None:
        async with reading:
            if await reader.fetchval("SELECT count(*) FROM dockyard_events") == 40:
                seen_all.set()

    def woken(*_args: object) -> None:
        task = asyncio.get_running_loop().create_task(read())
        reads.add(task)
        task.add_done_callback(reads.discard)

    async def append(n: int) -> None:
        async with database.unit_of_work() as uow:
            await SqlEventStore(uow, SERIALIZER).append(f"Tick-{n}", [Ticked(n)], NO_STREAM)

    try:
        await listener.add_listener("dockyard_events", woken)
        if concurrent:
            await asyncio.gather(*(append(n) for n in range(40)))
        else:
            for n in range(40):
                await append(n)
        await asyncio.wait_for(seen_all.wait(), timeout=30)
    finally:
        await asyncio.gather(*reads, return_exceptions=True)
        await listener.close()
        await reader.close()
        await database.dispose()


async def test_an_outbox_write_is_announced_to_relays_of_other_processes_after_commit(
    postgres_database: Database,
) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg", "postgresql"))
    try:
        await listener.add_listener("dockyard_outbox", lambda *args: heard.put_nowait(args[2]))
        async with postgres_database.unit_of_work() as uow:
            message = OutboxMessage("m-1", "memory://x", "Ticked", b"{}", created_at=time.time())
            await SqlOutboxWriter(uow).add([message])
            assert heard.empty()
        assert await asyncio.wait_for(heard.get(), timeout=30) == "dockyard_outbox"
    finally:
        await listener.close()


async def test_create_tables_drops_the_notify_trigger_of_earlier_versions(
    postgres_database: Database,
) -> None:
    assert await _triggers(postgres_database) == []
    async with postgres_database.unit_of_work() as uow:
        await uow.connection.execute(
            sa.text(
                "CREATE FUNCTION dockyard_notify_events() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN PERFORM pg_notify('dockyard_events', ''); RETURN NULL; END $$"
            )
        )
        await uow.connection.execute(
            sa.text(
                "CREATE TRIGGER dockyard_events_notify AFTER INSERT ON dockyard_events"
                " FOR EACH STATEMENT EXECUTE FUNCTION dockyard_notify_events()"
            )
        )
    assert await _triggers(postgres_database) == ["dockyard_events_notify"]
    await postgres_database.create_tables()
    assert await _triggers(postgres_database) == []
