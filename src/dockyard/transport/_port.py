"""The ``Transport`` port: how the relay publishes and how consumers receive.

Every transport (in-memory here; RabbitMQ, NATS, Redis, Kafka over FastStream later) has the
same shape and passes ``dockyard.testing.contracts.TransportContract``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from dockyard.exceptions import BatchPublishError

__all__ = [
    "CAUSATION_ID",
    "CONTENT_ENCODING",
    "CONTENT_TYPE",
    "CORRELATION_ID",
    "BatchPublishError",
    "BatchPublisher",
    "Delivery",
    "Subscription",
    "Transport",
    "TransportMessage",
    "in_process",
]

CORRELATION_ID = "correlation-id"
"""Header carrying the conversation id (``Envelope.correlation_id``)."""
CAUSATION_ID = "causation-id"
"""Header carrying the id of the message whose handler caused this one."""
CONTENT_TYPE = "content-type"
"""Header naming the media type of the payload (its codec's, e.g. ``application/json``)."""
CONTENT_ENCODING = "content-encoding"
"""Header set to ``gzip`` when the outbox compressed the payload (``compress_above``);
consumers decompress it before decoding."""
NO_MESSAGE_ID = "dockyard-no-message-id"
"""Set (to ``"1"``) by a broker transport on a received message that came with no id: no
``message-id`` header and none the broker keeps across redeliveries. Its id is made up on
arrival, so a redelivery would look new to the inbox; consumers dead-letter it instead."""


@dataclass(frozen=True, slots=True)
class TransportMessage:
    """One message on the wire: ids and headers around an encoded payload.

    Attributes:
        message_id: Unique id, kept across redeliveries (consumers deduplicate on it).
        destination: Where it goes, e.g. ``"orders"`` or ``"rabbit://orders"``.
        type_name: The stable type name of the payload (``dockyard.serialization``).
        schema_version: The payload's schema version, for upcasting on the consumer side.
        payload: The encoded message.
        headers: Correlation and causation ids, trace context, user headers.
        partition_key: Messages with the same key are delivered in order; ``None``: no order.
    """

    message_id: str
    destination: str
    type_name: str
    payload: bytes
    schema_version: int = 1
    headers: Mapping[str, str] = field(default_factory=dict)
    partition_key: str | None = None

    def __post_init__(self) -> None:
        if not self.message_id:
            msg = "TransportMessage.message_id must not be empty"
            raise ValueError(msg)
        if not self.destination:
            msg = "TransportMessage.destination must not be empty"
            raise ValueError(msg)


class Delivery(Protocol):
    """One received message, to be acknowledged (done) or rejected (redeliver later)."""

    @property
    def message(self) -> TransportMessage: ...

    @property
    def attempt(self) -> int:
        """1 for the first delivery, 2 for the first redelivery, and so on."""
        ...

    async def ack(self) -> None:
        """The message is handled: never deliver it to this group again."""
        ...

    async def nack(self, *, delay: float = 0.0) -> None:
        """The message failed: deliver it again (to this group) after ``delay`` seconds."""
        ...


class Subscription(Protocol):
    """A consumer group's stream of deliveries from one destination.

    Unacknowledged deliveries are redelivered when the subscription closes (a crashed or
    stopped consumer), so close it only once in-flight work is finished.
    """

    def __aiter__(self) -> AsyncIterator[Delivery]: ...


class Transport(Protocol):
    """Publishes messages to destinations and delivers them to consumer groups.

    Guarantees every implementation gives (checked by ``TransportContract``):

    * ``publish`` returns once the transport has accepted the message (a broker's confirm);
      if it raises, the message may or may not have been accepted (the relay retries).
    * Each consumer group of a destination receives every message published to it after the
      group was declared, at least once; competing consumers in one group share the work.
    * Messages with the same partition key are delivered to a group in publish order, and
      the next one only after the previous one is acknowledged.
    * A rejected or unacknowledged message is redelivered with ``attempt`` increased.

    Optional: a class attribute ``in_process = True`` says messages never leave this process
    (``InMemoryTransport``); the outbox then defaults to in-memory storage (``in_process``).
    """

    async def publish(self, message: TransportMessage, /) -> None:
        """Hand ``message`` to the transport; return when it is accepted."""
        ...

    async def declare(self, destination: str, group: str) -> None:
        """Create ``group``'s queue on ``destination`` (idempotent), so nothing published
        from now on is missed even before the group subscribes."""
        ...

    def subscribe(
        self, destination: str, group: str, *, prefetch: int = 1
    ) -> AbstractAsyncContextManager[Subscription]:
        """Receive ``group``'s messages from ``destination``, at most ``prefetch`` unacked.

        Declares the group if needed. Leaving the context returns unacked deliveries.
        """
        ...

    async def close(self) -> None:
        """Release connections; in-flight deliveries are returned for redelivery."""
        ...


@runtime_checkable
class BatchPublisher(Protocol):
    """A transport that can publish many messages at once (optional; the relay uses it).

    Guarantees (checked by ``TransportContract.test_publish_many_*``):

    * ``publish_many`` returns once the transport has accepted every message.
    * Messages with the same partition key are accepted in the order given, and a message
      is not published at all when an earlier message of its key in the call failed.
    * If some messages fail it raises ``BatchPublishError`` naming them (and the later
      messages of their keys it held back); every other message was accepted. Any other
      exception means nothing can be assumed accepted.
    """

    async def publish_many(self, messages: Sequence[TransportMessage], /) -> None:
        """Hand ``messages`` to the transport; return when every one is accepted."""
        ...


@runtime_checkable
class BacklogReader(Protocol):
    """A transport that can say how far behind a consumer group is (optional; the consumer
    exports it as the ``dockyard.consumer.lag`` metric when telemetry is on)."""

    async def backlog(self, destination: str, group: str, /) -> int | None:
        """Messages of ``destination`` that ``group`` has not acknowledged yet, as the broker
        counts them, or ``None`` when the broker cannot tell (or the group is unknown)."""
        ...


def in_process(transport: object) -> bool:
    """Whether ``transport`` says its messages never leave this process (``in_process``)."""
    return getattr(transport, "in_process", False) is True
