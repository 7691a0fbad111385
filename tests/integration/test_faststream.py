"""dockyard.integrations.faststream against real brokers: a FastStream app of the user's own
(its broker, ``async with stream``) whose endpoints run through dockyard's consumer runtime.

Messages are published as another dockyard app's relay publishes them: a transport of its own
(its own connection) sending ``TransportMessage``s with the envelope headers. Effects are rows
in a SQLite database, written in the message's unit of work beside the inbox record.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.nats import NatsBroker
from faststream.rabbit import RabbitBroker
from faststream.redis import RedisBroker

from dockyard import App, Command, CommandHandler, Event, EventHandler, ISender, contextual, module
from dockyard.consumer import ErrorPolicies, listen, retry_inline, retry_later
from dockyard.di import Lifetime
from dockyard.integrations.faststream import FromDockyard, setup_dockyard
from dockyard.outbox import DeadLetters, Outbox, OutboxModule
from dockyard.serialization import Serializer
from dockyard.sql import SqlOutboxBackend, SqlUnitOfWork
from dockyard.testing.pytest import IsolatedDatabase, isolated_database
from dockyard.transport import TransportMessage
from dockyard.transport._faststream import FastStreamTransport, encode_headers
from dockyard.transport.kafka import KafkaTransport
from dockyard.transport.nats import NatsTransport
from dockyard.transport.rabbit import RabbitTransport
from dockyard.transport.redis import RedisTransport
from integration._apps.services import REDIS_URL, delete_declared

RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672/"
NATS_URL = "nats://127.0.0.1:4222"
TIMEOUT = 30.0

charges = sa.Table(
    "fs_charges",
    sa.MetaData(),
    sa.Column("order_id", sa.String(64), primary_key=True),
)


@dataclass(frozen=True, slots=True)
class PaymentRequested(Event):
    order_id: str


@dataclass(frozen=True, slots=True)
class Charge(Command[None]):
    order_id: str
    fail: bool = False


@dataclass
class Probe:
    """What the test sees of the app: handler runs (order id, scope) and its life."""

    runs: list[tuple[str, SqlUnitOfWork]] = field(default_factory=list)
    """Each run's unit of work is kept (alive, so two never share an ``id``)."""
    started: int = 0
    stopped: int = 0


class ChargeOnPaymentRequested(EventHandler[PaymentRequested]):
    def __init__(self, uow: SqlUnitOfWork, probe: Probe) -> None:
        self.uow, self.probe = uow, probe

    async def handle(self, event: PaymentRequested, /) -> None:
        self.probe.runs.append((event.order_id, self.uow))
        if event.order_id.startswith("bad"):
            raise ValueError(f"card of {event.order_id} declined")
        await self.uow.connection.execute(charges.insert().values(order_id=event.order_id))


class ChargeHandler(CommandHandler[Charge, None]):
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self.uow = uow

    async def handle(self, command: Charge, /) -> None:
        await self.uow.connection.execute(charges.insert().values(order_id=command.order_id))
        if command.fail:
            raise RuntimeError("after the write")


def build(isolated: IsolatedDatabase, probe: Probe, transport: FastStreamTransport) -> App:
    @module(
        providers=[contextual(Probe, lifetime=Lifetime.SINGLETON)],
        handlers=[ChargeOnPaymentRequested, ChargeHandler],
        imports=[
            isolated.sql_module(),
            OutboxModule.register(transport=transport, backend=SqlOutboxBackend(), run_relay=False),
        ],
    )
    class Billing: ...

    @asynccontextmanager
    async def counted(app: App) -> AsyncIterator[None]:
        probe.started += 1
        yield
        probe.stopped += 1

    return App.build(Billing, context={Probe: probe}, lifespan=[counted])


@dataclass
class Service:
    """A FastStream app of the user's, with dockyard attached, and a producer beside it."""

    stream: FastStream
    app: App
    probe: Probe
    producer: FastStreamTransport
    destination: str
    plain: str
    group: str
    serializer: Serializer = field(default_factory=Serializer)

    async def send(self, event: object, message_id: str | None = None, **fields: Any) -> str:
        encoded = self.serializer.serialize(event)
        message = TransportMessage(
            message_id or str(uuid.uuid4()),
            self.destination,
            fields.pop("type_name", encoded.type_name),
            fields.pop("payload", encoded.data),
            **fields,
        )
        await self.producer.publish(message)
        return message.message_id

    async def send_again(self, event: object, message_id: str) -> None:
        """A second copy of message ``message_id``, as a relay that crashed before marking it
        sent publishes it (JetStream's own deduplication is side-stepped: the inbox's turn)."""
        if not isinstance(self.producer, NatsTransport):
            await self.send(event, message_id)
            return
        encoded = self.serializer.serialize(event)
        message = TransportMessage(message_id, self.destination, encoded.type_name, encoded.data)
        headers = {**encode_headers(message), "Nats-Msg-Id": f"{message_id}-again"}
        stream = NatsTransport.stream_name(self.destination)
        await self.producer.broker.publish(
            message.payload, self.destination, headers=headers, stream=stream
        )


