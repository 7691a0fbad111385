"""The broker transports pass ``TransportContract`` against the real servers on this machine.

Each test deletes what it declared afterwards (``delete_declared``): the contract alone made
a dozen queues or streams per broker per run, and they were never removed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from dockyard.exceptions import BrokerPublishError
from dockyard.testing.contracts import TransportContract
from dockyard.transport import BatchPublishError, Transport, TransportMessage
from dockyard.transport.kafka import KafkaTransport
from dockyard.transport.nats import NatsTransport
from dockyard.transport.rabbit import RabbitTransport
from dockyard.transport.redis import RedisTransport
from integration._apps.services import delete_declared

RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672/"
NATS_URL = "nats://127.0.0.1:4222"
REDIS_URL = "redis://127.0.0.1:6379"
KAFKA_SERVERS = "127.0.0.1:9092"


@pytest.mark.rabbit
class TestRabbitTransport(TransportContract):
    @pytest_asyncio.fixture
    async def transport_factory(self) -> AsyncIterator[Transport]:
        transport = RabbitTransport(RABBIT_URL)
        yield transport
        await transport.close()
        await delete_declared(transport)

    async def refusing_destination(self, transport: Transport) -> str:
        del transport
        return f"nobody-{uuid.uuid4().hex[:8]}"  # no group declared: unroutable, refused

    async def test_a_destination_no_group_declared_refuses_messages(self) -> None:
        transport = RabbitTransport(RABBIT_URL)
        try:
            destination = f"nobody-{uuid.uuid4().hex[:8]}"
            with pytest.raises(BrokerPublishError, match="no consumer group has declared"):
                await transport.publish(TransportMessage("m-1", destination, "T", b"{}"))
            # the channel survives the refusal: the next publish to a declared one works
            await transport.declare(destination, "g")
            await transport.publish(TransportMessage("m-2", destination, "T", b"{}"))
        finally:
            await transport.close()
            await delete_declared(transport)

    async def test_a_channel_closed_mid_wave_fails_the_wave_and_the_next_one_reopens_it(
        self,
    ) -> None:
        transport = RabbitTransport(RABBIT_URL)
        other = RabbitTransport(RABBIT_URL)
        try:
            destination, group = f"gone-{uuid.uuid4().hex[:8]}", "g"
            await transport.declare(destination, group)
            # Deleted behind the transport's back: publishing to a missing exchange makes
            # RabbitMQ close the channel, so no confirm ever comes for this wave.
            await other.declare(destination, group)
            channel = await other.broker._connection.channel()
            await channel.exchange_delete(destination)
            await channel.close()
            wave = [
                TransportMessage(f"m-{n}", destination, "T", b"{}", partition_key=f"k-{n}")
                for n in range(20)
            ]
            with pytest.raises(BatchPublishError) as raised:  # not a hang: a deadline guards it
                await asyncio.wait_for(transport.publish_many(wave), 30)
            assert sorted(raised.value.failed) == sorted(m.message_id for m in wave)
            assert all(isinstance(e, BrokerPublishError) for e in raised.value.failed.values())
            await other.declare(f"{destination}-again", group)
            again = [TransportMessage("m-again", f"{destination}-again", "T", b"{}")]
            await transport.publish_many(again)  # on a new channel
        finally:
            await transport.close()
            await other.close()
            await delete_declared(transport, other)


@pytest.mark.nats
class TestNatsTransport(TransportContract):
    @pytest_asyncio.fixture
    async def transport_factory(self) -> AsyncIterator[Transport]:
        self.made: list[str] = []
        transport = NatsTransport(NATS_URL, ack_wait=5.0)
        yield transport
        await transport.close()
        await delete_declared(transport, also=self.made)

    async def refusing_destination(self, transport: Transport) -> str:
        assert isinstance(transport, NatsTransport)
        name = f"tiny-{uuid.uuid4().hex[:8]}"  # a stream that refuses messages over 1 byte
        self.made.append(NatsTransport.stream_name(name))
        await transport.broker.connection.jetstream().add_stream(
            name=NatsTransport.stream_name(name), subjects=[name], max_msg_size=1
        )
        return name

    async def test_the_server_drops_a_second_publish_of_one_id(self) -> None:
        transport = NatsTransport(NATS_URL)
        try:
            destination, group = f"dup-{uuid.uuid4().hex[:8]}", "g"
            await transport.declare(destination, group)
            sent = TransportMessage("same-id", destination, "T", b"{}")
            await transport.publish(sent)
            await transport.publish(sent)  # the relay crashed after publishing: again
            info = await transport.broker.connection.jetstream().stream_info(
                NatsTransport.stream_name(destination)
            )
            assert info.state.messages == 1
        finally:
            await transport.close()
            await delete_declared(transport)

    async def test_publish_many_twice_is_stored_once_and_a_missing_stream_fails_the_wave(
        self,
    ) -> None:
        transport = NatsTransport(NATS_URL)
        try:
            destination, group = f"many-{uuid.uuid4().hex[:8]}", "g"
            await transport.declare(destination, group)
            wave = [TransportMessage(f"m-{n}", destination, "T", b"{}") for n in range(10)]
            await transport.publish_many(wave)
            await transport.publish_many(wave)  # the relay crashed before recording them
            js = transport.broker.connection.jetstream()
            stream = NatsTransport.stream_name(destination)
            assert (await js.stream_info(stream)).state.messages == 10
            await js.delete_stream(stream)  # behind the transport's back: nobody answers
            with pytest.raises(BatchPublishError) as raised:
                await transport.publish_many(wave)
            assert sorted(raised.value.failed) == sorted(m.message_id for m in wave)
            causes = {type(e.__cause__).__name__ for e in raised.value.failed.values()}
            assert causes == {"NoStreamResponseError"}
        finally:
            await transport.close()
            await delete_declared(transport)  # its stream is gone already: that is fine


@pytest.mark.redis
class TestRedisTransport(TransportContract):
    @pytest_asyncio.fixture
    async def transport_factory(self) -> AsyncIterator[Transport]:
        transport = RedisTransport(REDIS_URL, claim_after=0.5, poll_interval=0.05)
        yield transport
        await transport.close()
        await delete_declared(transport)  # the refusing key expires by itself

    async def refusing_destination(self, transport: Transport) -> str:
        assert isinstance(transport, RedisTransport)
        await transport.publish_many([])  # connects
        name = f"plain-{uuid.uuid4().hex[:8]}"  # a string key: XADD answers WRONGTYPE
        await transport.broker._connection.set(name, "not a stream", ex=60)
        return name

    async def test_a_dead_consumers_entry_is_acknowledged_before_a_later_one_goes_out(
        self, transport: Transport
    ) -> None:
        """A consumer that died holding a keyed entry: a live subscription claims it (its
        reclaimer) and hands it out first, and the later entry it read as new waits until
        that one is acknowledged. Before, the later one went out as soon as the claim had
        happened (its wait looked only for entries of other consumers), racing the claimed
        one: a CI run applied ``[8, 0, 16]`` of one key."""
        assert isinstance(transport, RedisTransport)
        destination, group = f"claimed-{uuid.uuid4().hex[:8]}", "g"
        await transport.declare(destination, group)
        client = transport.broker._connection
        stream = transport.name_of(destination)
        await transport.publish(message_to(destination, "first", key="a"))
        # A consumer takes the first entry and dies without acknowledging it.
        assert await client.xreadgroup(group, "dead", {stream: ">"}, count=1)
        await transport.publish(message_to(destination, "second", key="b"))
        async with transport.subscribe(destination, group) as subscription:
            deliveries = aiter(subscription)
            first = await asyncio.wait_for(anext(deliveries), 10)
            assert first.message.message_id == "first"  # claimed after claim_after (0.5 s)
            # Held unacknowledged: nothing later goes out meanwhile (a few claim periods).
            later = asyncio.ensure_future(anext(deliveries))
            done, _ = await asyncio.wait({later}, timeout=1.5)
            assert not done, "a later entry went out while the claimed one was in flight"
            await first.ack()
            second = await asyncio.wait_for(later, 10)
            assert second.message.message_id == "second"
            await second.ack()


def message_to(destination: str, message_id: str, *, key: str) -> TransportMessage:
    return TransportMessage(message_id, destination, "T", b"{}", partition_key=key)


@pytest.mark.kafka
class TestKafkaTransport(TransportContract):
    """On Tansu (``make kafka``): its memory storage has no idempotent producers."""

    @pytest_asyncio.fixture
    async def transport_factory(self) -> AsyncIterator[Transport]:
        # A short session: a group's first member leaves without a LeaveGroup (Tansu numbers
        # the first generation 0, and aiokafka only leaves from generation 1 on), so the next
        # subscription of the group waits until the broker evicts it (docs/brokers.md).
        transport = KafkaTransport(
            KAFKA_SERVERS, idempotent=False, session_timeout=3.0, connect_timeout=30.0
        )
        yield transport
        await transport.close()  # memory storage: topics go when the broker stops

    async def refusing_destination(self, transport: Transport) -> str:
        del transport
        return f"not a topic {uuid.uuid4().hex[:8]}!"  # spaces and "!": an invalid topic name


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: RabbitTransport(RABBIT_URL), marks=pytest.mark.rabbit, id="rabbit"),
        pytest.param(lambda: NatsTransport(NATS_URL), marks=pytest.mark.nats, id="nats"),
        pytest.param(lambda: RedisTransport(REDIS_URL), marks=pytest.mark.redis, id="redis"),
    ],
)
async def test_a_closed_subscription_leaves_no_subscriber_on_the_broker(
    make: Callable[[], RabbitTransport | NatsTransport | RedisTransport],
) -> None:
    """A subscription's FastStream subscribers are taken off the broker when it ends: they
    were left registered (FastStream keeps them in a ``WeakSet``, which the transport did not
    recognise), so the broker's ``stop()`` stopped each again and a broker its owner started
    again would have started them, consuming for a subscription long closed."""
    transport = make()
    destination = f"closed-{uuid.uuid4().hex[:8]}"
    try:
        for prefetch in (1, 2, 1):
            async with transport.subscribe(destination, "g", prefetch=prefetch):
                assert transport.broker.subscribers  # its reader (and claimer) while open
            assert transport.broker.subscribers == []
    finally:
        await transport.close()
        await delete_declared(transport)
