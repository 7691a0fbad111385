"""``CommitNotices``: PostgreSQL ``NOTIFY`` for commits, at most two in flight per process.

Listeners (catch-up runners on ``dockyard_events``, relays on ``dockyard_outbox``) wake on a
notification and then read the table. The notification used to come from a trigger, which made
every appending transaction ``NOTIFY`` at its commit; PostgreSQL serialises notifying commits
on one database-wide lock, and with many concurrent appenders that cost several times the time
of a plain insert (docs/event-store.md, "Benchmarks"). Now, per process and channel:

* one writing transaction at a time notifies *inside* itself (its statement queues the
  ``NOTIFY``; delivered at its commit, no extra round trip): a lone writer pays nothing more;
* a transaction that writes while another one of this process holds that role has this send
  ``NOTIFY`` after its commit instead, on a pooled connection: at once if no such notification
  is in flight, else once more when it is done, for everything committed meanwhile.

Every commit is followed by a notification; at most two notifying transactions of a process
take the lock at a time, instead of every writer.

And coalesced in time: within ``_WINDOW`` of the channel's last notification (a commit that
notified inside itself, or a ``NOTIFY`` sent after commits), a transaction does not notify
inside itself; its commit schedules one trailing ``NOTIFY`` at the end of the window, for every
commit of the window. A sequential writer sends one ``NOTIFY`` per window, not per transaction
(each cost 8–17 % of a one-event append; docs/design/commit-notices.md).

A notification is a hint, never the only path: listeners poll at a safety interval, so a
process that dies between its commit and its ``NOTIFY`` delays readers, never loses events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy.util import greenlet_spawn

if TYPE_CHECKING:  # the database owns the notices; this module is imported by it
    from dockyard.sql._database import Database
    from dockyard.sql._unit_of_work import SqlUnitOfWork

__all__ = ["CommitNotices"]

logger = logging.getLogger("dockyard.sql")

_HELD = 1.0
"""Seconds after which a transaction's role of notifying inside itself is shared."""

_WINDOW = 0.01
"""Seconds after a channel's last notification in which commits share one trailing ``NOTIFY``."""


class CommitNotices:
    """Per database (so per process and app): ``NOTIFY`` channels after commits, coalesced."""

    __slots__ = (
        "_announced",
        "_clock",
        "_committed",
        "_inside",
        "_pending",
        "_releases",
        "_sender",
        "_trailing",
        "_trails",
        "_warned",
        "database",
    )

    def __init__(self, database: Database, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.database = database
        self._clock = clock
        self._pending: set[str] = set()
        self._sender: asyncio.Task[None] | None = None
        self._inside: dict[str, float] = {}
        """Channels a transaction of this process notifies inside itself, since when."""
        self._releases: dict[str, Callable[[], None]] = {}
        self._committed: dict[str, Callable[[], None]] = {}
        self._announced: dict[str, float] = {}
        """When each channel's last notification went out (``clock`` time)."""
        self._trails: dict[str, Callable[[], None]] = {}
        self._trailing: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.TimerHandle]] = {}
        """Channels with a trailing ``NOTIFY`` scheduled, its loop and timer (a timer of a loop
        that has gone never fires: a commit in another loop schedules its own)."""
        self._warned = False

    def notify_inside(self, uow: SqlUnitOfWork, channel: str) -> bool:
        """Whether ``uow``'s transaction should queue ``NOTIFY channel`` itself.

        ``True``: it takes that role until it ends (commits or rolls back). ``False``: its
        commit is announced by a trailing ``NOTIFY`` instead, because the channel was notified
        less than ``_WINDOW`` ago or another transaction has the role. A role held for over a
        second (a transaction ended behind the unit of work's back never hands it back) is
        given to the next writer too.
        """
        now = self._clock()
        last = self._announced.get(channel)
        since = self._inside.get(channel)
        if (last is not None and now - last < _WINDOW) or (
            since is not None and now - since < _HELD
        ):
            uow.after_commit(self.callback(channel))
            return False
        self._inside[channel] = now
        release = self._releases.get(channel)
        if release is None:

            def release() -> None:
                self._inside.pop(channel, None)

            def committed() -> None:  # its NOTIFY went out with the commit
                self._inside.pop(channel, None)
                self._announced[channel] = self._clock()

            self._releases[channel] = release
            self._committed[channel] = committed
        uow.after_commit(self._committed[channel])
        uow.after_rollback(release)
        return True

    def callback(self, channel: str) -> Callable[[], None]:
        """The after-commit callback announcing a commit on ``channel``: now if the channel's
        last notification is ``_WINDOW`` old (or none went out yet), else by one trailing
        ``NOTIFY`` at the end of the window, for every commit until it goes out. The same
        callable for a channel every time (a unit of work registers it once)."""
        found = self._trails.get(channel)
        if found is None:

            def announce() -> None:
                loop = asyncio.get_running_loop()
                scheduled = self._trailing.get(channel)
                if scheduled is not None and scheduled[0] is loop:
                    return  # the scheduled one covers this commit
                last = self._announced.get(channel)
                delay = 0.0 if last is None else last + _WINDOW - self._clock()
                if delay <= 0:
                    self.notify(channel)
                    return
                self._trailing[channel] = (loop, loop.call_later(delay, self._fire, channel))

            found = self._trails[channel] = announce
        return found

    def _fire(self, channel: str) -> None:
        self._trailing.pop(channel, None)
        self.notify(channel)

    def notify(self, channel: str) -> None:
        """Announce a commit on ``channel`` (sent now, or after the notification in flight)."""
        self._pending.add(channel)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        while self._pending:
            channels, self._pending = sorted(self._pending), set()
            try:
                await self._notify_now(channels)
                sent = self._clock()
                for channel in channels:
                    self._announced[channel] = sent
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

    async def _notify_now(self, channels: list[str]) -> None:
        """``NOTIFY`` outside any transaction: one round trip on an idle connection."""
        statement = "; ".join(f"NOTIFY {channel}" for channel in channels)
        database = self.database
        connections = database.connections
        if not connections.fast_path():
            async with database.unit_of_work() as uow:
                await uow.connection.exec_driver_sql(statement)
            return
        connection = await connections.checkout()
        try:
            driver: Any = connection.connection.driver_connection  # asyncpg's, untyped
            await driver.execute(statement)
        except BaseException:
            await asyncio.shield(greenlet_spawn(connection.invalidate))  # state unknown
            raise
        if not connections.keep(connection):
            await greenlet_spawn(connection.close)

    async def close(self) -> None:
        """Send what is pending, then stop (called when the database is disposed)."""
        trailing, self._trailing = self._trailing, {}
        for channel, (_, timer) in trailing.items():  # due now: nothing after would send it
            timer.cancel()
            self.notify(channel)
        sender = self._sender
        if sender is not None:
            with contextlib.suppress(Exception, TimeoutError):
                await asyncio.wait_for(sender, timeout=5)  # cancelled past the timeout
