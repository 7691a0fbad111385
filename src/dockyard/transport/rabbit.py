"""``RabbitTransport``: the ``Transport`` port over RabbitMQ, through FastStream.

Topology: each destination is a durable fanout exchange; each consumer group is a durable
quorum queue ``"{destination}.{group}"`` bound to it (competing consumers share the queue).
Publishing waits for the publisher confirm; an unroutable message (no group declared yet)
is refused, so the relay retries it instead of losing it. Quorum queues count redeliveries
(``x-delivery-count``), which gives ``Delivery.attempt`` across crashes.
"""

from __future__ import annotations

from typing import Any

from dockyard.exceptions import MissingExtraError

try:
    from faststream.rabbit import (
        Channel,
        ExchangeType,
        RabbitBroker,
        RabbitExchange,
        RabbitQueue,
    )
    from faststream.rabbit.schemas.queue import QueueType
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingExtraError("dockyard.transport.rabbit", "faststream[rabbit]", "rabbit") from exc

from faststream.message import StreamMessage

from dockyard.exceptions import BrokerPublishError
from dockyard.transport._faststream import MANUAL, FastStreamTransport
from dockyard.transport._port import TransportMessage

__all__ = ["RabbitTransport"]


class RabbitTransport(FastStreamTransport):
    """A ``Transport`` over RabbitMQ.

    Args:
        url: The AMQP URL, e.g. ``"amqp://guest:guest@localhost:5672/"``.
        broker: A ``faststream.rabbit.RabbitBroker`` to use instead (shares its connection).

    Example:
        ```text
        transport = RabbitTransport("amqp://guest:guest@localhost:5672/")
        OutboxModule.register(transport=transport, consumers=[consume("orders", group="billing")])
        ```
    """

    scheme = "rabbit"

    def __init__(
        self, url: str = "amqp://guest:guest@localhost:5672/", *, broker: RabbitBroker | None = None
    ) -> None:
        super().__init__(broker if broker is not None else RabbitBroker(url, logger=None))
        self._declared: set[tuple[str, str]] = set()
        self._exchanges: set[str] = set()

    def _exchange(self, name: str) -> RabbitExchange:
        return RabbitExchange(name, type=ExchangeType.FANOUT, durable=True)

    def _queue(self, name: str, group: str) -> RabbitQueue:
        return RabbitQueue(f"{name}.{group}", queue_type=QueueType.QUORUM, durable=True)

    async def _publish(self, name: str, message: TransportMessage, headers: dict[str, str]) -> None:
        if name not in self._exchanges:  # publishing to a missing exchange closes the channel
            await self.broker.declare_exchange(self._exchange(name))
            self._exchanges.add(name)
        confirm = await self.broker.publish(
            message.payload,
            exchange=self._exchange(name),
            headers=headers,
            message_id=message.message_id,
            correlation_id=headers.get("correlation-id"),
            message_type=message.type_name,
            persist=True,
            mandatory=True,
        )
        if confirm is None or type(confirm).__name__ == "Ack":
            return
        reason = (
            "no consumer group has declared this destination, so no queue would store it"
            if type(confirm).__name__ == "DeliveredMessage"  # returned as unroutable
            else f"the broker answered {type(confirm).__name__} instead of a confirm"
        )
        raise BrokerPublishError(self.scheme, message.destination, reason)

    async def _declare(self, name: str, group: str) -> None:
        if (name, group) in self._declared:
            return
        # On a channel of our own: FastStream caches declared queues with their channel, and
        # the subscriber must consume on its own channel (where its prefetch is set).
        channel = await self.broker._connection.channel()  # noqa: SLF001 - the broker's connection
        try:
            exchange = await channel.declare_exchange(name, "fanout", durable=True)
            queue = await channel.declare_queue(
                f"{name}.{group}", durable=True, arguments={"x-queue-type": "quorum"}
            )
            await queue.bind(exchange)
        finally:
            await channel.close()
        self._exchanges.add(name)
        self._declared.add((name, group))

    def _subscribers(self, name: str, group: str, prefetch: int) -> list[Any]:
        subscriber = self.broker.subscriber(
            self._queue(name, group),
            self._exchange(name),
            channel=Channel(prefetch_count=prefetch),
            ack_policy=MANUAL,
            no_reply=True,
            persistent=False,
        )
        return [subscriber]

    async def _stop(self, subscriber: Any) -> None:
        queue = subscriber._queue_obj  # noqa: SLF001 - its channel, to close it
        await subscriber.stop()
        if queue is None:
            return
        # Closing the subscription's own channel returns anything delivered to it meanwhile
        # (RabbitMQ requeues a closed channel's unacked messages); FastStream cached the
        # queue with that channel, so forget it for the next subscription.
        await queue.channel.close()
        declarer = getattr(subscriber._outer_config, "declarer", None)  # noqa: SLF001
        cached = getattr(declarer, "_queues", None)
        if isinstance(cached, dict):
            cached.pop(subscriber.queue, None)

    async def _first_attempt(self, raw: StreamMessage[Any]) -> int:
        count = (raw.raw_message.headers or {}).get("x-delivery-count")
        if isinstance(count, int):
            return count + 1
        return 2 if raw.raw_message.redelivered else 1
