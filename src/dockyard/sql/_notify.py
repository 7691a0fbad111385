"""``PostgresEventNotifier``: one ``LISTEN`` connection per process wakes every runner."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.sql._database import Database
from dockyard.sql._projection_tables import EVENTS_CHANNEL

__all__ = ["PostgresEventNotifier"]

logger = logging.getLogger("dockyard.projections")

_RECONNECT = 1.0


class PostgresEventNotifier:
    """An ``EventNotifier`` on PostgreSQL ``LISTEN dockyard_events`` (provide it as a singleton).

    The first listener opens one connection from the database's pool and keeps it while anyone
    listens; the trigger created with the tables notifies at every append's commit. If the
    connection drops, every listener is woken (so it polls) and the connection is reopened.
    """

    __slots__ = ("_connection", "_listeners", "_lock", "_supervisor", "database")

    def __init__(self, database: Database) -> None:
        if database.dialect != "postgresql":
            msg = f"PostgresEventNotifier needs PostgreSQL, got {database.dialect}"
            raise ValueError(msg)
        self.database = database
        self._listeners: set[asyncio.Event] = set()
        self._connection: AsyncConnection | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[asyncio.Event]:
        """While open, the yielded event is set at every commit that appended events."""
        wake = asyncio.Event()
        self._listeners.add(wake)
        try:
            async with self._lock:
                if self._supervisor is None:
                    self._supervisor = asyncio.create_task(self._supervise())
            yield wake
        finally:
            self._listeners.discard(wake)
            if not self._listeners:
                await self._stop()

    def _notify(self, *_args: Any) -> None:
        for wake in self._listeners:
            wake.set()

    async def _supervise(self) -> None:
        lost = asyncio.Event()
        while True:
            lost.clear()
            try:
                connection = await self.database.engine.connect()
                raw = (await connection.get_raw_connection()).driver_connection
                assert raw is not None
                await raw.add_listener(EVENTS_CHANNEL, self._notify)
                raw.add_termination_listener(lambda *_: lost.set())
                self._connection = connection
            except (OSError, ConnectionError, Exception) as error:  # noqa: BLE001 - keep trying
                logger.warning("projections: cannot LISTEN on %s: %s", EVENTS_CHANNEL, error)
                await asyncio.sleep(_RECONNECT)
                continue
            self._notify()  # anything committed while we were not listening: look now
            await lost.wait()
            self._notify()
            await self._close_connection()

    async def _close_connection(self) -> None:
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
        await self._close_connection()
