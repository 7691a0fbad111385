"""``PostgresListener``: one ``LISTEN`` connection per channel, shared by everyone waiting.

Used by the projection runners' ``PostgresEventNotifier`` (``dockyard_events``) and by outbox
relays (``dockyard_outbox``). The connection comes from the database's pool and is kept while
anyone listens; if it drops, every waiter is woken (so it looks at the table) and the
connection is reopened, with backoff (one warning when it is lost, one line when it is back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.modules._supervisor import Outage, backoff, describe
from dockyard.sql._database import Database

__all__ = ["PostgresListener"]

_MAX_RECONNECT = 5.0
"""The longest wait between two attempts to reopen a lost LISTEN connection."""


class PostgresListener:
    """``LISTEN channel`` on one connection, while at least one waiter listens."""

    __slots__ = (
        "_connecting",
        "_connection",
        "_logger",
        "_supervisor",
        "_wakes",
        "channel",
        "database",
    )

    def __init__(self, database: Database, channel: str, logger: logging.Logger) -> None:
        self.database = database
        self.channel = channel
        self._logger = logger
        self._connecting: asyncio.Future[AsyncConnection] | None = None
        self._wakes: set[asyncio.Event] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self._connection: AsyncConnection | None = None

    @asynccontextmanager
    async def listen(self, wake: asyncio.Event) -> AsyncIterator[None]:
        """While open, ``wake`` is set at every notification on the channel."""
        self._wakes.add(wake)
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise())
        try:
            yield
        finally:
            self._wakes.discard(wake)
            if not self._wakes:
                await self._stop()

    def _notify(self, *_args: object) -> None:
        for wake in self._wakes:
            wake.set()

    async def _supervise(self) -> None:
        lost = asyncio.Event()
        outage = Outage(f"LISTEN {self.channel} (waiters poll meanwhile)", self._logger)
        failures = 0
        while True:
            lost.clear()
            try:
                # Shielded, and kept: if the last listener leaves while we connect, `_stop`
                # waits for the connection and closes it instead of orphaning it.
                self._connecting = asyncio.ensure_future(self.database.engine.connect())
                self._connection = await asyncio.shield(self._connecting)
                self._connecting = None
                raw = (await self._connection.get_raw_connection()).driver_connection
                assert raw is not None
                await raw.add_listener(self.channel, self._notify)
                raw.add_termination_listener(lambda *_: lost.set())
            except Exception as error:  # noqa: BLE001 - keep trying; waiters poll meanwhile
                await self._close()
                failures += 1
                outage.down(describe(error))  # one line when it goes, one when it is back
                await asyncio.sleep(backoff(failures, _MAX_RECONNECT))
                continue
            failures = 0
            outage.up()
            self._notify()  # anything committed while nobody listened: look now
            await lost.wait()
            self._notify()
            await self._close()

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.invalidate()
                await connection.close()

    async def _stop(self) -> None:
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        connecting, self._connecting = self._connecting, None
        if connecting is not None:
            with contextlib.suppress(Exception):
                self._connection = await connecting
        await self._close()
