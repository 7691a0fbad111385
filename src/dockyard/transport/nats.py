"""``NatsTransport``: the ``Transport`` port over NATS JetStream, through FastStream.

Topology: each destination is a JetStream stream (file storage) holding the subject of the
same name; each consumer group is a durable pull consumer with explicit acks (competing
consumers pull from it). Publishing waits for the stream's ``PubAck`` and sets
``Nats-Msg-Id``, so the server drops a message the relay publishes twice within the
duplicate window. JetStream counts deliveries, which gives ``Delivery.attempt``; a message
whose consumer died is redelivered after ``ack_wait`` seconds.

``publish_many`` writes a wave's ``HPUB`` commands at once (each with ``Nats-Msg-Id`` and the
expected stream, as JetStream's publish sets them) with a reply subject per message on one
subscription of its own, and waits for the wave's ``PubAck``s together (``_PubAcks``): the
bytes nats-py's ``publish_async`` would write, without its per-message semaphore, future and
header checks, which were most of a relay's CPU time. ``_send_command`` and
``_flush_pending`` are nats-py's private API, so that path is gated (``_borrowed``,
docs/design/borrowed-internals.md): it is taken only on a nats-py release it was written
against and on a client whose two methods take what it passes, checked on the first batch.
Else ``publish_many`` publishes each message with JetStream's public ``publish_async`` and
says so once in a warning.

An unreachable server fails fast: a publish while the client is reconnecting raises
``TransportUnavailableError`` at once (nothing is buffered, so the relay pauses and tries
again), the first connection fails with it at the first refused attempt (or after
``connect_timeout``: a server that accepts and never sends its ``INFO``) instead of nats-py's
minutes of attempts, and acknowledgements are awaited at most ``publish_timeout`` seconds (a
server that stopped answering). Once connected, the client the transport builds reconnects
for ever. A first connection given up (or cancelled) midway leaves nats-py's socket open (it
closes it only on the failures it handles itself), so the transport makes the client itself,
as FastStream's ``NatsBroker._connect`` does, and closes it: FastStream's private API, gated
like the fast path (without it such a socket is closed only when collected, said once in a
warning).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from asyncio import FIRST_COMPLETED
from collections.abc import Sequence
from typing import Any, Literal

from dockyard.exceptions import MissingExtraError

try:
    from faststream.nats import JStream, NatsBroker, PullSub
    from nats.aio.client import NO_RESPONDERS_STATUS, Client
    from nats.errors import (
        BadHeaderError,
        ConnectionClosedError,
        ConnectionReconnectingError,
        MaxPayloadError,
        NoServersError,
        OutboundBufferLimitError,
        StaleConnectionError,
    )
    from nats.js.api import AckPolicy as JsAckPolicy
    from nats.js.api import (
        ConsumerConfig,
        DeliverPolicy,
        PubAck,
        RetentionPolicy,
        StorageType,
        StreamConfig,
    )
    from nats.js.client import JetStreamContext
    from nats.js.errors import APIError, NoStreamResponseError, NotFoundError
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingExtraError("dockyard.transport.nats", "faststream[nats]", "nats") from exc

import msgspec
from faststream.message import StreamMessage

from dockyard.exceptions import (
    BrokerPublishError,
    ConsumerGroupConflictError,
    TransportUnavailableError,
)
from dockyard.transport._batch import UNSETTLED, WaveOutcomes
from dockyard.transport._borrowed import (
    Check,
    chosen,
    coroutine_taking,
    release,
    release_problem,
    shape_problem,
)
from dockyard.transport._faststream import MANUAL, FastStreamTransport, encode_headers
from dockyard.transport._port import TransportMessage

__all__ = ["NatsTransport"]

logger = logging.getLogger("dockyard.transport")

_NOT_IN_NAMES = re.compile(r"[^A-Za-z0-9_-]")


class NatsTransport(FastStreamTransport):
    """A ``Transport`` over NATS JetStream.

    Args:
        url: The NATS server URL, e.g. ``"nats://localhost:4222"``.
        broker: A ``faststream.nats.NatsBroker`` to use instead (shares its connection).
        ack_wait: Seconds before JetStream redelivers a message nobody acknowledged (its
            consumer crashed); keep it above your slowest handler.
        max_ack_pending: Messages a consumer group may have handed out and not yet
            acknowledged, across all its consumers (JetStream's ``max_ack_pending``, set when
            the group is created). 1, the default, keeps each key's order when a consumer
            dies mid-handler: JetStream hands out nothing else until the dead consumer's
            message is redelivered (after ``ack_wait``) and acknowledged. A larger value lets
            a group's consumers work in parallel, and a key's next message may then be
            handled before the crashed one's redelivery (per-key order holds only while no
            consumer crashes).
        duplicate_window: Seconds during which JetStream drops a second publish of one
            message id.
        publish_timeout: Seconds a publish waits for JetStream's acknowledgement before
            raising ``TransportUnavailableError`` (the relay then pauses without counting an
            attempt). JetStream answers in milliseconds; lower it to notice a server that
            stopped answering sooner.
        connect_timeout: Seconds the first connection may take before it raises
            ``TransportUnavailableError`` (a server that refuses it fails at once): a server
            that accepts connections and never answers is an outage, not a hang. The client
            the transport builds also waits at most this long for the server in each
            (re)connect attempt (nats-py's ``connect_timeout``).
        retention: What the streams this transport creates keep. ``"interest"`` (the
            default): a message until every consumer group of its stream has acknowledged
            it, as RabbitMQ keeps a message until each of its queues has; a message
            published while the stream has no group is not kept (no group created later
            would be handed it: groups start with the messages published after them).
            ``"limits"``: every message, until the stream's limits (none are set: for
            ever) or someone deletes it. Applies to streams it creates; JetStream does not
            change an existing stream's retention.

    Example:
        ```text
        transport = NatsTransport("nats://localhost:4222")
        OutboxModule.register(transport=transport)
        ConsumerModule.register(endpoints=[listen("orders", group="billing")])
        ```
    """

    scheme = "nats"
    messaging_system = "nats"
    """``messaging.system`` in telemetry (OpenTelemetry semantic conventions)."""
    _testing_module = "faststream.nats.testing"
    _left_behind = "nats-py's socket, open until it is collected"

    def __init__(
        self,
        url: str = "nats://localhost:4222",
        *,
        broker: NatsBroker | None = None,
        ack_wait: float = 30.0,
        duplicate_window: float = 120.0,
        max_ack_pending: int = 1,
        publish_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        retention: Literal["interest", "limits"] = "interest",
    ) -> None:
        if retention not in ("interest", "limits"):
            msg = f"NatsTransport.retention must be 'interest' or 'limits', got {retention!r}"
            raise ValueError(msg)
        if max_ack_pending < 1:
            msg = f"NatsTransport.max_ack_pending must be >= 1, got {max_ack_pending}"
            raise ValueError(msg)
        if publish_timeout <= 0:
            msg = f"NatsTransport.publish_timeout must be > 0, got {publish_timeout}"
            raise ValueError(msg)
        if broker is None:
            # Reconnect for ever once connected (nats-py closes the connection for good after
            # 60 failed attempts, two minutes), and report each failed attempt to
            # _start_broker, so a server down at start fails the first connection at once.
            broker = NatsBroker(
                url,
                logger=None,
                max_reconnect_attempts=-1,
                error_cb=self._connection_failed,
                # per attempt, in seconds (nats-py waits with asyncio.wait_for; typed int)
                connect_timeout=connect_timeout,  # type: ignore[arg-type]
            )
        super().__init__(broker, connect_timeout=connect_timeout)
        self.ack_wait = ack_wait
        self.duplicate_window = duplicate_window
        self.max_ack_pending = max_ack_pending
        self.publish_timeout = publish_timeout
        self.retention = retention
        self._first_failure: asyncio.Future[Exception] | None = None
        self._client: Client | None = None
        """The nats-py client of the connect under way (to close if it is given up)."""
        self._streams: set[str] = set()
        self._ack_pending: dict[tuple[str, str], int] = {}
        """Each declared group's ``max_ack_pending``, as the server has it."""
        self._js: JetStreamContext | None = None  # keeps publish_many's reply subscription
        self._acks: _PubAcks | None = None
        self._fast_waves: bool | None = None
        """Whether ``publish_many`` writes with nats-py's ``_send_command`` (decided once)."""

    async def _connect(self) -> None:
        # Run under connect_timeout (_start_broker); the first failed attempt ends it sooner.
        failure = self._first_failure = asyncio.get_running_loop().create_future()
        starting = asyncio.ensure_future(self.broker.start())
        try:
            await asyncio.wait((starting, failure), return_when=FIRST_COMPLETED)
        finally:
            self._first_failure = None
            if not starting.done():  # nats-py would go on trying (or we were cancelled)
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
        if not starting.cancelled():
            starting.result()  # connected, or its own error
            self._client = None  # the broker's now
            return
        error = failure.result()
        if not self._unreachable(error):
            raise error  # refused for a reason (credentials): a configuration error
        reason = f"{type(error).__name__}: {error}"
        if isinstance(error, TimeoutError):  # nats-py's own connect_timeout, per attempt
            reason = "no answer while connecting (nats-py's connect attempt timed out)"
        raise TransportUnavailableError(self.scheme, reason) from error

    def _hook_connects(self) -> str | None:
        problem = _broker_problem(self.broker)
        if problem is None:  # an instance attribute: FastStream's connect() calls it
            self.broker._connect = self._new_client  # noqa: SLF001
        return problem

    async def _new_client(self) -> Client:
        """FastStream's ``NatsBroker._connect``, keeping the client to close it if need be."""
        client = self._client = Client()
        await client.connect(**self.broker._connection_kwargs)  # noqa: SLF001
        self.broker.config.connect(client)
        return client

    async def _abandon(self) -> None:
        client, self._client = self._client, None
        if client is not None:  # its socket, if a cancelled connect left it open
            await self._quietly(client.close())
        await super()._abandon()

    async def _connection_failed(self, error: Exception) -> None:
        failure = self._first_failure
        if failure is not None and not failure.done():
            failure.set_result(error)

    async def close(self) -> None:
        try:
            await super().close()
        except (ConnectionClosedError, ConnectionReconnectingError):
            # The server is unreachable: nothing can be drained, stop reconnecting.
            await self.broker.connection.close()

    def _reconnecting(self) -> TransportUnavailableError | None:
        if self.broker.connection.is_connected:
            return None
        return TransportUnavailableError(self.scheme, "the connection is down, reconnecting")

    @staticmethod
    def stream_name(name: str) -> str:
        """JetStream's name for the stream of destination ``name`` (no dots or wildcards)."""
        return _NOT_IN_NAMES.sub("_", name)

    async def _ensure_stream(self, name: str) -> str:
        stream = self.stream_name(name)
        if name not in self._streams:
            js = self.broker.connection.jetstream()
            try:
                info = await js.stream_info(stream)
            except NotFoundError:
                await js.add_stream(
                    name=stream,
                    subjects=[name],
                    storage=StorageType.FILE,
                    duplicate_window=self.duplicate_window,
                    retention=_RETENTION[self.retention],
                )
            else:
                self._check_retention(stream, info.config)
            self._streams.add(name)
        return stream

    def _check_retention(self, stream: str, config: StreamConfig) -> None:
        """Warn about an existing stream that keeps every message for ever (limits retention
        with no limit: created before dockyard asked for interest retention, or by hand),
        unless this transport was told to keep everything."""
        if self.retention == "limits" or config.retention != RetentionPolicy.LIMITS:
            return
        unlimited = (config.max_msgs or -1) < 0 and (config.max_bytes or -1) < 0
        if unlimited and not config.max_age:
            logger.warning(
                "NATS stream %r keeps every message for ever (limits retention, no limit set): "
                "give it limits (`nats stream edit %s --max-age 7d`), or recreate it once "
                "drained for dockyard to create it with interest retention; "
                "NatsTransport(retention='limits') says this is meant",
                stream,
                stream,
            )

    async def _publish(self, name: str, message: TransportMessage, headers: dict[str, str]) -> None:
        if (down := self._reconnecting()) is not None:
            raise down
        stream = await self._ensure_stream(name)
        headers["Nats-Msg-Id"] = message.message_id
        ack = await self.broker.publish(
            message.payload, name, headers=headers, stream=stream, timeout=self.publish_timeout
        )
        if ack is None or getattr(ack, "stream", stream) != stream:
            raise BrokerPublishError(self.scheme, message.destination, f"unexpected answer {ack}")

    async def _publish_wave(
        self, messages: Sequence[TransportMessage]
    ) -> Sequence[BaseException | None]:
        if (down := self._reconnecting()) is not None:
            return [down] * len(messages)
        connection = self.broker.connection
        names = [self.name_of(m.destination) for m in messages]
        streams = {name: await self._ensure_stream(name) for name in dict.fromkeys(names)}
        if not (self._fast_path(connection) and all(map(_plain_subject, streams))):
            return await self._publish_wave_by_client(messages, names, streams)
        acks = self._acks
        if acks is None or acks.connection is not connection:
            acks = self._acks = await _PubAcks.start(connection)
        wave = WaveOutcomes(len(messages), asyncio.get_running_loop().create_future())
        tokens = acks.expect(wave)
        commands: list[bytes] = []
        limit = connection.max_payload
        for index, (name, message, token) in enumerate(zip(names, messages, tokens, strict=True)):
            command = _hpub(name, acks.reply_to(token), streams[name], message, limit)
            if isinstance(command, BaseException):
                acks.forget(token)
                wave.settle(index, command)
            else:
                commands.append(command)
        if commands:
            await connection._send_command(b"".join(commands))  # noqa: SLF001 - as publish does
            await connection._flush_pending()  # noqa: SLF001
        await asyncio.wait((wave.future,), timeout=self.publish_timeout)
        outcomes: list[BaseException | None] = []
        for message, token, outcome in zip(messages, tokens, wave.outcomes, strict=True):
            if outcome is UNSETTLED:
                acks.forget(token)
                outcomes.append(self._no_answer())
            elif outcome is None or self._unreachable(outcome):
                outcomes.append(outcome)
            else:
                reason = f"{type(outcome).__name__}: {outcome}"
                error = BrokerPublishError(self.scheme, message.destination, reason)
                error.__cause__ = outcome
                outcomes.append(error)
        return outcomes

    def _fast_path(self, connection: Any) -> bool:
        """Whether ``publish_many`` may write with nats-py's private methods (asked once)."""
        if self._fast_waves is None:
            self._fast_waves = chosen(self, _FAST_PATH, _nats_problem(connection))
        return self._fast_waves

    async def _publish_wave_by_client(
        self, messages: Sequence[TransportMessage], names: list[str], streams: dict[str, str]
    ) -> Sequence[BaseException | None]:
        """The wave through nats-py's public ``publish_async``: for subjects it must check,
        and for a nats-py whose private methods the fast path does not know."""
        if self._js is None:
            self._js = self.broker.connection.jetstream()
        js = self._js
        acks: list[asyncio.Future[PubAck]] = []
        for name, message in zip(names, messages, strict=True):
            headers = encode_headers(message)
            headers["Nats-Msg-Id"] = message.message_id
            acks.append(
                await js.publish_async(name, message.payload, headers=headers, stream=streams[name])
            )
        await asyncio.wait(acks, timeout=self.publish_timeout)
        outcomes: list[BaseException | None] = []
        for message, ack in zip(messages, acks, strict=True):
            if not ack.done():
                ack.cancel()  # frees its slot in JetStream's window of pending publishes
                outcomes.append(self._no_answer())
            elif (cause := ack.exception()) is not None and self._unreachable(cause):
                outcomes.append(cause)
            elif cause is not None:
                error = BrokerPublishError(
                    self.scheme, message.destination, f"{type(cause).__name__}: {cause}"
                )
                error.__cause__ = cause
                outcomes.append(error)
            else:
                outcomes.append(None)
        return outcomes

    def _no_answer(self) -> TransportUnavailableError:
        # JetStream acknowledges a stored message in milliseconds; silence is the server's
        # (or the connection's) failure, not the message's.
        reason = f"no acknowledgement within {self.publish_timeout:g}s"
        return TransportUnavailableError(self.scheme, reason)

    def _unreachable(self, error: BaseException) -> bool:
        # No responders: JetStream did not answer (a server restarting); not a refusal.
        return super()._unreachable(error) or isinstance(error, _UNREACHABLE)

    async def _declare(self, name: str, group: str) -> None:
        if (name, group) in self._ack_pending:
            return
        stream = await self._ensure_stream(name)
        js = self.broker.connection.jetstream()
        try:
            info = await js.consumer_info(stream, group)
        except NotFoundError:
            info = await js.add_consumer(stream, self._consumer_config(name, group))
        else:
            self._check_group(name, group, stream, info.config)
        self._ack_pending[name, group] = info.config.max_ack_pending or self.max_ack_pending

    def _check_group(self, name: str, group: str, stream: str, config: ConsumerConfig) -> None:
        """Refuse a group JetStream already has with another ``ack_wait`` or
        ``max_ack_pending``: the server keeps the first declaration's settings, so this
        transport's would silently not apply (another ``max_ack_pending`` changes what per-key
        order survives a crash)."""
        ack_wait = config.ack_wait if config.ack_wait is not None else self.ack_wait
        pending = config.max_ack_pending or self.max_ack_pending
        if abs(ack_wait - self.ack_wait) < 1e-3 and pending == self.max_ack_pending:
            return
        raise ConsumerGroupConflictError(
            self.scheme,
            name,
            group,
            f"ack_wait={ack_wait:g}s, max_ack_pending={pending}",
            f"ack_wait={self.ack_wait:g}s, max_ack_pending={self.max_ack_pending}",
            f"delete the consumer (`nats consumer rm {stream} {group}`)",
        )

    def _consumer_config(self, name: str, group: str) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=group,
            ack_policy=JsAckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.NEW,
            filter_subject=name,
            ack_wait=self.ack_wait,
            max_deliver=-1,
            # JetStream hands a group's next message out while a dead consumer's one waits
            # for ack_wait; with one pending at a time a key's order survives the crash.
            max_ack_pending=self.max_ack_pending,
        )

    def _subscribers(self, name: str, group: str, prefetch: int) -> list[Any]:
        # A pull asking for more than the group may have pending waits out its timeout for
        # messages JetStream will not hand out: one message a second.
        batch = min(prefetch, self._ack_pending.get((name, group), self.max_ack_pending))
        subscriber = self.broker.subscriber(
            name,
            stream=JStream(self.stream_name(name), declare=False),
            durable=group,
            config=self._consumer_config(name, group),
            pull_sub=PullSub(batch_size=batch, timeout=1.0),
            max_workers=prefetch,
            ack_policy=MANUAL,
            no_reply=True,
            persistent=False,
        )
        return [subscriber]

    async def backlog(self, destination: str, group: str, /) -> int | None:
        """The durable consumer's undelivered plus unacknowledged messages
        (``num_pending + num_ack_pending``); ``None`` when the group is unknown."""
        name = self.name_of(destination)
        return await self._count_or_none(self._pending(name, group), f"counting {name!r}")

    async def _pending(self, name: str, group: str) -> int | None:
        try:
            info = await self.broker.connection.jetstream().consumer_info(
                self.stream_name(name), group
            )
        except NotFoundError:
            return None
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    def _broker_id(self, raw: StreamMessage[Any]) -> str | None:
        # The sender's `Nats-Msg-Id`, else the message's place in its JetStream stream: both
        # stay the same when the server redelivers it.
        native = raw.raw_message
        msg_id = (getattr(native, "headers", None) or {}).get("Nats-Msg-Id")
        if isinstance(msg_id, str) and msg_id:
            return msg_id
        try:
            metadata = native.metadata
        except Exception:  # noqa: BLE001 - not a JetStream message (nats-py raises then)
            return None
        stream, sequence = getattr(metadata, "stream", None), getattr(metadata, "sequence", None)
        position = getattr(sequence, "stream", None)
        return f"{stream}:{position}" if stream and isinstance(position, int) else None

    async def _first_attempt(self, raw: StreamMessage[Any]) -> int:
        metadata = getattr(raw.raw_message, "metadata", None)
        delivered = getattr(metadata, "num_delivered", None)
        return delivered if isinstance(delivered, int) and delivered > 0 else 1


