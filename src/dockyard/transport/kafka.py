"""``KafkaTransport``: the ``Transport`` port over Kafka, through FastStream.

Topology: each destination is a topic; each consumer group is a Kafka consumer group that
starts from the earliest retained offset, so it misses nothing published before it first
subscribed. The partition key is the Kafka record key: Kafka keeps one key's records in one
partition, in order, and a subscription hands out the next record of a partition only after
the previous one is settled. Publishing waits for the broker's acknowledgement (``acks=all``,
idempotent producer). A rejected record is sought back and read again.

There is no Kafka server on the machine dockyard is developed on: the transport is tested
with FastStream's in-memory ``TestKafkaBroker`` (see ``docs/brokers.md``).
"""

from __future__ import annotations

from typing import Any

from dockyard.exceptions import MissingExtraError

try:
    from faststream.kafka import KafkaBroker
    from faststream.message import StreamMessage
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingExtraError("dockyard.transport.kafka", "faststream[kafka]", "kafka") from exc

from dockyard.exceptions import BrokerPublishError
from dockyard.transport._faststream import MANUAL, FastStreamTransport
from dockyard.transport._port import TransportMessage

__all__ = ["KafkaTransport"]


class KafkaTransport(FastStreamTransport):
    """A ``Transport`` over Kafka.

    Args:
        bootstrap_servers: Where to find the cluster, e.g. ``"localhost:9092"``.
        broker: A ``faststream.kafka.KafkaBroker`` to use instead (shares its connection;
            wrap it in ``faststream.kafka.TestKafkaBroker`` to test without a server).
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

    def __init__(
        self,
        bootstrap_servers: str = "localhost:9092",
        *,
        broker: KafkaBroker | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        super().__init__(
            broker
            if broker is not None
            else KafkaBroker(bootstrap_servers, acks="all", enable_idempotence=True, logger=None),
            connect_timeout=connect_timeout,
        )

    async def _publish(self, name: str, message: TransportMessage, headers: dict[str, str]) -> None:
        key = message.partition_key.encode() if message.partition_key is not None else None
        metadata = await self.broker.publish(message.payload, name, key=key, headers=headers)
        if metadata is None and not self.in_test_broker():
            raise BrokerPublishError(self.scheme, message.destination, "no record metadata")

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
        subscriber = self.broker.subscriber(
            name,
            group_id=group,
            auto_offset_reset="earliest",
            ack_policy=MANUAL,
            no_reply=True,
            persistent=False,
        )
        return [subscriber]
