"""``NatsTransport``: the ``Transport`` port over NATS JetStream, through FastStream.

Topology: each destination is a JetStream stream (file storage) holding the subject of the
same name; each consumer group is a durable pull consumer with explicit acks (competing
consumers pull from it). Publishing waits for the stream's ``PubAck`` and sets
``Nats-Msg-Id``, so the server drops a message the relay publishes twice within the
duplicate window. JetStream counts deliveries, which gives ``Delivery.attempt``; a message
whose consumer died is redelivered after ``ack_wait`` seconds.

``publish_many`` sends a wave with JetStream's asynchronous publish (the messages go out
without waiting) and then awaits their ``PubAck`` futures together.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

from dockyard.exceptions import MissingExtraError

try:
    from faststream.nats import JStream, NatsBroker, PullSub
    from nats.js.api import AckPolicy as JsAckPolicy
    from nats.js.api import ConsumerConfig, DeliverPolicy, PubAck, StorageType
    from nats.js.client import JetStreamContext
    from nats.js.errors import NotFoundError
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingExtraError("dockyard.transport.nats", "faststream[nats]", "nats") from exc

from faststream.message import StreamMessage

from dockyard.exceptions import BrokerPublishError
from dockyard.transport._faststream import MANUAL, FastStreamTransport, encode_headers
from dockyard.transport._port import TransportMessage

__all__ = ["NatsTransport"]

_NOT_IN_NAMES = re.compile(r"[^A-Za-z0-9_-]")
_ACK_TIMEOUT = 10.0
"""Seconds ``publish_many`` waits for a wave's acknowledgements (a message without one failed)."""


class NatsTransport(FastStreamTransport):
    """A ``Transport`` over NATS JetStream.

    Args:
        url: The NATS server URL, e.g. ``"nats://localhost:4222"``.
        broker: A ``faststream.nats.NatsBroker`` to use instead (shares its connection).
        ack_wait: Seconds before JetStream redelivers a message nobody acknowledged (its
            consumer crashed); keep it above your slowest handler.
        duplicate_window: Seconds during which JetStream drops a second publish of one
            message id.

    Example:
        ```text
        transport = NatsTransport("nats://localhost:4222")
        OutboxModule.register(transport=transport, consumers=[consume("orders", group="billing")])
        ```
    """

    scheme = "nats"

    def __init__(
        self,
        url: str = "nats://localhost:4222",
        *,
        broker: NatsBroker | None = None,
        ack_wait: float = 30.0,
        duplicate_window: float = 120.0,
    ) -> None:
        super().__init__(broker if broker is not None else NatsBroker(url, logger=None))
        self.ack_wait = ack_wait
        self.duplicate_window = duplicate_window
        self._streams: set[str] = set()
        self._declared: set[tuple[str, str]] = set()
        self._js: JetStreamContext | None = None  # keeps publish_many's reply subscription

    @staticmethod
    def stream_name(name: str) -> str:
        """JetStream's name for the stream of destination ``name`` (no dots or wildcards)."""
        return _NOT_IN_NAMES.sub("_", name)

    async def _ensure_stream(self, name: str) -> str:
        stream = self.stream_name(name)
        if name not in self._streams:
            js = self.broker.connection.jetstream()
            try:
                await js.stream_info(stream)
            except NotFoundError:
                await js.add_stream(
                    name=stream,
                    subjects=[name],
                    storage=StorageType.FILE,
                    duplicate_window=self.duplicate_window,
                )
            self._streams.add(name)
        return stream

    async def _publish(self, name: str, message: TransportMessage, headers: dict[str, str]) -> None:
        stream = await self._ensure_stream(name)
        headers["Nats-Msg-Id"] = message.message_id
        ack = await self.broker.publish(message.payload, name, headers=headers, stream=stream)
        if ack is None or getattr(ack, "stream", stream) != stream:
            raise BrokerPublishError(self.scheme, message.destination, f"unexpected answer {ack}")

    async def _publish_wave(
        self, messages: Sequence[TransportMessage]
    ) -> Sequence[BaseException | None]:
        if self._js is None:
            self._js = self.broker.connection.jetstream()
        js = self._js
        acks: list[asyncio.Future[PubAck]] = []
        for message in messages:
            name = self.name_of(message.destination)
            stream = await self._ensure_stream(name)
            headers = encode_headers(message)
            headers["Nats-Msg-Id"] = message.message_id
            acks.append(
                await js.publish_async(name, message.payload, headers=headers, stream=stream)
            )
        await asyncio.wait(acks, timeout=_ACK_TIMEOUT)
        outcomes: list[BaseException | None] = []
        for message, ack in zip(messages, acks, strict=True):
            if not ack.done():
                ack.cancel()  # frees its slot in JetStream's window of pending publishes
                reason = f"no acknowledgement within {_ACK_TIMEOUT:g}s"
                outcomes.append(BrokerPublishError(self.scheme, message.destination, reason))
            elif ack.exception() is not None:
                cause = ack.exception()
                error = BrokerPublishError(
                    self.scheme, message.destination, f"{type(cause).__name__}: {cause}"
                )
                error.__cause__ = cause
                outcomes.append(error)
            else:
                outcomes.append(None)
        return outcomes

    async def _declare(self, name: str, group: str) -> None:
        if (name, group) in self._declared:
            return
        stream = await self._ensure_stream(name)
        js = self.broker.connection.jetstream()
        try:
            await js.consumer_info(stream, group)
        except NotFoundError:
            await js.add_consumer(stream, self._consumer_config(name, group))
        self._declared.add((name, group))

    def _consumer_config(self, name: str, group: str) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=group,
            ack_policy=JsAckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.NEW,
            filter_subject=name,
            ack_wait=self.ack_wait,
            max_deliver=-1,
            max_ack_pending=-1,
        )

    def _subscribers(self, name: str, group: str, prefetch: int) -> list[Any]:
        subscriber = self.broker.subscriber(
            name,
            stream=JStream(self.stream_name(name), declare=False),
            durable=group,
            config=self._consumer_config(name, group),
            pull_sub=PullSub(batch_size=prefetch, timeout=1.0),
            max_workers=prefetch,
            ack_policy=MANUAL,
            no_reply=True,
            persistent=False,
        )
        return [subscriber]

    async def _first_attempt(self, raw: StreamMessage[Any]) -> int:
        metadata = getattr(raw.raw_message, "metadata", None)
        delivered = getattr(metadata, "num_delivered", None)
        return delivered if isinstance(delivered, int) and delivered > 0 else 1