_RETENTION = {"interest": RetentionPolicy.INTEREST, "limits": RetentionPolicy.LIMITS}

_UNREACHABLE = (
    ConnectionClosedError,
    ConnectionReconnectingError,
    NoServersError,
    OutboundBufferLimitError,
    StaleConnectionError,
    NoStreamResponseError,
)


_FAST_PATH = "its own HPUB commands through nats-py's `_send_command` and `_flush_pending`"
_NATS_PY_RELEASES = ((2, 14), (3,))
"""The nats-py releases the fast path was written against (and tested on: 2.16)."""
_CLIENT: dict[str, Check] = {
    "_send_command": coroutine_taking(b""),  # appends a command to the pending buffer
    "_flush_pending": coroutine_taking(),  # kicks the flusher task
    "max_payload": lambda value: isinstance(value, int),
    "new_inbox": callable,
}
"""What ``_publish_wave`` uses of a nats-py client, and how it must look."""


_CLEAN_UP = "the connect clean-up"
_FASTSTREAM_RELEASES = ((0, 6), (0, 8))
"""The FastStream releases whose ``NatsBroker._connect`` is what ``_new_client`` does."""
_BROKER: dict[str, Check] = {
    "_connect": coroutine_taking(),
    "_connection_kwargs": lambda value: isinstance(value, dict),
    "config": lambda value: callable(getattr(value, "connect", None)),
}
"""What ``_track_clients`` and ``_new_client`` use of a FastStream ``NatsBroker``."""


