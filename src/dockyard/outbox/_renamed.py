"""``renamed``: a transport seen under another destination prefix.

An app may hold two transports of one scheme (two RabbitMQ brokers): the second is named, say,
``analytics``, and routes write ``"analytics://events"``. The broker knows ``"events"``: this
view takes the prefix off every destination on the way out, and puts it back on the messages
it delivers (so a consumer's dead letter is replayed to the same transport).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from dockyard.transport._port import (
    BacklogReader,
    BatchPublisher,
    Delivery,
    Subscription,
    Transport,
    TransportMessage,
)

__all__ = ["renamed"]


def renamed(transport: Transport, prefix: str) -> Transport:
    """``transport`` with ``prefix`` (``"analytics://"``) taken off every destination."""
    if isinstance(transport, BatchPublisher):
        return _RenamedBatch(transport, prefix)
    return _Renamed(transport, prefix)


class _Renamed:
    __slots__ = ("_prefix", "_transport")

    def __init__(self, transport: Transport, prefix: str) -> None:
        self._transport = transport
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:  # scheme, messaging_system, in_process...
        return getattr(self._transport, name)

    def __repr__(self) -> str:
        return f"<{self._transport!r} as {self._prefix}>"

    def _bare(self, destination: str) -> str:
        return destination.removeprefix(self._prefix)

    def _out(self, message: TransportMessage) -> TransportMessage:
        return dataclasses.replace(message, destination=self._bare(message.destination))

    async def publish(self, message: TransportMessage, /) -> None:
        await self._transport.publish(self._out(message))

    async def declare(self, destination: str, group: str) -> None:
        await self._transport.declare(self._bare(destination), group)

    def subscribe(
        self, destination: str, group: str, *, prefetch: int = 1
    ) -> AbstractAsyncContextManager[Subscription]:
        return self._subscribe(destination, group, prefetch)

    @asynccontextmanager
    async def _subscribe(
        self, destination: str, group: str, prefetch: int
    ) -> AsyncIterator[Subscription]:
        bare = self._bare(destination)
        async with self._transport.subscribe(bare, group, prefetch=prefetch) as subscription:
            yield _Back(subscription, self._prefix)

    async def backlog(self, destination: str, group: str, /) -> int | None:
        if not isinstance(self._transport, BacklogReader):
            return None
        return await self._transport.backlog(self._bare(destination), group)

    async def close(self) -> None:
        await self._transport.close()


class _RenamedBatch(_Renamed):
    __slots__ = ()

    async def publish_many(self, messages: Sequence[TransportMessage], /) -> None:
        transport = self._transport
        assert isinstance(transport, BatchPublisher)
        await transport.publish_many([self._out(m) for m in messages])


class _Back:
    """A subscription whose deliveries carry the prefixed destination again."""

    __slots__ = ("_prefix", "_subscription")

    def __init__(self, subscription: Subscription, prefix: str) -> None:
        self._subscription = subscription
        self._prefix = prefix

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        async for delivery in self._subscription:
            yield _Prefixed(delivery, self._prefix)


class _Prefixed:
    __slots__ = ("_delivery", "message")

    def __init__(self, delivery: Delivery, prefix: str) -> None:
        self._delivery = delivery
        original = delivery.message
        self.message = dataclasses.replace(original, destination=prefix + original.destination)

    @property
    def attempt(self) -> int:
        return self._delivery.attempt

    async def ack(self) -> None:
        await self._delivery.ack()

    async def nack(self, *, delay: float = 0.0) -> None:
        await self._delivery.nack(delay=delay)
