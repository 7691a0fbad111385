"""Consumers: receive messages from a transport, deduplicate them, hand them to the mediator.

Each delivery is handled in its own scope: the inbox record and the handlers' effects commit
together, so a redelivered message (the relay crashed after publishing, or the consumer after
handling) has its effect once. Messages that cannot be decoded become dead letters at once;
messages whose handlers keep failing become dead letters after the retry policy's attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
import typing
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from dishka import AsyncContainer

from dockyard.messaging._interfaces import IMessageBus
from dockyard.messaging._messages import Request
from dockyard.modules._supervisor import is_outage, service_running
from dockyard.outbox._message import OutboxMessage, OutboxStatus
from dockyard.outbox._retry import RetryPolicy
from dockyard.outbox._store import Inbox, OutboxStore
from dockyard.serialization import Serializer
from dockyard.serialization._serializer import DECODE_ERRORS
from dockyard.transport._port import CAUSATION_ID, CORRELATION_ID, Delivery, Transport

__all__ = ["Consume", "ConsumeOutcome", "Consumer", "consume"]

logger = logging.getLogger("dockyard.outbox")


def _consumer_retry() -> RetryPolicy:
    return RetryPolicy(max_attempts=5, initial_delay=0.1, max_delay=30.0)


@dataclass(frozen=True, slots=True)
class Consume:
    """A subscription of this app: ``destination``'s messages for consumer group ``group``.

    Attributes:
        destination: What to receive, as the producer routes it (``route(E).to(destination)``).
        group: The consumer group: each group gets every message once, its consumers share
            them. Also the name under which the inbox records handled messages.
        retry: How often a failing message is redelivered before it becomes a dead letter.
    """

    destination: str
    group: str
    retry: RetryPolicy = field(default_factory=_consumer_retry)

    def __post_init__(self) -> None:
        if not self.destination or not self.group:
            msg = "consume() needs a destination and a group"
            raise ValueError(msg)

    @property
    def name(self) -> str:
        return f"consumer:{self.destination}:{self.group}"


def consume(destination: str, *, group: str, retry: RetryPolicy | None = None) -> Consume:
    """Receive ``destination``'s messages as consumer group ``group`` in the worker.

    Example: ``OutboxModule.register(consumers=[consume("orders", group="billing")])``.
    """
    return Consume(destination, group, retry or _consumer_retry())


class ConsumeOutcome(enum.StrEnum):
    """What happened to one delivery (returned by ``Consumer.handle``, for tests and logs)."""

    HANDLED = "handled"
    DUPLICATE = "duplicate"
    RETRY = "retry"
    DEAD = "dead"


ScopeFactory = Callable[[], AbstractAsyncContextManager[AsyncContainer]]


class Consumer:
    """A background service receiving one subscription's messages (``consume(...)``)."""

    __slots__ = ("_component", "_open_scope", "_serializer", "_store", "spec", "transport")

    def __init__(
        self,
        spec: Consume,
        transport: Transport,
        *,
        open_scope: ScopeFactory,
        serializer: Serializer,
        store: OutboxStore,
        component: str = "",
    ) -> None:
        self.spec = spec
        self.transport = transport
        self._open_scope = open_scope
        self._serializer = serializer
        self._store = store
        self._component = component

    @property
    def name(self) -> str:
        return self.spec.name

    def __repr__(self) -> str:
        return f"<Consumer {self.spec.name}>"

    async def run(self, stop: asyncio.Event) -> None:
        """Receive and handle deliveries until ``stop`` is set; the one in flight finishes."""
        spec = self.spec
        async with self.transport.subscribe(spec.destination, spec.group) as subscription:
            service_running()
            deliveries = aiter(subscription)
            stopped = asyncio.ensure_future(stop.wait())
            try:
                while not stop.is_set():
                    delivery = await _next_or_stop(deliveries, stopped)
                    if delivery is None:
                        return
                    await self.handle(delivery)
            finally:
                stopped.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stopped
                await _close(deliveries)

    async def handle(self, delivery: Delivery) -> ConsumeOutcome:
        """Decode, deduplicate and dispatch one delivery; ack, retry or dead-letter it."""
        message = delivery.message
        entry = self._serializer.registry.get(message.type_name)
        if entry is None:
            reason = (
                f"unknown message type `{message.type_name}`: no handler of this app takes it. "
                f"Hint: add a handler for it, or stop routing it to `{message.destination}`; "
                "then replay the dead letter"
            )
            return await self._dead_letter(delivery, reason)
        try:
            value = self._serializer.decode_as(entry, message.schema_version, message.payload)
        except DECODE_ERRORS as exc:
            return await self._dead_letter(delivery, str(exc))
        try:
            handled = await self._dispatch(value, delivery)
        except Exception as exc:
            if is_outage(exc):
                # The database (or a broker) is down, not the handler: nothing is counted
                # against the message. It goes back when the subscription closes.
                raise
            error = f"{type(exc).__name__}: {exc}"
            if self.spec.retry.exhausted(delivery.attempt):
                return await self._dead_letter(delivery, error)
            wait = self.spec.retry.delay(delivery.attempt)
            logger.warning(
                "%s: message %s failed (attempt %d, again in %.2fs): %s",
                self.name, message.message_id, delivery.attempt, wait, error,
            )  # fmt: skip
            await delivery.nack(delay=wait)
            return ConsumeOutcome.RETRY
        await delivery.ack()
        return ConsumeOutcome.HANDLED if handled else ConsumeOutcome.DUPLICATE

    async def _dispatch(self, value: object, delivery: Delivery) -> bool:
        message = delivery.message
        headers = message.headers
        component = self._component
        async with self._open_scope() as scope:
            inbox = await scope.get(Inbox, component=component)
            if not await inbox.record(message.message_id, self.spec.group):
                return False
            bus = await scope.get(IMessageBus, component=component)
            if isinstance(value, Request):
                await bus.send(
                    value,
                    message_id=message.message_id,
                    correlation_id=headers.get(CORRELATION_ID),
                    causation_id=headers.get(CAUSATION_ID),
                    headers=headers,
                )
            else:
                await bus.publish(
                    value,
                    message_id=message.message_id,
                    correlation_id=headers.get(CORRELATION_ID),
                    causation_id=headers.get(CAUSATION_ID),
                    headers=headers,
                )
        return True

    async def _dead_letter(self, delivery: Delivery, reason: str) -> ConsumeOutcome:
        message = delivery.message
        logger.error(
            "%s: message %s (%s) is a dead letter: %s",
            self.name, message.message_id, message.type_name, reason,
        )  # fmt: skip
        dead = OutboxMessage.from_transport(
            message,
            created_at=time.time(),
            status=OutboxStatus.DEAD,
            attempts=delivery.attempt,
            last_error=f"{self.name}: {reason}",
        )
        await self._store.add_dead_letter(dead)
        await delivery.ack()
        return ConsumeOutcome.DEAD


async def _next_or_stop(
    deliveries: AsyncIterator[Delivery], stopped: asyncio.Future[typing.Any]
) -> Delivery | None:
    if stopped.done():
        return None
    receive = asyncio.ensure_future(anext(deliveries, None))
    waiting: set[asyncio.Future[typing.Any]] = {receive, stopped}
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if receive.done():
        return receive.result()
    receive.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await receive
    return None


async def _close(iterator: AsyncIterator[Delivery]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(RuntimeError):  # already closed by a cancelled anext
            await aclose()
