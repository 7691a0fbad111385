"""The inbox forgets after ``RelaySettings.inbox_retention``: a copy of a message that arrives
within it is skipped, one that arrives after the relay's cleanup deleted its record is handled
again. Before, the inbox kept a row per handled message for ever."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

from dockyard.app import App
from dockyard.consumer import ConsumerModule, listen
from dockyard.messaging import Event, EventHandler
from dockyard.modules import module
from dockyard.outbox import OutboxModule, RelaySettings
from dockyard.sql import Database, SqlModule
from dockyard.transport import TransportMessage
from dockyard.transport.memory import InMemoryTransport


@dataclass(frozen=True)
class Shipped(Event):
    parcel: str


HANDLED: list[str] = []


class Notify(EventHandler[Shipped]):
    async def handle(self, event: Shipped, /) -> None:
        HANDLED.append(event.parcel)


def build(tmp_path: Path, transport: InMemoryTransport, inbox_retention: float) -> App:
    settings = RelaySettings(inbox_retention=inbox_retention, cleanup_interval=0.05)

    @module(
        handlers=[Notify],
        imports=[
            SqlModule.register(f"sqlite+aiosqlite:///{tmp_path / 'inbox.db'}", create_tables=True),
            OutboxModule.register(transport=transport, relay=settings),
            ConsumerModule.register(endpoints=[listen("parcels", group="notify")]),
        ],
    )
    class Notifications: ...

    return App.build(Notifications)


async def _inbox_rows(app: App) -> int:
    database = await app.get(Database)
    async with database.engine.connect() as connection:
        return int(
            (await connection.execute(text("SELECT count(*) FROM dockyard_inbox"))).scalar_one()
        )


async def _until(condition: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(30):
        while not await condition():  # noqa: ASYNC110 - what the worker did
            await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    ("inbox_retention", "expected"), [(3600.0, ["p-1", "p-2"]), (0.0, ["p-1", "p-1", "p-2"])]
)
async def test_a_copy_is_skipped_within_the_retention_and_handled_after_it(
    tmp_path: Path, inbox_retention: float, expected: list[str]
) -> None:
    HANDLED.clear()
    transport = InMemoryTransport()
    app = build(tmp_path, transport, inbox_retention)
    copy = TransportMessage("m-1", "parcels", "Shipped", b'{"parcel":"p-1"}')
    stop = asyncio.Event()
    async with app:
        worker = asyncio.create_task(app.run_worker(stop=stop, grace=5))

        async def seen(n: int) -> bool:
            return len(HANDLED) >= n

        await transport.publish(copy)
        await _until(lambda: seen(1))
        if inbox_retention == 0:  # the relay's cleanup deletes the record: wait for it
            await _until(lambda: _gone(app))
        await transport.publish(copy)
        # one message after the copy, of the same subscription: once it is handled, so is
        # (or was skipped) the copy
        await transport.publish(TransportMessage("m-2", "parcels", "Shipped", b'{"parcel":"p-2"}'))
        await _until(lambda: _has(HANDLED, "p-2"))
        stop.set()
        await worker
    assert expected == HANDLED


async def _gone(app: App) -> bool:
    return await _inbox_rows(app) == 0


async def _has(handled: list[str], parcel: str) -> bool:
    return parcel in handled
