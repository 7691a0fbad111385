"""``PostgresEventNotifier``: one ``LISTEN`` connection per process wakes every runner."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from dockyard.sql._database import Database
from dockyard.sql._eventsourcing.tables import EVENTS_CHANNEL
from dockyard.sql._listen import PostgresListener

__all__ = ["PostgresEventNotifier"]

logger = logging.getLogger("dockyard.projections")


class PostgresEventNotifier:
    """An ``EventNotifier`` on PostgreSQL ``LISTEN dockyard_events`` (provide it as a singleton).

    The first listener opens one connection from the database's pool and keeps it while anyone
    listens; the trigger created with the tables notifies at every append's commit. If the
    connection drops, every listener is woken (so it polls) and the connection is reopened.
    """

    __slots__ = ("_listener", "database")

    def __init__(self, database: Database) -> None:
        if database.dialect != "postgresql":
            msg = f"PostgresEventNotifier needs PostgreSQL, got {database.dialect}"
            raise ValueError(msg)
        self.database = database
        self._listener = PostgresListener(database, EVENTS_CHANNEL, logger)

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[asyncio.Event]:
        """While open, the yielded event is set at every commit that appended events."""
        wake = asyncio.Event()
        async with self._listener.listen(wake):
            yield wake
