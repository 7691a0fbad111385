"""Scheduled messages through ``Outbox`` and the relay, on memory, SQLite and PostgreSQL: never
published before due, published once due (also when no relay ran at the time, and across a
relay restart), cancellable; the relay sleeps until the due time."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.app import App
from dockyard.messaging import Command
from dockyard.modules import DynamicModule, module
from dockyard.outbox import (
    Cancellation,
    ClaimedBatch,
    Outbox,
    OutboxMessage,
    OutboxModule,
    OutboxRelay,
    OutboxStatus,
    OutboxStore,
    Promotion,
    RelaySettings,
)
from dockyard.outbox.memory import InMemoryOutboxBackend, InMemoryOutboxStore
from dockyard.sql import (
    Database,
    SqlOutboxBackend,
    SqlOutboxStore,
    SqlOutboxWriter,
    outbox_scheduled_table,
)
from dockyard.testing.pytest import IsolatedDatabase, isolated_database
from dockyard.transport import TransportMessage
from dockyard.transport.memory import InMemoryTransport
from services import POSTGRES_URL, require_service


@dataclass(frozen=True, slots=True)
class Remind(Command[None]):
    order_id: str


class Clocked(InMemoryTransport):
    """Records when each message was published (wall clock, as due times are)."""

    def __init__(self) -> None:
        super().__init__()
        self.at: dict[str, list[float]] = {}

    async def publish(self, message: TransportMessage, /) -> None:  # publish_many calls it
        self.at.setdefault(message.message_id, []).append(time.time())
        await super().publish(message)


Shop = Callable[[Clocked], AbstractAsyncContextManager[App]]
"""Starts an app whose outbox (on one backend) publishes through the transport; each call on
the same storage, as a restarted process would be."""


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def shop(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Shop]:
    async with contextlib.AsyncExitStack() as stack:
        memory = InMemoryOutboxBackend()  # outlives the apps, as a database would
        isolated: IsolatedDatabase | None = None
        if request.param != "memory":
            if request.param == "postgres":
                require_service("postgres")
            url = POSTGRES_URL if request.param == "postgres" else None
            isolated = await stack.enter_async_context(isolated_database(url, tmp_path))

        @contextlib.asynccontextmanager
        async def start(transport: Clocked) -> AsyncIterator[App]:
            imports: list[DynamicModule] = []
            if isolated is not None:
                imports.append(isolated.sql_module())  # a database of its own, as a process
            outbox = OutboxModule.register(
                transport=transport,
                backend=memory if isolated is None else SqlOutboxBackend(),
                relay=RelaySettings(idle_poll_interval=1.0, max_poll_interval=0.05),
            )

            @module(imports=[*imports, outbox])
            class Reminders: ...

            async with App.build(Reminders) as app:
                yield app

        yield start


async def schedule(app: App, **when: object) -> str:
    async with app.scope() as scope:
        outbox = await scope.get(Outbox)
        return await outbox.add(Remind("o-1"), destination="reminders", **when)  # type: ignore[arg-type]


async def cancel(app: App, message_id: str) -> Cancellation:
    async with app.scope() as scope:
        return await (await scope.get(Outbox)).cancel(message_id)


async def due_time(app: App, message_id: str) -> float:
    store: OutboxStore = await app.get(OutboxStore)
    found = await store.get(message_id)
    assert found is not None
    assert found.status is OutboxStatus.SCHEDULED
    return found.next_attempt_at


async def eventually(check: Callable[[], Awaitable[bool] | bool], what: str) -> None:
    for _ in range(3000):
        found = check()
        if await found if inspect.isawaitable(found) else found:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{what}: not within 30 s")


@contextlib.asynccontextmanager
async def worker(app: App) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(app.run_worker(stop=stop))
    try:
        yield
    finally:
        stop.set()
        await task


async def until(due: float) -> None:
    await asyncio.sleep(max(0.0, due - time.time()) + 0.05)
    assert time.time() > due


# -- published when due, never before ------------------------------------------------------


async def test_a_scheduled_message_is_published_when_due_and_not_before(shop: Shop) -> None:
    transport = Clocked()
    async with shop(transport) as app, worker(app):
        message_id = await schedule(app, deliver_after=0.3)
        due = await due_time(app, message_id)
        store = await app.get(OutboxStore)

        async def delivered() -> bool:
            found = await store.get(message_id)
            return found is not None and found.status is OutboxStatus.DELIVERED

        await eventually(delivered, "the scheduled message was published")
    assert len(transport.at[message_id]) == 1
    assert transport.at[message_id][0] >= due


async def test_a_message_due_while_no_relay_ran_is_published_when_one_starts(
    shop: Shop,
) -> None:
    async with shop(Clocked()) as app:  # no worker: nothing relays
        message_id = await schedule(app, deliver_at=datetime.now(UTC) + timedelta(seconds=0.2))
        due = await due_time(app, message_id)
    await until(due)
    transport = Clocked()
    async with shop(transport) as app, worker(app):
        await eventually(lambda: _published(transport, message_id), "published at start")
    assert transport.at[message_id][0] >= due


async def test_a_scheduled_message_survives_a_relay_restart(shop: Shop) -> None:
    before, after = Clocked(), Clocked()
    async with shop(before) as app, worker(app):
        message_id = await schedule(app, deliver_after=1.0)
        due = await due_time(app, message_id)
    # the relay stopped (almost surely before the due time: then the next one publishes)
    await until(due)
    async with shop(after) as app, worker(app):
        await eventually(
            lambda: _published(before, message_id) or _published(after, message_id), "published"
        )
    times = before.at.get(message_id, []) + after.at.get(message_id, [])
    assert len(times) == 1
    assert times[0] >= due


def _published(transport: Clocked, message_id: str) -> bool:
    return message_id in transport.at


# -- cancelling ----------------------------------------------------------------------------


async def test_a_cancelled_message_is_never_published(shop: Shop) -> None:
    transport = Clocked()
    async with shop(transport) as app:
        cancelled = await schedule(app, deliver_after=0.2)
        kept = await schedule(app, deliver_after=0.2)
        assert await cancel(app, cancelled) is Cancellation.CANCELLED
        due = await due_time(app, kept)
        await until(due)
        relay = OutboxRelay(await app.get(OutboxStore), transport)
        assert await relay.drain() == 1
        assert list(transport.at) == [kept]
        assert await cancel(app, kept) is Cancellation.ALREADY_PUBLISHED
        assert await cancel(app, cancelled) is Cancellation.NOT_FOUND


async def test_a_message_due_in_the_past_is_pending_at_once(shop: Shop) -> None:
    async with shop(Clocked()) as app:
        message_id = await schedule(app, deliver_at=time.time() - 60)
        found = await (await app.get(OutboxStore)).get(message_id)
        assert found is not None
        assert found.status is OutboxStatus.PENDING


# -- the due time's arguments -------------------------------------------------------------


async def test_the_due_time_is_read_from_either_argument() -> None:
    async with _memory_app() as app:
        at = datetime(2999, 1, 1, tzinfo=UTC)
        assert await due_time(app, await schedule(app, deliver_at=at)) == at.timestamp()
        assert await due_time(app, await schedule(app, deliver_at=at.timestamp())) == (
            at.timestamp()
        )
        before = time.time()
        due = await due_time(app, await schedule(app, deliver_after=timedelta(hours=1)))
        assert before + 3600 <= due <= time.time() + 3600
        due = await due_time(app, await schedule(app, deliver_after=90))
        assert before + 90 <= due <= time.time() + 90


@pytest.mark.parametrize(
    ("when", "error"),
    [
        ({"deliver_at": 1.0, "deliver_after": 1.0}, "not both"),
        ({"deliver_at": datetime(2999, 1, 1)}, "timezone-aware"),  # noqa: DTZ001 - the point
        ({"deliver_after": -1}, "must not be negative"),
        ({"deliver_after": timedelta(seconds=-1)}, "must not be negative"),
        ({"deliver_at": float("nan")}, "must be finite"),
        ({"deliver_after": float("inf")}, "must be finite"),
    ],
)
async def test_a_due_time_that_makes_no_sense_is_refused(
    when: dict[str, object], error: str
) -> None:
    async with _memory_app() as app:
        with pytest.raises(ValueError, match=error):
            await schedule(app, **when)
        assert (await (await app.get(OutboxStore)).counts())[OutboxStatus.SCHEDULED] == 0


@contextlib.asynccontextmanager
async def _memory_app() -> AsyncIterator[App]:
    @module(imports=[OutboxModule.register(transport=InMemoryTransport())])
    class Reminders: ...

    async with App.build(Reminders) as app:
        yield app


# -- the relay: sleeps until due, promotes during long drains ------------------------------


class CountingClaims(InMemoryOutboxStore):
    def __init__(self) -> None:
        super().__init__()
        self.claims = 0
        self.promotions = 0

    @contextlib.asynccontextmanager
    async def _claim(self, limit: int, now: float) -> AsyncIterator[ClaimedBatch]:
        self.claims += 1
        async with super()._claim(limit, now) as batch:
            yield batch

    async def promote(self, now: float, limit: int, /) -> Promotion:
        self.promotions += 1
        return await super().promote(now, limit)


def scheduled(n: int, due: float, key: str | None = None) -> OutboxMessage:
    return OutboxMessage(
        f"s-{n}", "reminders", "Remind", b"{}", partition_key=key,
        created_at=time.time(), next_attempt_at=due, status=OutboxStatus.SCHEDULED,
    )  # fmt: skip


async def test_the_relay_sleeps_until_the_due_time_instead_of_polling() -> None:
    store = CountingClaims()
    transport = Clocked()
    due = time.time() + 0.5
    store.append([scheduled(1, due)])
    # max_poll_interval would make a relay that polls claim every 50 ms
    relay = OutboxRelay(store, transport, RelaySettings(max_poll_interval=0.05))
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    await eventually(lambda: _published(transport, "s-1"), "published")
    stop.set()
    await task
    assert transport.at["s-1"][0] >= due
    # at start (nothing due), once due (the message), then one that finds nothing; a few
    # more at most if the sleep ended a hair early
    assert store.claims <= 6, store.claims
    assert store.promotions <= 4, store.promotions


class SlowTransport(Clocked):
    async def publish_many(self, messages: Sequence[TransportMessage], /) -> None:
        await asyncio.sleep(0.02)
        await super().publish_many(messages)


async def test_a_long_drain_promotes_what_falls_due_meanwhile() -> None:
    store = InMemoryOutboxStore()
    store.append(
        [
            OutboxMessage(f"m-{n}", "orders", "Placed", b"{}", partition_key=f"k-{n}")
            for n in range(40)
        ]
    )
    due = time.time() + 0.1
    store.append([scheduled(1, due)])
    transport = SlowTransport()
    settings = RelaySettings(batch_size=1, pipeline=1, max_poll_interval=0.05)
    # 40 batches of one, 20 ms each: the drain lasts 0.8 s or more; it never sleeps
    assert await OutboxRelay(store, transport, settings).drain() == 41
    assert transport.at["s-1"][0] >= due


async def test_keys_stay_in_order_around_scheduled_messages() -> None:
    store = InMemoryOutboxStore()
    now = time.time()
    first = OutboxMessage("a-1", "orders", "Placed", b"{}", partition_key="k")
    store.append([first, scheduled(1, now + 3600, "k")])
    second = OutboxMessage("a-2", "orders", "Placed", b"{}", partition_key="k")
    store.append([second, scheduled(2, now, "k")])
    transport = Clocked()
    assert await OutboxRelay(store, transport).drain() == 3
    # s-2 was due at once: it joins the key's order when promoted, after what was written
    assert list(transport.at) == ["a-1", "a-2", "s-2"]


# -- a database made before scheduled messages ---------------------------------------------


async def test_a_database_made_before_scheduled_messages_works_and_gains_them(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    async with database.engine.begin() as connection:
        await connection.run_sync(outbox_scheduled_table.drop)  # as an earlier dockyard made it
    old = OutboxMessage("m-1", "orders", "Placed", b"{}", created_at=time.time())
    async with database.unit_of_work() as uow:
        await SqlOutboxWriter(uow).add([old])
    store = SqlOutboxStore(database)
    with caplog.at_level(logging.WARNING, logger="dockyard.outbox"):
        assert await store.next_due() == old.next_attempt_at
    assert "dockyard_outbox_scheduled is missing" in caplog.text
    assert (await store.counts())[OutboxStatus.SCHEDULED] == 0
    assert await store.get("nope") is None
    transport = Clocked()
    assert await OutboxRelay(store, transport).drain() == 1  # the relay works on

    await database.create_tables()  # what an upgrade does (or an Alembic revision)
    async with database.unit_of_work() as uow:
        await SqlOutboxWriter(uow).add([scheduled(1, time.time() - 1)])
    assert await OutboxRelay(SqlOutboxStore(database), transport).drain() == 1
    assert list(transport.at) == ["m-1", "s-1"]


# -- order within a key, on a clock of our own ----------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.lists(
            st.tuples(st.sampled_from(["a", "b", None]), st.one_of(st.none(), st.integers(0, 4))),
            max_size=4,
        ),
        min_size=1,
        max_size=8,
    ),
    limit=st.integers(1, 5),
)
def test_scheduled_messages_go_out_once_when_due_in_their_keys_order(
    steps: list[list[tuple[str | None, int | None]]], limit: int
) -> None:
    """Each step writes messages (now, or due some steps later), then the store promotes
    and a claim publishes what is due. A message enters its key's order when written, or when
    promoted (then after the step's writes, in due order, then in scheduling order)."""

    async def scenario() -> None:
        store = InMemoryOutboxStore()
        entered: dict[str, tuple[int, int, int, int]] = {}  # id -> its place in its key's order
        due_step: dict[str, int] = {}
        key_of: dict[str, str | None] = {}
        published: list[tuple[str, int]] = []
        written = 0
        for step in range(len(steps) + 6):
            for key, delay in steps[step] if step < len(steps) else []:
                message_id = f"m-{written}"
                key_of[message_id] = key
                if delay is None or delay == 0:
                    store.append([OutboxMessage(message_id, "d", "T", b"", partition_key=key)])
                    entered[message_id] = (step, 0, 0, written)
                else:
                    store.append([_due_at(message_id, key, step + delay)])
                    due_step[message_id] = step + delay
                written += 1
            while (promotion := await store.promote(float(step), limit)).count:
                left = promotion.next_due  # after a short batch, nothing left is due
                assert promotion.count == limit or left is None or left > step
            for message_id, due in due_step.items():
                if due <= step and message_id not in entered:
                    entered[message_id] = (step, 1, due, int(message_id[2:]))
            async with store.claim(100, float(step)) as batch:
                published.extend((m.message_id, step) for m in batch.messages)
                await batch.delivered([m.message_id for m in batch.messages], float(step))
        ids = [message_id for message_id, _ in published]
        assert sorted(ids) == sorted(f"m-{n}" for n in range(written))  # each once
        for message_id, step in published:
            assert step >= due_step.get(message_id, 0)  # never before due
        for key in ("a", "b"):
            order = [i for i in ids if key_of[i] == key]
            assert order == sorted(order, key=entered.__getitem__)

    asyncio.run(scenario())


def _due_at(message_id: str, key: str | None, step: int) -> OutboxMessage:
    return OutboxMessage(
        message_id, "d", "T", b"", partition_key=key,
        next_attempt_at=float(step), status=OutboxStatus.SCHEDULED,
    )  # fmt: skip
