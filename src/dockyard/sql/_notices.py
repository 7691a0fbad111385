"""``CommitNotices``: PostgreSQL ``NOTIFY`` after commits, coalesced, off the commit path.

Listeners (catch-up runners on ``dockyard_events``, relays on ``dockyard_outbox``) wake on a
notification and then read the table. The notification used to come from a trigger, which made
every appending transaction ``NOTIFY`` at its commit; PostgreSQL serialises notifying commits
on one database-wide lock, and with 50 concurrent appenders that cost 2.3× the time of an
append (bench/concurrency.py). Now the unit of work that wrote calls ``notify(channel)`` after
its commit; this sends ``NOTIFY channel`` on a pooled connection at once if none of this
process's notifications is in flight, else once more when it is done, for everything committed
meanwhile. Latency stays one round trip after the commit; the lock is taken by at most one
transaction per process at a time instead of by every appender.

A notification is a hint, never the only path: listeners poll at a safety interval, so a
process that dies between its commit and its ``NOTIFY`` delays readers, never loses events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the database owns the notices; this module is imported by it
    from dockyard.sql._database import Database

__all__ = ["CommitNotices"]

logger = logging.getLogger("dockyard.sql")


class CommitNotices:
    """Per database (so per process and app): ``NOTIFY`` channels after commits, coalesced."""

    __slots__ = ("_callbacks", "_pending", "_sender", "_warned", "database")

    def __init__(self, database: Database) -> None:
        self.database = database
        self._pending: set[str] = set()
        self._sender: asyncio.Task[None] | None = None
        self._callbacks: dict[str, Callable[[], None]] = {}
        self._warned = False

    def callback(self, channel: str) -> Callable[[], None]:
        """The same callable for a channel every time (a unit of work registers it once)."""
        found = self._callbacks.get(channel)
        if found is None:

            def notify() -> None:
                self.notify(channel)

            found = self._callbacks[channel] = notify
        return found

    def notify(self, channel: str) -> None:
        """Announce a commit on ``channel`` (sent now, or after the notification in flight)."""
        self._pending.add(channel)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        while self._pending:
            channels, self._pending = sorted(self._pending), set()
            try:
                async with self.database.unit_of_work() as uow:
                    driver = await uow.driver()
                    for channel in channels:
                        if driver is not None:
                            await driver.execute(f"NOTIFY {channel}")
                        else:
                            await uow.connection.exec_driver_sql(f"NOTIFY {channel}")
            except Exception as error:  # noqa: BLE001 - a hint lost: listeners poll anyway
                if not self._warned:
                    self._warned = True
                    logger.warning(
                        "could not NOTIFY %s after a commit (%s: %s); listeners in other "
                        "processes see the new rows at their next poll",
                        ", ".join(channels),
                        type(error).__name__,
                        error,
                    )
            else:
                self._warned = False

    async def close(self) -> None:
        """Send what is pending, then stop (called when the database is disposed)."""
        sender = self._sender
        if sender is not None:
            with contextlib.suppress(Exception, TimeoutError):
                await asyncio.wait_for(sender, timeout=5)  # cancelled past the timeout
