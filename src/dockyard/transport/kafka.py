"""``KafkaTransport``: the ``Transport`` port over Kafka, through FastStream.

Topology: each destination is a topic; each consumer group is a Kafka consumer group that
starts from the earliest retained offset, so it misses nothing published before it first
subscribed. The partition key is the Kafka record key: Kafka keeps one key's records in one
partition, in order, and a subscription hands out the next record of a partition only after
the previous one is settled. Publishing waits for the broker's acknowledgement (``acks=all``,
idempotent producer unless ``idempotent=False``). A rejected record is sought back and read
again. A consumer that dies keeps its partitions until the broker evicts it from the group,
``session_timeout`` seconds after its last heartbeat; then another member of the group reads
from the last committed offset.

Tested against Tansu, a Kafka-compatible broker (``docs/brokers.md``, "Kafka").
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from dockyard.exceptions import MissingExtraError

try:
    from aiokafka.errors import (
        KafkaConnectionError,
        KafkaTimeoutError,
        NodeNotReadyError,
        RequestTimedOutError,
    )
    from faststream.kafka import KafkaBroker
    from faststream.kafka.publisher.producer import AioKafkaFastProducerImpl
    from faststream.message import StreamMessage
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingExtraError("dockyard.transport.kafka", "faststream[kafka]", "kafka") from exc

from dockyard.exceptions import BrokerPublishError, TransportUnavailableError
from dockyard.transport._faststream import MANUAL, FastStreamTransport
from dockyard.transport._port import TransportMessage

__all__ = ["KafkaTransport"]


async def _headers_as_text(
    record: Any, parse: Callable[[Any], Awaitable[StreamMessage[Any]]]
) -> StreamMessage[Any]:
    """FastStream's parser, given header values it can decode. It decodes each value as UTF-8
    and a record with one that is not (a foreign producer's binary header) raised before any
    handler ran: the record was never handed out and, once a later one was committed, lost.
    Such values arrive as text with the bad bytes escaped (``\\xff``): a dockyard header
    that is garbled so makes the message a dead letter with the reason, as any malformed
    message is; other headers travel on."""
    try:
        return await parse(record)
    except UnicodeDecodeError:
        headers = [(key, _as_text(value)) for key, value in record.headers]
        return await parse(dataclasses.replace(record, headers=headers))


def _as_text(value: bytes | None) -> bytes:
    text = (value or b"").decode("utf-8", "backslashreplace")
    return text.encode()


_UNREACHABLE = (KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError)
"""aiokafka's errors for a broker it cannot reach or that does not answer in time (they are
``RuntimeError``s, not ``ConnectionError``s): an outage, not a refusal."""


class _ClosingProducer(AioKafkaFastProducerImpl):
    """FastStream's producer holder, closing the aiokafka producer whose start failed."""

    __slots__ = ()

    async def connect(self, producer: Any, *args: Any, **kwargs: Any) -> None:
        try:
            await super().connect(producer, *args, **kwargs)
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise


