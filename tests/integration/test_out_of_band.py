"""Handlers run out of band, counted in the database: on SQLite and PostgreSQL in process,
and end to end on PostgreSQL and RabbitMQ with a real worker killed mid-handler (issue #17)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import text

from dockyard.app import App
from dockyard.consumer import ConsumerModule, listen
from dockyard.messaging import Event, EventHandler
from dockyard.modules import module
from dockyard.outbox import OutboxModule, out_of_band
from dockyard.sql import SqlUnitOfWork
from dockyard.testing.pytest import IsolatedDatabase, isolated_database
from dockyard.transport.memory import InMemoryTransport
from integration._apps import out_of_band_app
from integration._apps.services import (
    POSTGRES_DSN,
    POSTGRES_URL,
    create_schema,
    delete_rabbit_destinations,
    drop_schema,
    unique,
)
from integration._apps.worker_process import WorkerProcess, wait_until, worker_env

# -- in process, on each database ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserSignedUp(Event):
    user_id: str
    refuse: bool = False


class Refused(Exception): ...


async def record(uow: SqlUnitOfWork, handler: str, user_id: str) -> None:
    await uow.connection.execute(
        text("INSERT INTO oob_effects VALUES (:handler, :user_id)"),
        {"handler": handler, "user_id": user_id},
    )


class CreateProfile(EventHandler[UserSignedUp]):
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    async def handle(self, event: UserSignedUp, /) -> None:
        await record(self._uow, "profile", event.user_id)


class SendWelcomeEmail(EventHandler[UserSignedUp]):
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    async def handle(self, event: UserSignedUp, /) -> None:
        await record(self._uow, "email", event.user_id)


class RefuseSome(EventHandler[UserSignedUp]):
    async def handle(self, event: UserSignedUp, /) -> None:
        if event.refuse:
            raise Refused(event.user_id)  # after the others: the publish rolls back


@pytest_asyncio.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def isolated(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[IsolatedDatabase]:
    url = POSTGRES_URL if request.param == "postgres" else None
    async with isolated_database(url, tmp_path) as found:
        database = found.database()
        try:
            await database.create_tables()
            async with database.engine.begin() as connection:
                await connection.exec_driver_sql(out_of_band_app.TABLES[0])
        finally:
            await database.dispose()
        yield found


async def effects(app: App) -> list[tuple[str, str]]:
    async with app.scope() as scope:
        uow = await scope.get(SqlUnitOfWork)
        rows = await uow.connection.execute(
            text("SELECT handler, user_id FROM oob_effects ORDER BY handler, user_id")
        )
        return [(row[0], row[1]) for row in rows]


async def test_each_handler_has_its_effect_once(isolated: IsolatedDatabase) -> None:
    @module(
        handlers=[
            CreateProfile,
            out_of_band(SendWelcomeEmail, destination="background"),
            RefuseSome,
        ],
        imports=[
            isolated.sql_module(),
            OutboxModule.register(transport=InMemoryTransport()),  # SQL outbox: the default
            ConsumerModule.register(endpoints=[listen("background", group="users")]),
        ],
    )
    class Users: ...

    async with App.build(Users) as app:
        await app.publish(UserSignedUp("u-1"))
        with pytest.raises(Refused):
            await app.publish(UserSignedUp("u-2", refuse=True))
        assert await effects(app) == [("profile", "u-1")]  # inline, in the publish's commit

        stop = asyncio.Event()
        worker = asyncio.create_task(app.run_worker(stop=stop))
        try:
            await wait_until(
                lambda: _has(app, ("email", "u-1")), "the out-of-band handler's effect"
            )
        finally:
            stop.set()
            await worker
        await app.publish(UserSignedUp("u-3"))  # the worker is stopped: waits in the outbox
        assert await effects(app) == [("email", "u-1"), ("profile", "u-1"), ("profile", "u-3")]


async def _has(app: App, row: tuple[str, str]) -> bool:
    return row in await effects(app)


# -- end to end: PostgreSQL, RabbitMQ, a worker process killed mid-handler ----------------

APP = "integration._apps.out_of_band_app:app"


@pytest.mark.postgres
@pytest.mark.rabbit
@pytest.mark.slow
async def test_a_worker_killed_in_the_out_of_band_handler_has_its_effect_once(
    tmp_path: Path,
) -> None:
    schema = unique("dockyard_oob").replace("-", "_")
    namespace = unique("oob")
    destination = f"{namespace}.background"
    hold, started = tmp_path / "hold", tmp_path / "started"
    env = worker_env() | {
        "DOCKYARD_OOB_SCHEMA": schema,
        "DOCKYARD_OOB_NAMESPACE": namespace,
        "DOCKYARD_OOB_HOLD": str(hold),
        "DOCKYARD_OOB_STARTED": str(started),
    }
    await create_schema(schema, *out_of_band_app.TABLES)
    db = await asyncpg.connect(POSTGRES_DSN, server_settings={"search_path": schema})

    async def counted() -> dict[str, int]:
        rows = await db.fetch("SELECT handler, count(*) FROM oob_effects GROUP BY handler")
        return {row[0]: row[1] for row in rows}

    workers: list[WorkerProcess] = []
    try:
        hold.touch()
        first = WorkerProcess(APP, env)
        workers.append(first)
        await first.ready()
        async with out_of_band_app.users_app(schema, namespace) as app:
            await app.send(out_of_band_app.SignUp("u-1"))
            assert await counted() == {"profile": 1}  # inline, committed with the outbox row
        await wait_until(started.exists, "the out-of-band handler to start")
        first.process.send_signal(signal.SIGKILL)
        assert await first.exit_code() == -signal.SIGKILL
        assert await counted() == {"profile": 1}  # its write died uncommitted

        hold.unlink()
        second = WorkerProcess(APP, env)
        workers.append(second)
        await second.ready()

        async def handled() -> bool:
            return await counted() == {"profile": 1, "email": 1}

        await wait_until(handled, "the out-of-band handler's effect after the restart")
        inbox = await db.fetchval("SELECT count(*) FROM dockyard_inbox")
        second.signal(signal.SIGTERM)
        assert await second.exit_code() == 0, second.output()
        assert await counted() == {"profile": 1, "email": 1}
        assert inbox == 1
        dead = await db.fetchval("SELECT count(*) FROM dockyard_outbox WHERE status = 'dead'")
        assert dead == 0
    finally:
        for worker in workers:
            worker.kill()
        await db.close()
        await drop_schema(schema)
        await delete_rabbit_destinations((destination, f"{destination}.users"))
