"""A consumer app whose handler records an effect row, in the inbox's transaction.

Run as a process (``python -m integration._apps.fault_consumer rabbit|nats|redis <schema>
<destination> <name>``) it is one consumer of the group ``effects``. With
``DOCKYARD_FAULT_STALL_ON=<n>`` its handler writes ``Ping(n)``'s effect, touches the file
``DOCKYARD_FAULT_MARKER`` and then hangs, uncommitted, until the test kills the process.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from dockyard.app import App
from dockyard.consumer import ConsumerModule, listen
from dockyard.messaging import Event, EventHandler
from dockyard.modules import module
from dockyard.outbox import OutboxModule
from dockyard.sql import SqlModule, SqlOutboxBackend, SqlUnitOfWork
from dockyard.transport import Transport
from integration._apps.services import (
    KAFKA_SERVERS,
    NATS_URL,
    POSTGRES_URL,
    REDIS_URL,
    engine_options,
    rabbit_url,
)


def group_for(destination: str) -> str:
    """The consumer group of ``destination``'s test: its own, since on Kafka a group spans
    topics (two runs of the suite at once would otherwise share members)."""
    return f"effects-{destination}"


EFFECTS_TABLE = (
    "CREATE TABLE fault_effects (n INTEGER NOT NULL, consumer TEXT NOT NULL, applied BIGSERIAL)"
)
"""``applied`` numbers the effects in the order they were written."""
STALL_ON = "DOCKYARD_FAULT_STALL_ON"
MARKER = "DOCKYARD_FAULT_MARKER"
CONSUMER = "DOCKYARD_FAULT_CONSUMER"
CONCURRENCY = "DOCKYARD_FAULT_CONCURRENCY"


@dataclass(frozen=True, slots=True)
class Ping(Event):
    n: int


class RecordEffect(EventHandler[Ping]):
    """The effect: one row per handling that committed (the inbox makes it one per message)."""

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    async def handle(self, event: Ping, /) -> None:
        await self._uow.connection.execute(
            text("INSERT INTO fault_effects (n, consumer) VALUES (:n, :consumer)"),
            {"n": event.n, "consumer": os.environ.get(CONSUMER, "test")},
        )
        if os.environ.get(STALL_ON) == str(event.n):
            await asyncio.to_thread(Path(os.environ[MARKER]).touch)
            await asyncio.sleep(3600)  # the effect is written, not committed: kill me now


def consumer_app(schema: str, transport: Transport, destination: str) -> App:
    """Consumes ``destination`` as group ``group_for(destination)`` (4 at a time, or
    ``DOCKYARD_FAULT_CONCURRENCY``) into ``fault_effects``."""
    concurrency = int(os.environ.get(CONCURRENCY, "4"))

    @module(
        handlers=[RecordEffect],
        imports=[
            SqlModule.register(POSTGRES_URL, **engine_options(schema)),
            OutboxModule.register(transport=transport, backend=SqlOutboxBackend(), run_relay=False),
            ConsumerModule.register(
                endpoints=[
                    listen(destination, group=group_for(destination), concurrency=concurrency)
                ]
            ),
        ],
    )
    class EffectsConsumer: ...

    return App.build(EffectsConsumer)


BROKER_PORTS = {"rabbit": 5672, "nats": 4222, "redis": 6379, "kafka": 9092}


def transport_for(
    broker: str, connection_name: str, *, ack_wait: float = 2.0, port: int | None = None
) -> Transport:
    """The broker's transport; a crashed consumer's message comes back after ``ack_wait``
    seconds on NATS (``ack_wait``) and on Redis (``claim_after``), once the broker evicted it
    from the group on Kafka (``session_timeout``), at once on RabbitMQ.
    With ``port``, NATS and Redis are reached there (a proxy in front of them)."""
    if broker == "rabbit":
        from faststream.rabbit import RabbitBroker

        from dockyard.transport.rabbit import RabbitTransport

        # Reconnect sooner than aio-pika's 5 s, so the test spends its time on the stream.
        amqp = RabbitBroker(rabbit_url(connection_name), reconnect_interval=0.5, logger=None)
        return RabbitTransport(broker=amqp)
    if broker == "kafka":
        from dockyard.transport.kafka import KafkaTransport

        # Tansu (memory storage) has no idempotent producers.
        return KafkaTransport(KAFKA_SERVERS, idempotent=False, session_timeout=max(ack_wait, 3.0))
    if broker == "redis":
        from dockyard.transport.redis import RedisTransport

        if port is None:
            return RedisTransport(REDIS_URL, claim_after=ack_wait)
        url = f"redis://127.0.0.1:{port}"  # a stalled publish is given up on sooner, too
        return RedisTransport(url, claim_after=ack_wait, publish_timeout=ack_wait)
    from dockyard.transport.nats import NatsTransport

    if port is None:
        return NatsTransport(NATS_URL, ack_wait=ack_wait)
    return NatsTransport(f"nats://127.0.0.1:{port}", ack_wait=ack_wait, publish_timeout=ack_wait)


async def main(broker: str, schema: str, destination: str, name: str) -> None:
    transport = transport_for(broker, name)
    try:
        await consumer_app(schema, transport, destination).run_worker(grace=5.0)
    finally:
        await transport.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