class KafkaTransport(FastStreamTransport):
    """A ``Transport`` over Kafka.

    Args:
        bootstrap_servers: Where to find the cluster, e.g. ``"localhost:9092"``.
        broker: A ``faststream.kafka.KafkaBroker`` to use instead (shares its connection;
            wrap it in ``faststream.kafka.TestKafkaBroker`` to test without a server).
        idempotent: Publish with an idempotent producer (the broker drops a record the
            client sent again after a lost acknowledgement). ``False`` for a broker without
            ``InitProducerId`` (Tansu's memory storage): a resent record is then stored twice
            and the consumer's inbox drops the copy; the order within a key holds either way.
        session_timeout: Seconds a consumer may go without a heartbeat before the broker
            evicts it and hands its partitions, from the last committed offset, to another
            member of its group: how long a crashed consumer's records wait.
        publish_timeout: Seconds a publish waits for the broker's acknowledgement before it
            raises ``TransportUnavailableError`` (the relay pauses and publishes again).
        connect_timeout: Seconds connecting may take before it raises
            ``TransportUnavailableError``.

    Example:
        ```text
        transport = KafkaTransport("localhost:9092")
        OutboxModule.register(transport=transport)
        ConsumerModule.register(endpoints=[listen("orders", group="billing")])
        ```
    """

    scheme = "kafka"
    messaging_system = "kafka"
    """``messaging.system`` in telemetry (OpenTelemetry semantic conventions)."""
    _testing_module = "faststream.kafka.testing"
    _left_behind = "an unclosed aiokafka producer"

    def __init__(
        self,
        bootstrap_servers: str = "localhost:9092",
        *,
        broker: KafkaBroker | None = None,
        idempotent: bool = True,
        session_timeout: float = 10.0,
        publish_timeout: float = 10.0,
        connect_timeout: float = 10.0,
    ) -> None:
        for name, value in (
            ("session_timeout", session_timeout),
            ("publish_timeout", publish_timeout),
        ):
            if value <= 0:
                msg = f"KafkaTransport.{name} must be > 0, got {value}"
                raise ValueError(msg)
        super().__init__(
            broker
            if broker is not None
            else KafkaBroker(
                bootstrap_servers,
                acks="all",
                enable_idempotence=idempotent,
                request_timeout_ms=int(connect_timeout * 1000),
                logger=None,
            ),
            connect_timeout=connect_timeout,
        )
        self.session_timeout = session_timeout
        self.publish_timeout = publish_timeout

    async def _publish(self, name: str, message: TransportMessage, headers: dict[str, str]) -> None:
        key = message.partition_key.encode() if message.partition_key is not None else None
        try:
            async with asyncio.timeout(self.publish_timeout):
                metadata = await self.broker.publish(
                    message.payload, name, key=key, headers=headers
                )
        except TimeoutError as exc:
            # Given up on, the record may still reach the broker: a copy the inbox drops.
            reason = f"no acknowledgement within {self.publish_timeout:g}s publishing to {name!r}"
            raise TransportUnavailableError(self.scheme, reason) from exc
        if metadata is None and not self.in_test_broker():
            raise BrokerPublishError(self.scheme, message.destination, "no record metadata")

    def _hook_connects(self) -> str | None:
        # FastStream keeps the aiokafka producer it made only once it started: a start that
        # fails (no broker) left it unclosed, warning at garbage collection. Its producer
        # holder has slots, so the hook is a subclass that closes it (same layout).
        holder = getattr(getattr(self.broker, "config", None), "producer", None)
        if type(holder) is not AioKafkaFastProducerImpl:
            return f"FastStream's Kafka producer holder is {type(holder).__name__}"
        holder.__class__ = _ClosingProducer
        return None

    def _unreachable(self, error: BaseException) -> bool:
        return super()._unreachable(error) or isinstance(error, _UNREACHABLE)

    def _broker_id(self, raw: StreamMessage[Any]) -> str | None:
        # The record's topic, partition and offset: the same every time it is read again.
        record = raw.raw_message
        topic = getattr(record, "topic", None)
        partition, offset = getattr(record, "partition", None), getattr(record, "offset", None)
        if topic and isinstance(partition, int) and isinstance(offset, int):
            return f"{topic}:{partition}:{offset}"
        return None

    async def _declare(self, name: str, group: str) -> None:
        # Topics are created on first use (auto.create.topics.enable) and a new group reads
        # from the earliest retained offset, so there is nothing to create ahead of time.
        del name, group

    def _subscribers(self, name: str, group: str, prefetch: int) -> list[Any]:
        del prefetch  # one record of a partition at a time: Kafka's order
        session_ms = int(self.session_timeout * 1000)
        subscriber = self.broker.subscriber(
            name,
            group_id=group,
            auto_offset_reset="earliest",
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(1, session_ms // 3),  # Kafka's advice: a third at most
            ack_policy=MANUAL,
            no_reply=True,
            persistent=False,
            parser=_headers_as_text,
        )
        return [subscriber]
