"""The skeleton every broker transport shares: envelope headers, subscriptions, settlement.

A broker transport (``rabbit``, ``nats``, ``redis``, ``kafka``) subclasses
``FastStreamTransport`` and fills in four broker-specific steps: ``_publish`` (with the
broker's confirm), ``_declare`` (the group's durable queue / consumer / group), ``_subscriber``
(a FastStream subscriber with manual acknowledgement) and ``_first_attempt`` (what the broker
knows about redeliveries). Everything else is here, once:

* The envelope travels in headers (``message-id``, ``message-type``, ``schema-version``,
  ``partition-key``, plus the message's own headers: correlation and causation ids, trace
  context). The payload is the body, untouched.
* A subscription registers one FastStream handler that turns each broker message into a
  ``Delivery`` and waits until the consumer settles it, so the broker's own flow control
  (prefetch, pull batches, partition order) is the back-pressure.
* Per-key order inside one subscription: a message waits while an earlier one of its key is
  unsettled. ``nack(delay=...)`` keeps the message (and its key) here and hands it out again
  after the delay with ``attempt`` increased, so a retry never lets a later message of its key
  overtake it. If the process dies meanwhile the broker redelivers it: nothing is lost.
* Leaving the subscription returns every unsettled message to the broker.
* A broker that cannot be reached (connection lost or refused, no answer in time) is reported
  as ``TransportUnavailableError``, a message the broker refused as ``BrokerPublishError``:
  the relay pauses for the first and counts an attempt for the second. Each broker says which
  of its client's errors mean "unreachable" in ``_unreachable``.
* Connecting is bounded by ``connect_timeout``: a server that accepts connections and never
  answers (a wedged node) is unavailable after that long, not a connect that waits for ever.
  Whatever the client left of a connect given up (or cancelled) is closed (``_abandon``), so no
  reconnect loop goes on in the background.
* ``publish_many`` cuts a batch into waves (``_batch.publish_in_waves``: one message per key
  per wave) and publishes each wave at once with ``_publish_wave``, awaiting its confirms
  together; a broker overrides ``_publish_wave`` with its own pipelining.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, ClassVar, TypeVar

from faststream import AckPolicy, Context
from faststream.message import StreamMessage

from dockyard.exceptions import DockyardError, TransportClosedError, TransportUnavailableError
from dockyard.transport._batch import publish_in_waves
from dockyard.transport._port import CONTENT_TYPE, NO_MESSAGE_ID, Delivery, TransportMessage

__all__ = [
    "MESSAGE_ID",
    "MESSAGE_TYPE",
    "PARTITION_KEY",
    "SCHEMA_VERSION",
    "FastStreamTransport",
    "Receiver",
    "decode_headers",
    "encode_headers",
    "outcome_of",
]

logger = logging.getLogger("dockyard.transport")
T = TypeVar("T")

MESSAGE_ID = "message-id"
MESSAGE_TYPE = "message-type"
SCHEMA_VERSION = "schema-version"
PARTITION_KEY = "partition-key"
_ENVELOPE = frozenset({MESSAGE_ID, MESSAGE_TYPE, SCHEMA_VERSION, PARTITION_KEY})
_FASTSTREAM_HEADERS = frozenset({"correlation_id", "reply_to"})
"""Headers FastStream adds on some brokers; they are not the message's. It adds
``content-type`` too, empty for bytes (dropped on arrival); dockyard's own, the codec's media
type (``CONTENT_TYPE``), is sent after it and wins."""

FastStreamMessage = Annotated[StreamMessage[Any], Context("message")]


async def _body_as_is(message: StreamMessage[Any]) -> Any:
    """The subscribers' FastStream decoder: none. The handlers read the raw body and decode it
    with the message type's codec; FastStream's own decoder parses a body whose content type
    is JSON, and on a compressed one (gzip bytes) it raised before the handler was called: the
    message was never handed out and, unacknowledged, held its group (NATS, Redis, Kafka)."""
    return message.body


def encode_headers(message: TransportMessage) -> dict[str, str]:
    """The broker headers of ``message``: its own headers plus the envelope fields."""
    headers = dict(message.headers)
    headers[MESSAGE_ID] = message.message_id
    headers[MESSAGE_TYPE] = message.type_name
    headers[SCHEMA_VERSION] = str(message.schema_version)
    if message.partition_key is not None:
        headers[PARTITION_KEY] = message.partition_key
    return headers


def decode_headers(
    destination: str, headers: Mapping[str, Any], body: bytes, broker_id: str | None
) -> TransportMessage:
    """Rebuild a ``TransportMessage`` from broker headers, whatever arrived.

    A message not sent by dockyard still becomes a delivery (so the consumer can dead-letter
    it with the reason): a missing id falls back to ``broker_id`` (an id the broker keeps
    across redeliveries), a missing type is ``""`` and a schema version that is not a number
    is ``0``. With neither id, the message gets a made-up one and the ``NO_MESSAGE_ID`` header.
    """
    text = {
        str(k): v if isinstance(v, str) else _text(v)
        for k, v in headers.items()
        if k not in _FASTSTREAM_HEADERS and not str(k).startswith("Nats-")
    }
    if not text.get(CONTENT_TYPE, True):
        del text[CONTENT_TYPE]
    version = text.get(SCHEMA_VERSION, "1")
    message_id = text.get(MESSAGE_ID) or broker_id
    if not message_id:
        message_id = f"unidentified-{uuid.uuid4().hex}"
        text[NO_MESSAGE_ID] = "1"
    else:
        text.pop(NO_MESSAGE_ID, None)  # only ever set on arrival, never taken from a sender
    return TransportMessage(
        message_id=message_id,
        destination=destination,
        type_name=text.get(MESSAGE_TYPE, ""),
        payload=body,
        schema_version=int(version) if version.isdigit() else 0,
        headers={k: v for k, v in text.items() if k not in _ENVELOPE},
        partition_key=text.get(PARTITION_KEY),
    )


def _text(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


_ACK, _NACK, _RETURN = "ack", "nack", "return"


class _Delivery(Delivery):
    __slots__ = ("_attempt", "_delay", "_message", "_settled")

    def __init__(self, message: TransportMessage, attempt: int) -> None:
        self._message = message
        self._attempt = attempt
        self._settled: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._delay = 0.0

    @property
    def message(self) -> TransportMessage:
        return self._message

    @property
    def attempt(self) -> int:
        return self._attempt

    async def ack(self) -> None:
        if not self._settled.done():
            self._settled.set_result(_ACK)

    async def nack(self, *, delay: float = 0.0) -> None:
        if not self._settled.done():
            self._delay = max(0.0, delay)
            self._settled.set_result(_NACK)

    def give_back(self) -> None:
        if not self._settled.done():
            self._settled.set_result(_RETURN)

    def __repr__(self) -> str:
        return f"<Delivery {self._message.message_id} attempt={self._attempt}>"


class _Receiver:
    """What a FastStream handler does with each broker message, for a subscription or a
    ``Receiver``: rebuild the ``TransportMessage``, keep per-key order, number the attempts,
    and settle with the broker (ack, give back, or hold it and hand it out again after a
    retry's delay). Subclasses say how a delivery is handed out (``_hand_out``)."""

    __slots__ = ("_closed", "_key_locks", "_transport", "destination")

    def __init__(self, transport: FastStreamTransport, destination: str) -> None:
        self._transport = transport
        self.destination = destination
        self._key_locks: dict[str, asyncio.Lock] = {}
        self._closed = asyncio.Event()

    async def on_message(self, raw: FastStreamMessage) -> None:
        """The FastStream handler: hand the message out until it is acked or given back."""
        transport = self._transport
        message = decode_headers(
            self.destination,
            raw.headers,
            raw.body,
            transport._broker_id(raw),  # noqa: SLF001 - the subclass's hook
        )
        key = message.partition_key
        lock = None
        if key is not None:
            # Earlier messages of the group held by other consumers first (a dead one's too).
            await transport._wait_turn(raw, self._closed)  # noqa: SLF001 - the subclass's hook
            lock = self._key_locks.get(key)
            if lock is None:
                lock = self._key_locks[key] = asyncio.Lock()
        async with lock if lock is not None else contextlib.nullcontext():
            attempt = await transport._first_attempt(raw)  # noqa: SLF001 - the subclass's hook
            try:
                while True:
                    try:
                        outcome, delay = await self._hand_out(message, attempt)
                    except Exception:  # the handler's bug or outage: the broker has it again
                        await transport._give_back(raw)  # noqa: SLF001
                        raise
                    if outcome == _ACK:
                        await transport._ack(raw)  # noqa: SLF001
                        return
                    if outcome == _RETURN or not await self._sleep(delay):
                        await transport._give_back(raw)  # noqa: SLF001
                        return
                    attempt += 1
            finally:
                if lock is not None and not lock._waiters:  # noqa: SLF001 - no one queued
                    self._key_locks.pop(key or "", None)

    async def _hand_out(self, message: TransportMessage, attempt: int) -> tuple[str, float]:
        """Hand a delivery of ``message`` out; its settlement and a retry's delay."""
        raise NotImplementedError

    async def _sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` (a retry's delay); ``False`` if closed meanwhile."""
        if seconds <= 0:
            return not self._closed.is_set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), seconds)
        return not self._closed.is_set()


class _Subscription(_Receiver):
    """Deliveries of one subscribe() call; the FastStream handler feeds them in."""

    __slots__ = ("_queue", "_unsettled")

    def __init__(self, transport: FastStreamTransport, destination: str) -> None:
        super().__init__(transport, destination)
        self._queue: asyncio.Queue[_Delivery | None] = asyncio.Queue()
        self._unsettled: set[_Delivery] = set()

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        while not self._closed.is_set():
            self._transport.check_open()
            delivery = await self._queue.get()
            if delivery is None:
                return
            yield delivery

    async def _hand_out(self, message: TransportMessage, attempt: int) -> tuple[str, float]:
        if self._closed.is_set():
            return _RETURN, 0.0
        delivery = _Delivery(message, attempt)
        self._unsettled.add(delivery)
        try:
            self._queue.put_nowait(delivery)
            outcome = await delivery._settled  # noqa: SLF001 - our own delivery
        finally:
            self._unsettled.discard(delivery)
        return outcome, delivery._delay  # noqa: SLF001

    def close(self) -> None:
        self._closed.set()
        for delivery in list(self._unsettled):
            delivery.give_back()
        while not self._queue.empty():  # handed out but never taken by the consumer
            queued = self._queue.get_nowait()
            if queued is not None:
                queued.give_back()
        self._queue.put_nowait(None)


class Receiver(_Receiver):
    """A group's FastStream subscribers on a broker someone else starts (a FastStream app),
    each message handed straight to ``handle`` as a ``Delivery`` (``FastStreamTransport.receive``).

    ``handle`` settles the delivery (``ack()``, ``nack(delay=...)``); a delivery it leaves
    unsettled goes back to the broker, and so does one whose ``handle`` raised (the error goes
    on to FastStream). A ``nack`` with a delay holds the message, and its key, here and hands
    it out again after the delay with ``attempt`` increased, as a subscription does.
    """

    __slots__ = ("_handle", "subscribers")

    def __init__(
        self,
        transport: FastStreamTransport,
        destination: str,
        handle: Callable[[Delivery], Awaitable[object]],
        subscribers: Sequence[Any],
    ) -> None:
        super().__init__(transport, destination)
        self._handle = handle
        self.subscribers = tuple(subscribers)
        """The FastStream subscribers, registered on the transport's broker."""
        for subscriber in self.subscribers:
            subscriber(self.on_message, decoder=_body_as_is)

    async def _hand_out(self, message: TransportMessage, attempt: int) -> tuple[str, float]:
        delivery = _Delivery(message, attempt)
        await self._handle(delivery)
        settled = delivery._settled  # noqa: SLF001 - our own delivery
        if not settled.done():
            return _RETURN, 0.0
        return settled.result(), delivery._delay  # noqa: SLF001

    def open(self) -> None:
        """Wait out retry delays again (the broker's owner started it again)."""
        self._closed.clear()

    def close(self) -> None:
        """Stop waiting out retry delays: held messages go back to the broker at once."""
        self._closed.set()


class FastStreamTransport(abc.ABC):
    """Base of the broker transports: one FastStream broker, the ``Transport`` port on top.

    Subclasses set ``scheme`` and ``extra`` and implement the broker-specific steps. A
    destination may carry the scheme (``"rabbit://orders"`` and ``"orders"`` are the same).
    """

    scheme: ClassVar[str]
    messaging_system: ClassVar[str]
    """The URL-like prefix of destinations this transport accepts, e.g. ``"rabbit"``."""
    _testing_module: ClassVar[str]
    """FastStream's module of the broker's ``TestBroker``, e.g. ``"faststream.rabbit.testing"``."""
    _left_behind: ClassVar[str] = "the client's connection"
    """What the client leaves of a connect cut short when ``_hook_connects`` cannot help."""

    def __init__(self, broker: Any, *, connect_timeout: float = 10.0) -> None:
        if connect_timeout <= 0:
            msg = f"{type(self).__name__}.connect_timeout must be > 0, got {connect_timeout}"
            raise ValueError(msg)
        self.broker = broker
        """The FastStream broker underneath (to share its connection, or for tests)."""
        self.connect_timeout = connect_timeout
        """Seconds connecting (to the first answer the transport needs) may take."""
        self._hooked: bool | None = None
        """Whether a connect given up leaves nothing behind (``_hook_connects``, asked once)."""
        self._connected = False
        self._owns_broker = True
        self._connecting = asyncio.Lock()
        self._closed = False
        self._subscriptions: set[_Subscription] = set()
        self.published = 0
        """How many messages this transport published (for tests and benchmarks)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    # -- the port ------------------------------------------------------------------------

    async def publish(self, message: TransportMessage, /) -> None:
        """Publish ``message``; return once the broker confirmed it.

        Raises:
            BrokerPublishError: The broker refused it.
            TransportUnavailableError: The broker could not be reached.
        """
        try:
            await self._ensure_connected()
            name = self.name_of(message.destination)
            await self._publish(name, message, encode_headers(message))
        except Exception as exc:
            raise self._translated(exc) from exc
        self.published += 1

    async def publish_many(self, messages: Sequence[TransportMessage], /) -> None:
        """Publish ``messages``; return once the broker confirmed every one.

        Each wave (at most one message per partition key) is published at once and its
        confirms awaited together. A failed message holds back the later messages of its key.

        Raises:
            BatchPublishError: Names the messages the broker did not accept and those held
                back; every other message was confirmed.
        """
        try:
            await self._ensure_connected()
            await publish_in_waves(self.scheme, messages, self._counted_wave)
        except Exception as exc:
            raise self._translated(exc) from exc

    async def _counted_wave(
        self, messages: Sequence[TransportMessage]
    ) -> Sequence[BaseException | None]:
        outcomes = [
            None if outcome is None else self._translated(outcome)
            for outcome in await self._publish_wave(messages)
        ]
        self.published += sum(outcome is None for outcome in outcomes)
        return outcomes

    def _translated(self, error: BaseException) -> BaseException:
        """``error``, or ``TransportUnavailableError`` if it says the broker is unreachable."""
        if isinstance(error, DockyardError) or not self._unreachable(error):
            return error
        unavailable = TransportUnavailableError(self.scheme, f"{type(error).__name__}: {error}")
        unavailable.__cause__ = error
        return unavailable

    def _unreachable(self, error: BaseException) -> bool:
        """Whether the client's ``error`` means the broker could not be reached (connection
        lost or refused, no answer in time) rather than that it refused the message."""
        return isinstance(error, ConnectionError | TimeoutError | OSError)

    async def declare(self, destination: str, group: str) -> None:
        """Create ``group``'s durable queue / consumer on ``destination`` (idempotent).

        Raises:
            TransportUnavailableError: The broker could not be reached.
        """
        try:
            await self._ensure_connected()
            name = self.name_of(destination)
            await self._answered(self._declare(name, group), f"declaring {name!r}")
        except Exception as exc:
            raise self._translated(exc) from exc

    async def _answered(self, call: Awaitable[T], doing: str) -> T:
        """Await a call to a connected broker, bounded by ``connect_timeout``: a node that
        stops answering after the handshake (wedged, or a hung network) makes it
        ``TransportUnavailableError`` instead of a wait for ever."""
        try:
            async with asyncio.timeout(self.connect_timeout) as deadline:
                return await call
        except TimeoutError as exc:
            if not deadline.expired():
                raise  # the client's own timeout: translated by the caller
            reason = f"no answer within {self.connect_timeout:g}s {doing}"
            raise TransportUnavailableError(self.scheme, reason) from exc

    async def _count_or_none(self, count: Awaitable[int | None], doing: str) -> int | None:
        """A ``backlog`` count, or ``None`` ("not known") when the broker does not answer."""
        try:
            return await self._answered(count, doing)
        except TransportUnavailableError:
            return None

    @asynccontextmanager
    async def subscribe(
        self, destination: str, group: str, *, prefetch: int = 1
    ) -> AsyncIterator[_Subscription]:
        """Receive ``group``'s messages from ``destination``, at most ``prefetch`` unacked."""
        if prefetch < 1:
            msg = f"prefetch must be at least 1, got {prefetch}"
            raise ValueError(msg)
        name = self.name_of(destination)
        await self.declare(name, group)
        subscription = _Subscription(self, destination)
        subscribers = self._subscribers(name, group, prefetch)
        self._subscriptions.add(subscription)
        try:
            for subscriber in subscribers:
                subscriber(subscription.on_message, decoder=_body_as_is)
                await self._answered(self._start(subscriber), f"subscribing to {name!r}")
            yield subscription
        finally:
            self._subscriptions.discard(subscription)
            subscription.close()
            for subscriber in subscribers:  # a lost connection: the broker requeues
                if await self._quietly(self._stop(subscriber)):
                    self._forget(subscriber)  # else the broker's stop tries it again

    def receive(
        self,
        destination: str,
        group: str,
        handle: Callable[[Delivery], Awaitable[object]],
        *,
        prefetch: int = 1,
    ) -> Receiver:
        """Register ``group``'s subscribers for ``destination`` on the broker, each message
        handed to ``handle``; whoever owns the broker starts and stops them (a FastStream app).

        The subscribers are the ones ``subscribe`` uses (same queue, durable consumer or
        group, manual acknowledgement, attempt counting). Call :meth:`declare_group` once the
        broker is connected and before it starts them.
        """
        if prefetch < 1:
            msg = f"prefetch must be at least 1, got {prefetch}"
            raise ValueError(msg)
        name = self.name_of(destination)
        return Receiver(self, destination, handle, self._subscribers(name, group, prefetch))

    async def declare_group(self, destination: str, group: str) -> None:
        """Create ``group``'s queue / consumer on ``destination`` over the broker's connection,
        connecting it if needed but starting none of its subscribers (for :meth:`receive`)."""
        if self.in_test_broker():
            return  # nothing to declare in memory
        await self.broker.connect()
        await self._declare(self.name_of(destination), group)

    async def close(self) -> None:
        """Return in-flight deliveries and disconnect."""
        if self._closed:
            return
        self._closed = True
        for subscription in list(self._subscriptions):
            subscription.close()
        if self._connected and self._owns_broker:
            await self.broker.stop()

    def check_open(self) -> None:
        if self._closed:
            raise TransportClosedError(self.scheme)

    def name_of(self, destination: str) -> str:
        """The broker's name for ``destination`` (without this transport's scheme)."""
        prefix = f"{self.scheme}://"
        return destination.removeprefix(prefix)

    # -- broker-specific steps -----------------------------------------------------------

    async def _ensure_connected(self) -> None:
        self.check_open()
        if self._connected:
            return
        async with self._connecting:
            if not self._connected:
                if getattr(self.broker, "running", False) is True:
                    # Started by its owner (a FastStream app sharing it): starting it again
                    # would start every subscriber twice. Its owner stops it, too.
                    self._owns_broker = False
                else:
                    await self._start_broker()
                self._connected = True

    async def _start_broker(self) -> None:
        """Connect the broker within ``connect_timeout``; else ``TransportUnavailableError``.

        Whatever the attempt leaves behind (it failed, timed out or was cancelled) is closed
        by ``_abandon``. A transport that can tell an unreachable server sooner than its
        client gives up overrides ``_connect``.
        """
        if self._hooked is None:
            self._hooked = self._hooked_connects()
        # Unhooked, what a connect cut short leaves cannot be closed: wait longer, so that the
        # client's own bound (connect_timeout, on the broker the transport builds) ends it.
        within = self.connect_timeout if self._hooked else 2 * self.connect_timeout
        try:
            async with asyncio.timeout(within) as deadline:
                await self._connect()
        except BaseException as exc:
            await self._abandon()
            if isinstance(exc, TimeoutError):  # ours, or the client's own (connect_timeout)
                raise self._no_connection(within if deadline.expired() else None) from exc
            raise

    def _hooked_connects(self) -> bool:
        """Whether ``_abandon`` can close all a connect cut short leaves (asked once)."""
        problem = self._hook_connects()
        if problem is None:
            return True
        logger.warning(
            "%r: a connect given up after connect_timeout or cancelled may leave %s, because "
            "%s. Hint: install a release dockyard's extra allows (`pip install "
            "'dockyard[%s]'`).",
            self,
            self._left_behind,
            problem,
            self.scheme,
        )
        return False

    def _hook_connects(self) -> str | None:
        """Let ``_abandon`` reach what the client makes while connecting; or say why not."""
        return None

    async def _connect(self) -> None:
        """Start the broker and wait for its first answer (run under ``connect_timeout``)."""
        await self.broker.start()

    async def _abandon(self) -> None:
        """Close what a connect given up left behind; FastStream forgets its connection."""
        await self._quietly(self.broker.stop())

    async def _quietly(self, closing: Awaitable[object]) -> bool:
        """Await a clean-up, bounded (it must not wait on a server that does not answer);
        whether it finished."""
        with contextlib.suppress(Exception, TimeoutError):
            async with asyncio.timeout(self.connect_timeout):
                await closing
            return True
        return False

    def _no_connection(self, within: float | None = None) -> TransportUnavailableError:
        seconds = self.connect_timeout if within is None else within
        reason = (
            f"no answer within {seconds:g}s while connecting (the server accepts connections "
            "and does not answer, or the network drops them)"
        )
        return TransportUnavailableError(self.scheme, reason)

    @abc.abstractmethod
    async def _publish(self, name: str, message: TransportMessage, headers: dict[str, str]) -> None:
        """Publish and wait for the broker's confirm; raise if it was refused."""

    async def _publish_wave(
        self, messages: Sequence[TransportMessage]
    ) -> Sequence[BaseException | None]:
        """Publish ``messages`` concurrently; one outcome each (``None``: confirmed)."""
        results = await asyncio.gather(
            *(self._publish(self.name_of(m.destination), m, encode_headers(m)) for m in messages),
            return_exceptions=True,
        )
        return [outcome_of(result) for result in results]

    @abc.abstractmethod
    async def _declare(self, name: str, group: str) -> None:
        """Create the group's durable queue / consumer / group on ``name`` if missing."""

    @abc.abstractmethod
    def _subscribers(self, name: str, group: str, prefetch: int) -> list[Any]:
        """New FastStream subscribers with manual acknowledgement, not started."""

    def in_test_broker(self) -> bool:
        """Whether the broker is inside a FastStream ``TestBroker`` (in-memory, no server).

        A ``TestBroker`` swaps the broker's producer for the ``FakeProducer`` of its module
        (``faststream.rabbit.testing`` and so on), which hands each publish to the subscribers
        in memory; ``with_real=True`` keeps the real producer, and then the broker is real.
        The module is looked up, not imported: a FastStream without it has no test broker.
        """
        testing = sys.modules.get(self._testing_module)
        fake = getattr(testing, "FakeProducer", None)
        return isinstance(fake, type) and isinstance(self.broker.config.producer, fake)

    async def _start(self, subscriber: Any) -> None:
        if not self.in_test_broker():
            await subscriber.start()
            return
        # The test broker calls handlers from publish(): the subscriber must not poll.
        subscriber._build_fastdepends_model()  # noqa: SLF001 - what TestBroker does at start
        for call in subscriber.calls:
            call.handler.set_test()
        subscriber._post_start()  # noqa: SLF001

    async def _stop(self, subscriber: Any) -> None:
        """Stop consuming; whatever the subscriber still holds goes back to the broker."""
        await subscriber.stop()

    async def _wait_turn(self, raw: StreamMessage[Any], closed: asyncio.Event) -> None:
        """Before a message with a partition key is handed out: wait while the broker has an
        earlier message of the group out with another consumer (``closed`` ends the wait).
        A broker that hands nothing else out meanwhile (JetStream's ``max_ack_pending=1``)
        need not."""
        del raw, closed

    async def _first_attempt(self, raw: StreamMessage[Any]) -> int:
        """The attempt number of a message as it arrives from the broker (1 if unknown)."""
        del raw
        return 1

    def _broker_id(self, raw: StreamMessage[Any]) -> str | None:
        """An id the broker keeps for this message across redeliveries (a message id
        property, a stream position), or ``None``: used when a message arrives without
        dockyard's ``message-id`` header (FastStream's own ``message_id`` may be made up on
        arrival, and would make a redelivery look new to the inbox)."""
        del raw
        return None

    async def _ack(self, raw: StreamMessage[Any]) -> None:
        if self.in_test_broker():
            return  # the test broker has no offsets or queues to acknowledge
        try:
            await raw.ack()
        except Exception:  # the connection is gone: the broker redelivers, the inbox dedupes
            logger.warning("%r: could not acknowledge a message", self, exc_info=True)

    async def _give_back(self, raw: StreamMessage[Any]) -> None:
        if self.in_test_broker():
            return
        """Return a message to the broker for redelivery."""
        with contextlib.suppress(Exception):  # the connection is gone: redelivered anyway
            await raw.nack()

    def _forget(self, subscriber: Any) -> None:
        """Take a stopped subscriber off the broker, so its ``stop()`` does not stop it again
        and a broker started again later (its owner's) does not start it again."""
        subscribers = getattr(self.broker, "_subscribers", None)
        discard = getattr(subscribers, "discard", None)  # FastStream 0.7: a WeakSet
        if callable(discard):
            discard(subscriber)
        elif isinstance(subscribers, list) and subscriber in subscribers:
            subscribers.remove(subscriber)


def outcome_of(result: object) -> BaseException | None:
    """A gathered result as a wave outcome; a cancellation or an interrupt goes on up."""
    if isinstance(result, Exception):
        return result
    if isinstance(result, BaseException):
        raise result
    return None


MANUAL = AckPolicy.MANUAL
"""The acknowledgement policy of every dockyard subscriber: the consumer decides."""
