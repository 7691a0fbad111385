"""Process managers on PostgreSQL under concurrency: 1,000 messages for one key from ten
concurrent consumer scopes (and redeliveries) lose no update and have no double effect; a
timeout racing a message has one winner. Effects are counted in the database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa

from dockyard import App, module
from dockyard.consumer import ConsumerModule, ErrorPolicies, listen, retry_later
from dockyard.di import scoped
from dockyard.messaging import MessageContext
from dockyard.outbox import Outbox, OutboxModule, OutboxStatus, OutboxStore
from dockyard.sagas import (
    Process,
    Processes,
    ProcessHandler,
    ProcessManager,
    ProcessManagersModule,
    ProcessStatus,
    handles,
    on_timeout,
    starts,
)
from dockyard.sql import SqlModule, SqlUnitOfWork
from dockyard.testing.pytest import IsolatedDatabase, isolated_database
from dockyard.transport.memory import InMemoryTransport
from services import POSTGRES_URL, require_service

pytestmark = pytest.mark.postgres

own_tables = sa.MetaData()
effects = sa.Table(
    "test_process_effects",
    own_tables,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("process_key", sa.String(64), nullable=False),
    sa.Column("message_id", sa.String(64), nullable=False),
    sa.Column("what", sa.String(16), nullable=False),
)


@dataclass(frozen=True, slots=True)
class Tick:
    key: str


@dataclass(frozen=True, slots=True)
class Close:
    key: str


@dataclass(frozen=True, slots=True)
class Expired:
    key: str


@dataclass
class Counter:
    count: int = 0
    closed_by: str = ""


class Effects:
    """Writes one row per applied message in the handler's transaction."""

    def __init__(self, uow: SqlUnitOfWork, context: MessageContext) -> None:
        self._uow = uow
        self._context = context

    async def write(self, key: str, what: str) -> None:
        row = {"process_key": key, "message_id": self._context.message_id, "what": what}
        await self._uow.connection.execute(sa.insert(effects).values(**row))


class OnTick(ProcessHandler[Tick, Counter]):
    def __init__(self, effects: Effects) -> None:
        self._effects = effects

    async def handle(self, message: Tick, process: Process[Counter]) -> None:
        await self._effects.write(message.key, "tick")
        process.state.count += 1
        if process.created:
            process.set_timeout(Expired(message.key), after=3600)


class OnClose(ProcessHandler[Close, Counter]):
    def __init__(self, effects: Effects) -> None:
        self._effects = effects

    async def handle(self, message: Close, process: Process[Counter]) -> None:
        await self._effects.write(message.key, "close")
        process.state.closed_by = "close"
        process.complete()


class OnExpired(ProcessHandler[Expired, Counter]):
    def __init__(self, effects: Effects) -> None:
        self._effects = effects

    async def handle(self, message: Expired, process: Process[Counter]) -> None:
        await self._effects.write(message.key, "expired")
        process.state.closed_by = "expired"
        process.complete()


COUNTER = ProcessManager(
    "counter",
    version=1,
    state=Counter,
    handlers=[
        starts(Tick, OnTick, key="key"),
        handles(Close, OnClose, key="key"),
        on_timeout(Expired, OnExpired, key="key"),
    ],
    timeout_destination="counter-timeouts",
)


@dataclass
class Running:
    app: App
    transport: InMemoryTransport


@pytest_asyncio.fixture
async def isolated(tmp_path: Path) -> AsyncIterator[IsolatedDatabase]:
    require_service("postgres")
    async with isolated_database(POSTGRES_URL, tmp_path) as found:
        database = found.database()
        try:
            await database.create_tables()
            async with database.engine.begin() as connection:
                await connection.run_sync(own_tables.create_all)
        finally:
            await database.dispose()
        yield found


