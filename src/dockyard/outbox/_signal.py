"""In-process wake-up: writers signal relays of the same process after their scope commits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["Signal"]


class Signal:
    """Sets every listener's event on ``notify()``; cheap when nobody listens."""

    __slots__ = ("_listeners",)

    def __init__(self) -> None:
        self._listeners: set[asyncio.Event] = set()

    def notify(self) -> None:
        for event in self._listeners:
            event.set()

    @asynccontextmanager
    async def listen(self) -> AsyncIterator[asyncio.Event]:
        event = asyncio.Event()
        self._listeners.add(event)
        try:
            yield event
        finally:
            self._listeners.discard(event)