def _broker_problem(broker: object) -> str | None:
    """Why the transport cannot make ``broker``'s nats-py client itself; ``None`` if it can."""
    installed = release("faststream")
    problem = release_problem("faststream", installed, *_FASTSTREAM_RELEASES, user=_CLEAN_UP)
    return problem if problem is not None else shape_problem(broker, _BROKER)


def _nats_problem(client: object) -> str | None:
    """Why the fast path must not write on ``client`` (nats-py's); ``None`` if it may."""
    problem = release_problem("nats-py", release("nats-py"), *_NATS_PY_RELEASES)
    return problem if problem is not None else shape_problem(client, _CLIENT)


_CRLF = b"\r\n"
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # what nats-py accepts
_NEWLINES = str.maketrans({"\r": " ", "\n": " "})
_SUBJECT = re.compile(r"[^\s*>]+")


def _plain_subject(name: str) -> bool:
    """A subject to publish to without nats-py's checks: no whitespace, no wildcards."""
    return _SUBJECT.fullmatch(name) is not None


def _hpub(
    subject: str, reply: str, stream: str, message: TransportMessage, limit: int
) -> bytes | BaseException:
    """The ``HPUB`` command nats-py's ``publish`` writes for a JetStream publish of
    ``message`` (with ``Nats-Msg-Id`` and ``Nats-Expected-Stream``), or why it would refuse."""
    payload = message.payload
    if len(payload) > limit:
        return MaxPayloadError()
    headers = encode_headers(message)
    headers["Nats-Msg-Id"] = message.message_id
    headers["Nats-Expected-Stream"] = stream
    lines = [b"NATS/1.0\r\n"]
    for name, value in headers.items():
        key = name.strip()
        if not key:
            continue
        if _HEADER_NAME.fullmatch(key) is None:
            return BadHeaderError(key)
        lines.append(f"{key}: {value.strip().translate(_NEWLINES)}\r\n".encode())
    lines.append(_CRLF)
    header = b"".join(lines)
    size = len(header)
    command = f"HPUB {subject} {reply} {size} {size + len(payload)}\r\n".encode()
    return command + header + payload + _CRLF