@pytest_asyncio.fixture
async def running(isolated: IsolatedDatabase) -> AsyncIterator[Running]:
    transport = InMemoryTransport()
    # conflicts (two first ticks creating the key at once) retry in a fresh scope, quickly
    fast = ErrorPolicies(default=retry_later(10, initial_delay=0.0))

    @module(providers=[scoped(Effects)], exports=[Effects], imports=[SqlModule])
    class EffectsModule: ...

    @module(
        imports=[
            isolated.sql_module(pool_size=10, max_overflow=3),
            OutboxModule.register(transport=transport),
            ConsumerModule.register(
                endpoints=[listen("ticks", group="counter", concurrency=10, policies=fast)]
            ),
            ProcessManagersModule.register(processes=[COUNTER], imports=[EffectsModule]),
        ]
    )
    class Root: ...

    app = App.build(Root)
    async with app:
        yield Running(app, transport)


async def count(app: App, what: str | None = None) -> tuple[int, int]:
    """Effects rows (all, distinct message ids), of kind ``what`` if given."""
    async with app.scope() as scope:
        uow = await scope.get(SqlUnitOfWork)
        query = sa.select(sa.func.count(), sa.func.count(sa.distinct(effects.c.message_id)))
        if what is not None:
            query = query.where(effects.c.what == what)
        row = (await uow.connection.execute(query)).one()
    return int(row[0]), int(row[1])


async def instance(app: App, key: str) -> Counter:
    async with app.scope() as scope:
        found = await (await scope.get(Processes)).get(COUNTER, key)
    assert found is not None
    return found.state


async def test_a_thousand_messages_for_one_key_from_ten_consumers(running: Running) -> None:
    app, transport = running.app, running.transport
    sent: list[str] = []
    for _ in range(10):
        async with app.scope() as scope:
            outbox = await scope.get(Outbox)
            sent += [await outbox.add(Tick("hot"), destination="ticks") for _ in range(100)]
    store: OutboxStore = await app.container.get(OutboxStore)

    stop = asyncio.Event()
    worker = asyncio.create_task(app.run_worker(stop=stop))
    try:
        async with asyncio.timeout(120):
            while (await store.counts())[OutboxStatus.DELIVERED] < len(sent):  # noqa: ASYNC110 - polls the database
                await asyncio.sleep(0.02)
            for message_id in sent[::10]:  # the relay crashed after publishing these: again
                message = await store.get(message_id)
                assert message is not None
                await transport.publish(message.to_transport())
            while (await count(app))[0] < len(sent) or transport.pending("ticks", "counter"):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await worker  # in-flight deliveries finish first

    assert (await instance(app, "hot")).count == 1000  # no lost update
    assert await count(app) == (1000, 1000)  # each message applied once, redeliveries too


async def test_a_timeout_racing_a_message_has_one_winner(running: Running) -> None:
    app = running.app
    keys = [f"k-{n}" for n in range(30)]
    for key in keys:
        await app.publish(Tick(key))
    timeouts: dict[str, str] = {}
    async with app.scope() as scope:
        processes = await scope.get(Processes)
        for key in keys:
            found = await processes.get(COUNTER, key)
            assert found is not None
            assert found.timeout_id is not None
            timeouts[key] = found.timeout_id

    await asyncio.gather(
        *(app.publish(Expired(key), message_id=timeouts[key]) for key in keys),
        *(app.publish(Close(key)) for key in keys),
    )
    closes, expiries = (await count(app, "close"))[0], (await count(app, "expired"))[0]
    assert closes + expiries == len(keys)  # one winner per instance, counted in the database
    async with app.scope() as scope:
        processes = await scope.get(Processes)
        for key in keys:
            found = await processes.get(COUNTER, key)
            assert found is not None
            assert found.status is ProcessStatus.COMPLETED
            assert found.timeout_id is None
    store: OutboxStore = await app.container.get(OutboxStore)
    # a close that won cancelled its timer with it; the timers that won were delivered by hand
    # here (not by the relay), so theirs are still scheduled, and ignored if they ever come
    assert (await store.counts())[OutboxStatus.SCHEDULED] == expiries
