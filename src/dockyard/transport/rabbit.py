"""``RabbitTransport``: the ``Transport`` port over RabbitMQ, through FastStream.

Topology: each destination is a durable fanout exchange; each consumer group is a durable
quorum queue ``"{destination}.{group}"`` bound to it (competing consumers share the queue).
Publishing waits for the publisher confirm; an unroutable message (no group declared yet)
is refused, so the relay retries it instead of losing it. Quorum queues count redeliveries
(``x-delivery-count``), which gives ``Delivery.attempt`` across crashes.

``publish_many`` writes a whole wave in one socket write on a confirm channel of its own and
then awaits the confirms together (aio-pika and FastStream publish one message per write and
wait for the write to drain under the channel's lock, which caps a relay at a few thousand
messages a second). It numbers the publishes and fills aiormq's confirmation tables as
``basic_publish`` does, so acks, nacks, returns (unroutable) and a closed channel reach every
message's outcome; but a wave has one future in aiormq's future store, not one per message
(``WaveOutcomes``), and its frames are encoded by ``_amqp_frames`` (pamqp's bytes): together
that cut the relay's CPU time per message on RabbitMQ by a third (docs/brokers.md).

That fast path borrows aiormq's private channel state, so it is gated (``_borrowed``,
docs/design/borrowed-internals.md): it is taken only on an aiormq release it was written
against and on a channel that has the attributes it uses, checked on the first batch. Else
``publish_many`` publishes each message through FastStream's ``publish`` (one confirmed
publish per message, as ``publish`` does) and says so once in a warning. Either way a
confirm is awaited at most ``publish_timeout`` seconds; silence is the broker's failure
(``TransportUnavailableError``: the relay pauses without counting an attempt).

Connecting is bounded too (``connect_timeout``): a node that accepts TCP and never sends the
AMQP greeting (seen: a wedged node) would otherwise hold every connect for ever. aio-pika
bounds each handshake, the first and every reconnect (the broker this transport builds passes
it ``timeout``), and the transport bounds the whole start (handshake, FastStream's channel and
reply queue). A start given up or cancelled leaves aio-pika's robust connection behind, whose
reconnect task goes on for ever (it survives the cancellation): the transport closes it. It
learns of the connection through aio-pika's ``connection_class`` factory, set in FastStream's
private ``broker._connection_kwargs`` (gated like the fast path; without it a cancelled
connect may leave that task behind, said once in a warning).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from dockyard.exceptions import MissingExtraError

try:
    import aiormq
    from aio_pika import RobustConnection
    from aiormq.abc import ChannelFrame, DeliveredMessage
    from faststream.rabbit import (
        Channel,
        ExchangeType,
        RabbitBroker,
        RabbitExchange,
        RabbitQueue,
    )
    from faststream.rabbit.schemas.queue import QueueType
    from pamqp.commands import Basic
    from pamqp.common import FieldTable
    from pamqp.frame import marshal as marshal_frame
    from pamqp.header import ContentHeader
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingExtraError("dockyard.transport.rabbit", "faststream[rabbit]", "rabbit") from exc

from faststream.message import StreamMessage

from dockyard.exceptions import BrokerPublishError, TransportUnavailableError
from dockyard.transport._amqp_frames import FRAME_BODY, content_header_frame, frame
from dockyard.transport._batch import UNSETTLED, WaveOutcomes
from dockyard.transport._borrowed import (
    Check,
    chosen,
    release,
    release_problem,
    shape_problem,
)
from dockyard.transport._faststream import (
    MANUAL,
    FastStreamTransport,
    encode_headers,
    outcome_of,
)
from dockyard.transport._port import TransportMessage

__all__ = ["RabbitTransport"]


class RabbitTransport(FastStreamTransport):
    """A ``Transport`` over RabbitMQ.

    Args:
        url: The AMQP URL, e.g. ``"amqp://guest:guest@localhost:5672/"``.
        broker: A ``faststream.rabbit.RabbitBroker`` to use instead (shares its connection).
        publish_timeout: Seconds a publish (or a batch's wave) waits for RabbitMQ's confirm
            before raising ``TransportUnavailableError`` (the relay then pauses without
            counting an attempt). RabbitMQ confirms in milliseconds; lower it to notice a
            broker that stopped answering sooner.
        connect_timeout: Seconds connecting may take (the AMQP handshake, each reconnect's
            too, and FastStream's first channel) before it raises ``TransportUnavailableError``
            (the relay pauses, a consumer is degraded and retries with backoff): a node that
            accepts connections and never answers is an outage, not a hang. With a
            ``broker`` of your own, pass ``RabbitBroker(url, timeout=...)`` as well to bound
            its reconnects.

    Example:
        ```text
        transport = RabbitTransport("amqp://guest:guest@localhost:5672/")
        OutboxModule.register(transport=transport)
        ConsumerModule.register(endpoints=[listen("orders", group="billing")])
        ```
    """

    scheme = "rabbit"
    messaging_system = "rabbitmq"
    """``messaging.system`` in telemetry (OpenTelemetry semantic conventions)."""
    _testing_module = "faststream.rabbit.testing"
    _left_behind = "aio-pika's robust connection, reconnecting in the background"

    def __init__(
        self,
        url: str = "amqp://guest:guest@localhost:5672/",
        *,
        broker: RabbitBroker | None = None,
        publish_timeout: float = 10.0,
        connect_timeout: float = 10.0,
    ) -> None:
        if publish_timeout <= 0:
            msg = f"RabbitTransport.publish_timeout must be > 0, got {publish_timeout}"
            raise ValueError(msg)
        if broker is None:  # aio-pika bounds each handshake (and reconnect) by `timeout`
            broker = RabbitBroker(url, logger=None, timeout=connect_timeout)
        super().__init__(broker, connect_timeout=connect_timeout)
        self.publish_timeout = publish_timeout
        self._made: list[RobustConnection] | None = None
        """The connections aio-pika made for the connect under way (to close if it fails);
        ``None`` between connects (the broker's owner may reconnect it from scratch)."""
        self._declared: set[tuple[str, str]] = set()
        self._exchanges: set[str] = set()
        self._batch_channel: Any = None  # aio-pika channel with confirms, for publish_many
        self._publish_frames: dict[tuple[str, int], bytes] = {}
        self._fast_waves: bool | None = None
        """Whether ``publish_many`` fills aiormq's confirmation table (decided once)."""

    async def _start_broker(self) -> None:
        self._made = []
        try:
            await super()._start_broker()
        finally:
            self._made = None  # the broker's now, or closed by _abandon

    def _hook_connects(self) -> str | None:
        problem = _broker_problem(self.broker)
        if problem is None:  # aio-pika makes its connections through _new_connection
            self.broker._connection_kwargs["connection_class"] = self._new_connection  # noqa: SLF001
        return problem

    def _new_connection(self, url: Any, **kwargs: Any) -> RobustConnection:
        """What aio-pika's ``connect_robust`` calls to make a connection (``connection_class``)."""
        connection = RobustConnection(url, **kwargs)
        if self._made is not None:
            self._made.append(connection)
        return connection

    async def _abandon(self) -> None:
        # Closing a robust connection ends its reconnect task, which a cancelled connect
        # leaves running (aio-pika logs "cancelled, reconnecting" and goes on).
        made, self._made = self._made or [], []
        for connection in made:
            await self._quietly(connection.close())
        await super()._abandon()

    def _exchange(self, name: str) -> RabbitExchange:
        return RabbitExchange(name, type=ExchangeType.FANOUT, durable=True)

    def _queue(self, name: str, group: str) -> RabbitQueue:
        return RabbitQueue(f"{name}.{group}", queue_type=QueueType.QUORUM, durable=True)

    async def _ensure_exchange(self, name: str) -> None:
        if name not in self._exchanges:  # publishing to a missing exchange closes the channel
            await self.broker.declare_exchange(self._exchange(name))
            self._exchanges.add(name)

    async def _publish(self, name: str, message: TransportMessage, headers: dict[str, str]) -> None:
        try:
            # FastStream's publish takes a timeout but does not pass it on (0.7): bound it here.
            # A cancelled aiormq publish either never went out or ignores its late confirm.
            async with asyncio.timeout(self.publish_timeout):
                await self._ensure_exchange(name)
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
        except TimeoutError as exc:
            raise self._no_confirm() from exc
        if confirm is None or type(confirm).__name__ == "Ack":
            return
        reason = (
            "no consumer group has declared this destination, so no queue would store it"
            if type(confirm).__name__ == "DeliveredMessage"  # returned as unroutable
            else f"the broker answered {type(confirm).__name__} instead of a confirm"
        )
        raise BrokerPublishError(self.scheme, message.destination, reason)

    async def _publish_wave(
        self, messages: Sequence[TransportMessage]
    ) -> Sequence[BaseException | None]:
        if self.in_test_broker():  # FastStream's publish: a TestRabbitBroker has no channel
            return await super()._publish_wave(messages)
        names = [self.name_of(m.destination) for m in messages]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_timeout
        try:
            async with asyncio.timeout_at(deadline):
                fast = await self._fast_path()
                if fast:
                    for name in dict.fromkeys(names):
                        await self._ensure_exchange(name)
                    channel = await self._confirm_channel()
        except TimeoutError:  # nothing was published: the node does not answer
            return [self._no_confirm()] * len(messages)
        if not fast:  # FastStream's publish, each confirmed and bounded
            return await super()._publish_wave(messages)
        wave = WaveOutcomes(len(messages), channel.create_future())  # in aiormq's store
        tags: list[int] = []
        try:
            async with asyncio.timeout_at(deadline):
                await self._write_wave(channel, wave, names, messages, tags)
        except TimeoutError:
            wave.future.cancel()  # nothing was sent (the write was undone): no confirm comes
            return [self._no_confirm()] * len(messages)
        except BaseException:
            wave.future.cancel()
            raise
        try:
            await asyncio.wait((wave.future,), timeout=max(0.0, deadline - loop.time()))
            results = _settled(wave, self._no_confirm())
        finally:  # what aiormq does with a done callback per message, once for the wave
            by_id = channel.message_id_delivery_tag
            for message, tag in zip(messages, tags, strict=False):
                if by_id.get(message.message_id) == tag:
                    del by_id[message.message_id]
        return [self._refusal(m, result) for m, result in zip(messages, results, strict=True)]

    async def _write_wave(
        self,
        channel: Any,
        wave: WaveOutcomes,
        names: list[str],
        messages: Sequence[TransportMessage],
        tags: list[int],
    ) -> None:
        """What aiormq's ``basic_publish`` does per message, for the whole wave under one lock
        and in one write: number the publishes, register their confirms (and the message ids,
        which is how aiormq matches a returned message to its confirm). The frames are
        encoded by ``_amqp_frames`` (pamqp's bytes, a fraction of its CPU time). A write
        that does not happen (cancelled, timed out) is undone, as ``basic_publish`` undoes it.
        """
        async with channel.lock:
            number = channel.number
            size = channel.max_content_size
            first = channel.delivery_tag
            frames: list[bytes] = []
            sent = False
            try:
                for index, (name, message) in enumerate(zip(names, messages, strict=True)):
                    headers = encode_headers(message)
                    channel.delivery_tag += 1
                    tag = channel.delivery_tag
                    channel.confirmations[tag] = _Confirm(wave, index)
                    channel.message_id_delivery_tag[message.message_id] = tag
                    tags.append(tag)
                    body = message.payload
                    frames.append(self._publish_frame(name, number))
                    header = content_header_frame(
                        number,
                        len(body),
                        headers,
                        message.message_id,
                        headers.get("correlation-id"),
                        message.type_name,
                    )
                    frames.append(header or self._pamqp_header(message, headers, number))
                    frames.extend(
                        frame(FRAME_BODY, number, body[i : i + size])
                        for i in range(0, len(body), size)
                    )
                await channel.write_queue.put(ChannelFrame(b"".join(frames), should_close=False))
                sent = True
            finally:
                if not sent:  # the broker never saw these numbers: reuse them, under the lock
                    channel.delivery_tag = first
                    by_id = channel.message_id_delivery_tag
                    for message, tag in zip(messages, tags, strict=False):
                        channel.confirmations.pop(tag, None)
                        if by_id.get(message.message_id) == tag:
                            del by_id[message.message_id]
                    tags.clear()

    def _no_confirm(self) -> TransportUnavailableError:
        # RabbitMQ confirms a stored message in milliseconds; silence is the broker's (or the
        # connection's) failure, not the message's.
        reason = f"no publisher confirm within {self.publish_timeout:g}s"
        return TransportUnavailableError(self.scheme, reason)

    async def _fast_path(self) -> bool:
        """Whether ``publish_many`` may fill aiormq's confirmation table (asked once)."""
        if self._fast_waves is None:
            channel = await self._confirm_channel()
            self._fast_waves = chosen(self, _FAST_PATH, _aiormq_problem(channel))
            if not self._fast_waves:
                await self._close_batch_channel()
        return self._fast_waves

    def _publish_frame(self, exchange: str, channel: int) -> bytes:
        """The ``basic.publish`` method frame (mandatory, no routing key): one per exchange."""
        found = self._publish_frames.get((exchange, channel))
        if found is None:
            method = Basic.Publish(exchange=exchange, routing_key="", mandatory=True)
            found = self._publish_frames[exchange, channel] = marshal_frame(method, channel)
        return found

    @staticmethod
    def _pamqp_header(message: TransportMessage, headers: dict[str, str], channel: int) -> bytes:
        """The content header as pamqp encodes it (what ``content_header_frame`` declined)."""
        properties = Basic.Properties(
            headers=FieldTable(headers),
            message_id=message.message_id,
            correlation_id=headers.get("correlation-id"),
            message_type=message.type_name,
            delivery_mode=2,  # persistent
        )
        header = ContentHeader(properties=properties, body_size=len(message.payload))
        return marshal_frame(header, channel)

    def _refusal(self, message: TransportMessage, result: object) -> BaseException | None:
        if isinstance(result, Basic.Ack):
            return None
        if isinstance(result, Exception) and self._unreachable(result):
            return result  # not a refusal: the base reports the broker unavailable
        if isinstance(result, DeliveredMessage):
            reason = "no consumer group has declared this destination, so no queue would store it"
        elif isinstance(result, aiormq.exceptions.AMQPError | ConnectionError):
            reason = f"{type(result).__name__}: {result}"
        else:
            outcome = outcome_of(result)  # a cancellation goes on up
            reason = f"the broker answered {type(outcome or result).__name__} instead of a confirm"
        error = BrokerPublishError(self.scheme, message.destination, reason)
        if isinstance(result, BaseException):
            error.__cause__ = result
        return error

    def _unreachable(self, error: BaseException) -> bool:
        # A channel that cannot be used (its connection is gone, or reconnecting) is the
        # connection's failure; a channel the broker closed for a message (406 precondition
        # failed: too large, 404 no exchange) is a refusal. While aio-pika reconnects, aiormq
        # raises a bare RuntimeError ("<Connection …> closed") for a new channel.
        if super()._unreachable(error):
            return True
        if isinstance(error, aiormq.exceptions.ChannelInvalidStateError):
            return True
        return isinstance(error, RuntimeError) and (
            str(error).endswith(" closed") or self._connection_down()
        )

    def _connection_down(self) -> bool:
        """Whether the broker's (robust) connection has no open AMQP connection under it."""
        connection = getattr(self.broker, "_connection", None)
        if connection is None or connection.is_closed:
            return True
        underlay = getattr(connection, "transport", None)
        return underlay is None or bool(underlay.connection.is_closed)

    async def _confirm_channel(self) -> Any:
        channel = self._batch_channel
        if channel is None or channel.is_closed:
            connection = self.broker._connection  # noqa: SLF001 - the broker's connection
            channel = self._batch_channel = await connection.channel(publisher_confirms=True)
        return await channel.get_underlay_channel()

    async def _close_batch_channel(self) -> None:
        channel, self._batch_channel = self._batch_channel, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):  # the connection is gone: nothing to close
                await channel.close()

    async def close(self) -> None:
        await self._close_batch_channel()
        await super().close()

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

    async def backlog(self, destination: str, group: str, /) -> int | None:
        """The group's queue depth (ready messages), from a passive declare on a channel of
        its own; ``None`` when not connected, the queue does not exist or the node does not
        answer within ``connect_timeout``."""
        connection = getattr(self.broker, "_connection", None)  # the borrowed aio-pika one
        if connection is None:
            return None
        name = self._queue(self.name_of(destination), group).name
        return await self._count_or_none(self._ready(connection, name), f"counting {name!r}")

    async def _ready(self, connection: Any, name: str) -> int | None:
        channel = await connection.channel()
        try:
            queue = await channel.declare_queue(name, passive=True)
        except Exception:  # noqa: BLE001 - no such queue (the channel is closed by it)
            return None
        else:
            count = queue.declaration_result.message_count
            return count if isinstance(count, int) else None
        finally:
            if not channel.is_closed:
                await self._quietly(channel.close())

    def _broker_id(self, raw: StreamMessage[Any]) -> str | None:
        # The AMQP `message_id` property, when the sender set one (FastStream makes one up
        # when it is absent, which a redelivery would not keep).
        message_id = getattr(raw.raw_message, "message_id", None)
        return message_id if isinstance(message_id, str) and message_id else None

    async def _first_attempt(self, raw: StreamMessage[Any]) -> int:
        count = (raw.raw_message.headers or {}).get("x-delivery-count")
        if isinstance(count, int):
            return count + 1
        return 2 if raw.raw_message.redelivered else 1


def _settled(wave: WaveOutcomes, silence: BaseException) -> list[Any]:
    """Each message's outcome: aiormq's ack frame, the returned message, or an exception.

    The wave's future is in aiormq's future store: when the channel closes, aiormq rejects
    it, and every message not settled by then failed with the channel. A wave still
    unsettled (its deadline passed) is cancelled, so confirms arriving later are ignored;
    the messages without one get ``silence``.
    """
    future = wave.future
    if not future.done():
        future.cancel()
    elif not future.cancelled() and (closed := future.exception()) is not None:
        silence = closed  # the channel closed: the rest failed with it
    return [silence if o is UNSETTLED else o for o in wave.outcomes]


_FAST_PATH = "its own writes into aiormq's confirmation table"
_AIORMQ_RELEASES = ((7, 2), (8,))
"""The aiormq releases the fast path was written against (and tested on: 7.2.4)."""


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_CHANNEL: dict[str, Check] = {
    "publisher_confirms": lambda value: value is True,
    "lock": lambda value: hasattr(value, "__aenter__") and hasattr(value, "__aexit__"),
    "number": _int,
    "max_content_size": _int,
    "delivery_tag": _int,
    "confirmations": lambda value: isinstance(value, dict),
    "message_id_delivery_tag": lambda value: isinstance(value, dict),
    "write_queue": lambda value: isinstance(value, asyncio.Queue),
    "create_future": callable,
    "_confirm_delivery": callable,  # reads the table: done(), cancelled(), set_result()
    "_on_return_frame": callable,  # matches a returned message through message ids
}
"""What ``_write_wave`` and ``_Confirm`` use of an aiormq channel, and how it must look."""


_CLEAN_UP = "the connect clean-up"
_FASTSTREAM_RELEASES = ((0, 6), (0, 8))
"""The FastStream releases whose ``broker._connection_kwargs`` go to ``connect_robust``."""
_BROKER: dict[str, Check] = {
    "_connection_kwargs": lambda value: isinstance(value, dict) and "connection_class" not in value,
}
"""What ``_track_connections`` uses of a FastStream ``RabbitBroker``, and how it must look."""


def _broker_problem(broker: object) -> str | None:
    """Why the transport cannot learn of the connections ``broker`` makes; ``None`` if it can."""
    installed = release("faststream")
    problem = release_problem("faststream", installed, *_FASTSTREAM_RELEASES, user=_CLEAN_UP)
    return problem if problem is not None else shape_problem(broker, _BROKER)


def _aiormq_problem(channel: object) -> str | None:
    """Why the fast path must not use ``channel`` (an aiormq channel); ``None`` if it may."""
    problem = release_problem("aiormq", release("aiormq"), *_AIORMQ_RELEASES)
    if problem is None:
        problem = shape_problem(channel, _CHANNEL)
    fields = getattr(ChannelFrame, "__dataclass_fields__", {})  # a dataclass's, by name
    if problem is None and not {"payload", "should_close"} <= fields.keys():
        problem = "aiormq's ChannelFrame is not a dataclass of `payload` and `should_close`"
    return problem


class _Confirm:
    """One message's slot in aiormq's confirmation table: the part of a future aiormq uses
    there (``done``, ``cancelled``, ``set_result``, ``set_exception``)."""

    __slots__ = ("_index", "_wave")

    def __init__(self, wave: WaveOutcomes, index: int) -> None:
        self._wave = wave
        self._index = index

    def done(self) -> bool:
        wave = self._wave
        return wave.future.done() or wave.outcomes[self._index] is not UNSETTLED

    def cancelled(self) -> bool:
        return self._wave.future.cancelled()

    def set_result(self, result: object) -> None:
        self._wave.settle(self._index, result)

    def set_exception(self, exception: BaseException) -> None:
        self._wave.settle(self._index, exception)