@asynccontextmanager
async def charges_database(directory: Path) -> AsyncIterator[IsolatedDatabase]:
    """A SQLite database of the test's own, with dockyard's tables and ``fs_charges``."""
    async with isolated_database(None, directory) as isolated:
        database = isolated.database()
        try:
            async with database.engine.begin() as connection:
                await connection.run_sync(charges.metadata.create_all)
        finally:
            await database.dispose()
        yield isolated


BROKERS = [
    pytest.param("rabbit", marks=pytest.mark.rabbit),
    pytest.param("nats", marks=pytest.mark.nats),
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("kafka", marks=pytest.mark.kafka),
]
KAFKA_SERVERS = "127.0.0.1:9092"


def _brokers(
    kind: str,
) -> tuple[
    RabbitBroker | NatsBroker | RedisBroker | KafkaBroker, FastStreamTransport, FastStreamTransport
]:
    """The user's broker, the dockyard transport over it, and a producer of its own."""
    if kind == "rabbit":
        rabbit = RabbitBroker(RABBIT_URL, logger=None)
        return rabbit, RabbitTransport(broker=rabbit), RabbitTransport(RABBIT_URL)
    if kind == "redis":
        redis = RedisBroker(REDIS_URL, logger=None)  # type: ignore[arg-type]
        return redis, RedisTransport(broker=redis), RedisTransport(REDIS_URL)
    if kind == "kafka":  # Tansu (memory storage): no idempotent producers
        kafka = KafkaBroker(KAFKA_SERVERS, logger=None)
        return kafka, KafkaTransport(broker=kafka), KafkaTransport(KAFKA_SERVERS, idempotent=False)
    nats = NatsBroker(NATS_URL, logger=None)
    return nats, NatsTransport(broker=nats), NatsTransport(NATS_URL)


@pytest.fixture(params=BROKERS)
async def service(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Service]:
    broker, transport, producer = _brokers(request.param)
    suffix = uuid.uuid4().hex[:8]
    destination, plain = f"fs-payments-{suffix}", f"fs-plain-{suffix}"
    # a group of its own: on Kafka a group spans topics, so runs at once would share members
    group = f"billing-{suffix}"
    async with charges_database(tmp_path) as isolated:
        probe = Probe()
        app = build(isolated, probe, transport)
        stream = FastStream(broker, logger=None)
        policies = ErrorPolicies(default=retry_inline(1, then=retry_later(2, initial_delay=0.01)))
        setup_dockyard(
            stream,
            app,
            endpoints=[listen(destination, group=group, policies=policies)],
            transport=transport,
        )

        async def charge(order_id: str, sender: FromDockyard[ISender]) -> None:
            await sender.send(Charge(order_id, fail=order_id.startswith("bad")))

        broker.subscriber(plain)(charge)  # `@broker.subscriber(plain)`, on any broker

        try:
            async with running(stream):
                assert (probe.started, probe.stopped) == (1, 0)
                yield Service(stream, app, probe, producer, destination, plain, group)
        finally:
            await producer.close()
            # The endpoint's queue (or stream), and on RabbitMQ the plain subscriber's queue.
            also = [plain] if isinstance(producer, RabbitTransport) else []
            await delete_declared(transport, producer, also=also)
        assert (probe.started, probe.stopped) == (1, 1)
        assert not app.is_started


@asynccontextmanager
async def running(stream: FastStream) -> AsyncIterator[None]:
    """What ``faststream run`` does around the app's life (``async with stream`` from 0.7)."""
    await stream.start()
    try:
        yield
    finally:
        await stream.stop()


@asynccontextmanager
async def _deleting(transport: FastStreamTransport) -> AsyncIterator[None]:
    """Delete what ``transport`` declared on the way out."""
    try:
        yield
    finally:
        await delete_declared(transport)


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not await check():  # noqa: ASYNC110 - polls tables the app writes
            await asyncio.sleep(0.02)
    assert await check(), what


async def charged(app: App) -> set[str]:
    async with app.scope() as scope:
        uow = await scope.get(SqlUnitOfWork)
        rows = await uow.connection.execute(sa.select(charges.c.order_id))
        return {str(order_id) for order_id in rows.scalars()}


async def dead_letters(app: App) -> dict[str, str]:
    letters = await (await app.get(DeadLetters)).list()
    return {letter.message_id: letter.last_error or "" for letter in letters}


async def test_each_message_is_handled_once_in_a_scope_of_its_own_with_its_effects_committed(
    service: Service,
) -> None:
    await service.send(PaymentRequested("o-1"))
    await service.send(PaymentRequested("o-2"))

    async def both() -> bool:
        return await charged(service.app) == {"o-1", "o-2"}

    await eventually(both, "both charges committed")
    assert sorted(order for order, _ in service.probe.runs) == ["o-1", "o-2"]
    scopes = {id(scope) for _, scope in service.probe.runs}
    assert len(scopes) == 2  # one unit of work each


