"""Splitting an app's services across ``dockyard worker`` processes with ``--only``/``--skip``
(docs/operations.md, "Splitting the services across processes"): two real worker processes,
one relay per transport (RabbitMQ, NATS), each publishes its transport's messages and reports
only its own service; a pattern that matches no service exits with 2 before starting."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from dockyard.app import App
from dockyard.outbox import OutboxStatus, OutboxStore
from dockyard.transport.nats import NatsTransport
from dockyard.transport.rabbit import RabbitTransport
from integration._apps.services import (
    NATS_URL,
    RABBIT_URL,
    create_schema,
    delete_declared,
    drop_schema,
    unique,
)
from integration._apps.two_transports_worker import OrderPlaced, PageViewed, build
from integration._apps.worker_process import WorkerProcess, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.rabbit, pytest.mark.nats]

APP = "integration._apps.two_transports_worker:app"
_EACH = 20


@dataclass(frozen=True, slots=True)
class Shop:
    app: App
    env: dict[str, str]
    orders: str
    pages: str

    async def counts(self, destination: str) -> dict[OutboxStatus, int]:
        store = await self.app.get(OutboxStore)
        return dict((await store.counts_by_destination())[destination])

    async def delivered(self, destination: str) -> bool:
        return (await self.counts(destination))[OutboxStatus.DELIVERED] == _EACH


@contextlib.asynccontextmanager
async def shop() -> AsyncIterator[Shop]:
    """The app (started here to write ``_EACH`` orders and page views to its outbox, its own
    relays not running), its schema and destinations; all deleted afterwards."""
    schema = unique("dockyard_only").replace("-", "_")
    orders, pages = unique("orders"), unique("pages")
    await create_schema(schema)
    rabbit, nats = RabbitTransport(RABBIT_URL), NatsTransport(NATS_URL)
    try:
        await rabbit.declare(orders, "g")  # the messages have somewhere to go, deleted after
        await nats.declare(pages, "g")
        app = build(schema, orders, pages)
        async with app:
            for n in range(_EACH):
                await app.publish(PageViewed(n))
                await app.publish(OrderPlaced(n))
            env = {"DOCKYARD_TT_SCHEMA": schema, "DOCKYARD_TT_ORDERS": orders}
            yield Shop(app, env | {"DOCKYARD_TT_PAGES": pages}, orders, f"nats://{pages}")
    finally:
        await rabbit.close()
        await nats.close()
        await delete_declared(rabbit, nats)
        await drop_schema(schema)


async def stop(*workers: WorkerProcess) -> None:
    for worker in workers:
        worker.signal(signal.SIGTERM)
    for worker in workers:
        assert await worker.exit_code() == 0, worker.output()


async def test_two_workers_each_relay_only_their_transport() -> None:
    async with shop() as s:
        rabbit = WorkerProcess(APP, s.env, "--only", "outbox-relay")
        nats: WorkerProcess | None = None
        try:
            await rabbit.ready()
            assert await rabbit.states() == {"outbox-relay": "running"}
            await wait_until(lambda: s.delivered(s.orders), "the orders relayed")
            assert (await s.counts(s.pages))[OutboxStatus.PENDING] == _EACH  # not its own

            nats = WorkerProcess(APP, s.env, "--only", "outbox-relay:nats")
            await nats.ready()
            assert await nats.states() == {"outbox-relay:nats": "running"}
            await wait_until(lambda: s.delivered(s.pages), "the page views relayed")
            await stop(rabbit, nats)
        finally:
            for worker in (rabbit, nats):
                if worker is not None:
                    worker.kill()
        assert "dockyard worker: running outbox-relay" in rabbit.lines
        assert "dockyard worker: running outbox-relay:nats" in nats.lines
        counts = {d: await s.counts(d) for d in (s.orders, s.pages)}
    for destination in (s.orders, s.pages):
        assert counts[destination][OutboxStatus.DEAD] == 0


async def test_skip_leaves_out_the_services_that_match() -> None:
    async with shop() as s:
        worker = WorkerProcess(APP, s.env, "--only", "outbox-relay*", "--skip", "outbox-relay")
        try:
            await worker.ready()
            assert await worker.states() == {"outbox-relay:nats": "running"}
            await wait_until(lambda: s.delivered(s.pages), "the page views relayed")
            assert (await s.counts(s.orders))[OutboxStatus.PENDING] == _EACH
            await stop(worker)
        finally:
            worker.kill()


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("--only", "relay:nats", "--only", "outbox-relay"), "matches `relay:nats` ("),
        (("--skip", "consumer:*"), "matches `consumer:*` ("),
        (("--only", "outbox-relay", "--skip", "outbox-*"), "leave no background service"),
    ],
)
async def test_a_pattern_matching_no_service_exits_2_naming_the_services(
    args: tuple[str, ...], problem: str
) -> None:
    env = {"DOCKYARD_TT_SCHEMA": "unused", "DOCKYARD_TT_ORDERS": "o", "DOCKYARD_TT_PAGES": "p"}
    worker = WorkerProcess(APP, env, *args)
    try:
        assert await worker.exit_code() == 2
    finally:
        worker.kill()
    output = worker.output()
    assert problem in output
    assert "(the app's services: `outbox-relay`, `outbox-relay:nats`)" in output
    assert "dockyard worker: running" not in output  # nothing started
