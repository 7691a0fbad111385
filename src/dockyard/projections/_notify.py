"""``EventNotifier``: wakes catch-up runners when new events may have been committed."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from typing import Protocol

__all__ = ["EventNotifier"]


class EventNotifier(Protocol):
    """A wake-up call for runners, so they need not poll (``dockyard.sql.PostgresEventNotifier``).

    Without one in the app, runners poll with backoff up to ``max_poll_interval``.
    """

    def listen(self) -> AbstractAsyncContextManager[asyncio.Event]:
        """While open, the event is set whenever new events may have been committed.

        The runner clears it before reading; a notice is a hint, never a guarantee that the
        events are readable yet.
        """
        ...