async def test_a_redelivered_message_is_ignored_by_the_inbox(service: Service) -> None:
    first = await service.send(PaymentRequested("o-1"))
    await service.send_again(PaymentRequested("o-1"), first)  # the relay published it twice
    await service.send(PaymentRequested("o-2"))  # after both, in the same queue

    async def second_handled() -> bool:
        return "o-2" in await charged(service.app)

    await eventually(second_handled, "the message after the copy handled")
    assert [order for order, _ in service.probe.runs] == ["o-1", "o-2"]


async def test_a_failing_handler_is_retried_then_dead_lettered_with_its_reason(
    service: Service,
) -> None:
    bad = await service.send(PaymentRequested("bad-1"))

    async def dead() -> bool:
        return bad in await dead_letters(service.app)

    await eventually(dead, "the failing message dead-lettered")
    reason = (await dead_letters(service.app))[bad]
    assert (
        reason
        == f"consumer:{service.destination}:{service.group}: ValueError: card of bad-1 declined"
    )
    # retry_inline(1) on each of retry_later(2)'s two deliveries: four runs, each in its scope
    assert [order for order, _ in service.probe.runs] == ["bad-1"] * 4
    assert len({id(scope) for _, scope in service.probe.runs}) == 4
    assert await charged(service.app) == set()


async def test_malformed_messages_are_dead_letters_and_the_endpoint_goes_on(
    service: Service,
) -> None:
    untyped = await service.send(PaymentRequested("o-x"), type_name="")
    unknown = await service.send(PaymentRequested("o-y"), type_name="Refunded")
    garbled = await service.send(PaymentRequested("o-z"), payload=b"{not json")
    await service.send(PaymentRequested("o-1"))

    async def handled() -> bool:
        return "o-1" in await charged(service.app)

    await eventually(handled, "the good message after the malformed ones handled")
    letters = await dead_letters(service.app)
    assert set(letters) == {untyped, unknown, garbled}
    assert "it has no `message-type` header" in letters[untyped]
    assert "unknown message type `Refunded`" in letters[unknown]
    assert letters[garbled].startswith(f"consumer:{service.destination}:{service.group}: ")
    assert [order for order, _ in service.probe.runs] == ["o-1"]


async def test_a_plain_handler_gets_dockyard_providers_in_one_unit_of_work(
    service: Service,
) -> None:
    broker = service.stream.broker
    assert broker is not None
    await broker.publish("p-1", service.plain)
    await broker.publish("bad-p", service.plain)  # writes, then raises: rolled back
    await broker.publish("p-2", service.plain)

    async def both() -> bool:
        return {"p-1", "p-2"} <= await charged(service.app)

    await eventually(both, "both plain messages committed")
    assert "bad-p" not in await charged(service.app)


@pytest.mark.rabbit
async def test_background_services_share_the_users_broker_without_starting_it_again(
    tmp_path: Path,
) -> None:
    """The relay publishes through the FastStream app's own broker (already started by
    FastStream); the endpoint consumes what it relays; the queue has one consumer, not two."""
    destination = f"fs-relayed-{uuid.uuid4().hex[:8]}"
    broker = RabbitBroker(RABBIT_URL, logger=None)
    transport = RabbitTransport(broker=broker)
    async with charges_database(tmp_path) as isolated:
        probe = Probe()

        @module(
            providers=[contextual(Probe, lifetime=Lifetime.SINGLETON)],
            handlers=[ChargeOnPaymentRequested],
            imports=[
                isolated.sql_module(),
                OutboxModule.register(transport=transport, backend=SqlOutboxBackend()),
            ],
        )
        class Billing: ...

        app = App.build(Billing, context={Probe: probe})
        stream = FastStream(broker, logger=None)
        setup_dockyard(
            stream,
            app,
            endpoints=[listen(destination, group="billing")],
            transport=transport,
            background_services=True,
        )
        async with running(stream), _deleting(transport):
            async with app.scope() as scope:  # an outbox row, relayed in this process
                outbox = await scope.get(Outbox)
                await outbox.add(PaymentRequested("o-1"), destination=destination)

            async def charged_once() -> bool:
                return await charged(app) == {"o-1"}

            await eventually(charged_once, "the relayed event handled")
            amqp = broker._connection
            assert amqp is not None
            channel = await amqp.channel()  # a look at the queue
            try:
                queue = await channel.declare_queue(f"{destination}.billing", passive=True)
                consumers = queue.declaration_result.consumer_count
            finally:
                await channel.close()
        assert consumers == 1
        assert [order for order, _ in probe.runs] == ["o-1"]
        assert not app.is_started