class _PubAcks:
    """``publish_many``'s acknowledgements: one reply subscription, a reply subject per message.

    nats-py's ``publish_async`` takes a semaphore, builds a future with a done callback and
    a random token, and validates and encodes each header, per message; on a relay batch that
    was most of the relay's CPU time. Here a wave writes its ``HPUB`` commands in one go and
    JetStream's answers settle the wave's ``WaveOutcomes``.
    """

    __slots__ = ("_next", "_prefix", "_waiting", "connection")

    def __init__(self, connection: Any, prefix: str) -> None:
        self.connection = connection
        self._prefix = prefix
        self._next = 0
        self._waiting: dict[str, tuple[WaveOutcomes, int]] = {}

    @classmethod
    async def start(cls, connection: Any) -> _PubAcks:
        acks = cls(connection, f"{connection.new_inbox()}.")
        await connection.subscribe(f"{acks._prefix}*", cb=acks._on_reply)
        return acks

    def expect(self, wave: WaveOutcomes) -> list[str]:
        """A reply token per message of ``wave``, registered for its answer."""
        first = self._next
        self._next += len(wave.outcomes)
        tokens = [str(n) for n in range(first, self._next)]
        self._waiting.update((token, (wave, i)) for i, token in enumerate(tokens))
        return tokens

    def reply_to(self, token: str) -> str:
        return self._prefix + token

    def forget(self, token: str) -> None:
        self._waiting.pop(token, None)

    async def _on_reply(self, reply: Any) -> None:
        found = self._waiting.pop(reply.subject[len(self._prefix) :], None)
        if found is not None:
            wave, index = found
            wave.settle(index, _pub_ack_error(reply))


def _pub_ack_error(reply: Any) -> BaseException | None:
    """``None`` for a ``PubAck``; otherwise what nats-py's ``publish_async`` would raise."""
    headers = reply.headers
    if headers and headers.get("Status") == NO_RESPONDERS_STATUS:
        return NoStreamResponseError()
    try:
        answer = _decode_answer(reply.data)
    except msgspec.DecodeError as exc:
        return exc
    error = answer.get("error")
    if error is not None:
        try:
            APIError.from_error(error)  # raises the error's class
        except APIError as exc:
            return exc
    if "seq" not in answer:
        return APIError(description=f"unexpected answer {reply.data[:200]!r}")
    return None


_decode_answer = msgspec.json.Decoder(dict[str, Any]).decode
