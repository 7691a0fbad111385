"""``RedisTransport``: the ``Transport`` port over Redis Streams, through FastStream.

Topology: each destination is a stream (``XADD``); each consumer group is a Redis consumer
group on it, created at ``$`` when declared; every subscription is a consumer of its own.
``XADD`` answering with an entry id is the confirm. Redis Streams have no negative
acknowledgement: a message its consumer never acknowledged (the process died) stays pending
and is claimed by another subscription of the group (``XAUTOCLAIM``) once it has been idle
for ``claim_after`` seconds. Redis counts deliveries, which gives ``Delivery.attempt``.

Per-key order across consumers: Redis hands a group's next entries to any consumer that
asks, also while an earlier one is out with a consumer that died. So a subscription that
handles one message at a time (``prefetch=1``) hands out a message with a partition key only
once no earlier entry of the group is pending with another consumer, nor (for a message read
as new) with its own reclaimer (``XPENDING``, one round trip per message); meanwhile it keeps
its entry (``XCLAIM ... JUSTID``, so that nobody claims it) and the dead consumer's entry is
claimed after ``claim_after`` and handled, and acknowledged, first.

``publish_many`` sends a wave's ``XADD`` commands in one pipeline (one round trip, not a
transaction: each command succeeds or fails on its own).

Retention: a stream keeps its entries until they are trimmed, and ``XADD ... MAXLEN`` trims
entries whether or not a group has acknowledged them (Redis 7). So subscriptions trim what
every group of the stream has acknowledged, as RabbitMQ drops a message once each of its
queues has had it acknowledged: at most once per ``trim_interval`` seconds while messages are
acknowledged, ``XTRIM ... MINID`` below the smallest entry a group still needs (its oldest
pending entry, else the one after its last delivered). A stream without groups is not
trimmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from dockyard.exceptions import MissingExtraError

try:
    from faststream.redis import RedisBroker, StreamSub
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ResponseError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingExtraError("dockyard.transport.redis", "faststream[redis]", "redis") from exc

from faststream.message import StreamMessage

from dockyard.exceptions import BrokerPublishError, TransportUnavailableError
from dockyard.transport._faststream import MANUAL, FastStreamTransport, encode_headers
from dockyard.transport._port import TransportMessage

__all__ = ["RedisTransport"]

logger = logging.getLogger("dockyard.transport")


class RedisTransport(FastStreamTransport):
    """A ``Transport`` over Redis Streams.

    Args:
        url: The Redis URL, e.g. ``"redis://localhost:6379"``.
        broker: A ``faststream.redis.RedisBroker`` to use instead (shares its connection).
        claim_after: Seconds a message may stay unacknowledged before another subscription of
            its group claims it (its consumer is presumed dead); keep it above your slowest
            handler.
        poll_interval: Seconds one read blocks waiting for new entries.
        publish_timeout: Seconds a publish (or a batch's pipeline) waits for Redis's answer
            before raising ``TransportUnavailableError`` (the relay then pauses without
            counting an attempt): a server that stopped answering is an outage, not a hang.
            An ``XADD`` that reached Redis before the answer was given up on stays, and is
            published again: the consumer's inbox drops the copy.
        connect_timeout: Seconds the first connection may take (up to Redis's first answer)
            before it raises ``TransportUnavailableError``: a server that accepts connections
            and never answers is an outage, not a hang.
        trim_interval: Seconds between two trims of a stream by this transport's
            subscriptions, which delete the entries every group of the stream has
            acknowledged (``XTRIM MINID``); ``None`` never trims (the stream grows until
            something else trims it).

    Example:
        ```text
        transport = RedisTransport("redis://localhost:6379")
        OutboxModule.register(transport=transport)
        ConsumerModule.register(endpoints=[listen("orders", group="billing")])
        ```
    """

    scheme = "redis"
    messaging_system = "redis"
    """``messaging.system`` in telemetry (OpenTelemetry semantic conventions)."""
    _testing_module = "faststream.redis.testing"

    def __init__(
        self,
        url: str = "redis://localhost:6379",
        *,
        broker: RedisBroker | None = None,
        claim_after: float = 60.0,
        poll_interval: float = 0.1,
        publish_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        trim_interval: float | None = 1.0,
    ) -> None:
        if publish_timeout <= 0:
            msg = f"RedisTransport.publish_timeout must be > 0, got {publish_timeout}"
            raise ValueError(msg)
        if trim_interval is not None and trim_interval < 0:
            msg = f"RedisTransport.trim_interval must be >= 0 or None, got {trim_interval}"
            raise ValueError(msg)
        super().__init__(
            # logger=None turns FastStream's per-message logging off (accepted, not typed so)
            broker if broker is not None else RedisBroker(url, logger=None),  # type: ignore[arg-type]
            connect_timeout=connect_timeout,
        )
        self.claim_after = claim_after
        self.poll_interval = poll_interval
        self.publish_timeout = publish_timeout
        self.trim_interval = trim_interval
        self._trims: dict[str, _Trim] | None = {}
        """Per stream: its trim task, and whether an acknowledgement came since it trimmed
        (``None`` once the transport is closing)."""
        self._declared: set[tuple[str, str]] = set()
        self._concurrent: set[str] = set()
        """Consumers reading more than one entry at a time: no per-key order to keep."""

    async def _connect(self) -> None:
        await self.broker.start()
        if not self.in_test_broker():
            # FastStream's client connects on its first command: Redis's first answer, here.
            await self.broker._connection.ping()  # noqa: SLF001 - the broker's client

    async def _publish(self, name: str, message: TransportMessage, headers: dict[str, str]) -> None:
        try:
            async with asyncio.timeout(self.publish_timeout):
                entry_id = await self.broker.publish(message.payload, stream=name, headers=headers)
        except TimeoutError as exc:
            raise self._no_answer() from exc
        if not entry_id:
            raise BrokerPublishError(self.scheme, message.destination, "XADD returned no id")

    def _no_answer(self) -> TransportUnavailableError:
        reason = f"no answer to XADD within {self.publish_timeout:g}s"
        return TransportUnavailableError(self.scheme, reason)

    def _unreachable(self, error: BaseException) -> bool:
        return super()._unreachable(error) or isinstance(
            error, RedisConnectionError | RedisTimeoutError
        )

    async def _publish_wave(
        self, messages: Sequence[TransportMessage]
    ) -> Sequence[BaseException | None]:
        client = self.broker._connection  # noqa: SLF001 - the broker's client
        try:
            async with (
                asyncio.timeout(self.publish_timeout),
                client.pipeline(transaction=False) as pipeline,
            ):
                for message in messages:
                    await self.broker.publish(
                        message.payload,
                        stream=self.name_of(message.destination),
                        headers=encode_headers(message),
                        pipeline=pipeline,
                    )
                results = await pipeline.execute(raise_on_error=False)
        except TimeoutError as exc:
            raise self._no_answer() from exc
        outcomes: list[BaseException | None] = []
        for message, result in zip(messages, results, strict=True):
            if result and not isinstance(result, BaseException):
                outcomes.append(None)
                continue
            if isinstance(result, BaseException) and self._unreachable(result):
                outcomes.append(result)
                continue
            reason = f"{type(result).__name__}: {result}" if result else "XADD returned no id"
            error = BrokerPublishError(self.scheme, message.destination, reason)
            if isinstance(result, BaseException):
                error.__cause__ = result
            outcomes.append(error)
        return outcomes

    async def _declare(self, name: str, group: str) -> None:
        if (name, group) in self._declared:
            return
        try:
            await self.broker._connection.xgroup_create(  # noqa: SLF001 - the broker's client
                name=name, groupname=group, id="$", mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._declared.add((name, group))

    def _subscribers(self, name: str, group: str, prefetch: int) -> list[Any]:
        consumer = f"{group}-{uuid.uuid4().hex[:12]}"
        if prefetch > 1:
            self._concurrent.add(consumer)
        poll = max(1, int(self.poll_interval * 1000))
        reader = self.broker.subscriber(
            stream=StreamSub(
                name, group=group, consumer=consumer, polling_interval=poll, max_records=prefetch
            ),
            ack_policy=MANUAL,
            no_reply=True,
            persistent=False,
            **({"max_workers": prefetch} if prefetch > 1 else {}),
        )
        reclaimer = self.broker.subscriber(
            stream=StreamSub(
                name,
                group=group,
                consumer=consumer,
                polling_interval=max(poll, 500),
                min_idle_time=int(self.claim_after * 1000),
            ),
            ack_policy=MANUAL,
            no_reply=True,
            persistent=False,
        )
        return [reader, reclaimer]

    async def backlog(self, destination: str, group: str, /) -> int | None:
        """The group's ``lag`` (entries not yet delivered to it) plus its pending entries
        (delivered, not acknowledged), from ``XINFO GROUPS``; ``None`` when unknown."""
        client = self.broker._connection  # noqa: SLF001 - the broker's client
        if client is None:
            return None
        name = self.name_of(destination)
        return await self._count_or_none(self._lag(client, name, group), f"counting {name!r}")

    async def _lag(self, client: Any, stream: str, group: str) -> int | None:
        try:
            groups = await client.xinfo_groups(stream)
        except ResponseError:  # no such stream
            return None
        for info in groups:
            name = info.get("name")
            if (name.decode() if isinstance(name, bytes) else name) != group:
                continue
            lag, pending = info.get("lag"), info.get("pending")
            if not isinstance(lag, int):
                return None  # Redis cannot tell (entries deleted from the stream)
            return lag + (pending if isinstance(pending, int) else 0)
        return None

    def _broker_id(self, raw: StreamMessage[Any]) -> str | None:
        # The stream entry's id, which a claim by another consumer keeps.
        native = raw.raw_message
        ids = native.get("message_ids") if isinstance(native, dict) else None
        stream = native.get("channel") if isinstance(native, dict) else None
        if not ids:
            return None
        entry = ids[0].decode() if isinstance(ids[0], bytes) else str(ids[0])
        name = stream.decode() if isinstance(stream, bytes) else stream
        return f"{name}:{entry}" if name else entry

    async def _wait_turn(self, raw: StreamMessage[Any], closed: asyncio.Event) -> None:
        native = raw.raw_message
        group = getattr(raw, "group", None)
        if self.in_test_broker() or not group or not isinstance(native, dict):
            return
        ids, stream = native.get("message_ids"), native.get("channel")
        if not ids or not stream:
            return
        entry = _text(ids[0])
        client = self.broker._connection  # noqa: SLF001 - the broker's client
        while not closed.is_set():
            async with client.pipeline(transaction=False) as pipeline:
                # The group's first pending entries up to ours (ours included), and ours.
                pipeline.xpending_range(stream, group, min="-", max=entry, count=3)
                pipeline.xpending_range(stream, group, min=entry, max=entry, count=1)
                earliest, mine = await pipeline.execute()
            if not mine:
                return  # acknowledged meanwhile (by a consumer that claimed it): no turn to wait
            owner = mine[0]["consumer"]
            if _text(owner) in self._concurrent:
                return  # many at a time: per-key order is not promised
            # This subscription holds at most two entries (its reader's and its reclaimer's),
            # so among the first three any earlier one out with another consumer shows. The
            # reader's entry (delivered once: read as new) also waits for an earlier entry of
            # its own consumer: the reclaimer's, claimed from a dead consumer and handled now,
            # or one given back, which the reclaimer claims once idle. The reclaimer's entry
            # waits for no entry of its own consumer (it would wait for itself).
            fresh = int(mine[0].get("times_delivered") or 1) <= 1
            if all(
                _text(p["message_id"]) == entry or (p["consumer"] == owner and not fresh)
                for p in earliest
            ):
                return
            # Keep ours meanwhile (idle time back to 0), so no other consumer claims it.
            await client.xclaim(stream, group, owner, 0, [entry], justid=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closed.wait(), self.poll_interval)

    async def _ack(self, raw: StreamMessage[Any]) -> None:
        await super()._ack(raw)
        if self.trim_interval is None or self.in_test_broker():
            return
        native = raw.raw_message
        stream = native.get("channel") if isinstance(native, dict) else None
        if stream:
            self._trim_soon(_text(stream))

    def _trim_soon(self, stream: str) -> None:
        """Trim ``stream`` once ``trim_interval`` has passed since its last trim."""
        if self._trims is None:  # closing: no new trims
            return
        trim = self._trims.get(stream)
        if trim is None:
            trim = self._trims[stream] = _Trim()
        trim.due = True
        if trim.task is None or trim.task.done():
            trim.task = asyncio.create_task(self._trimming(stream, trim))

    async def _trimming(self, stream: str, trim: _Trim) -> None:
        interval = self.trim_interval or 0.0
        while trim.due and not self._closed and self._trims is not None:
            wait = trim.last + interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            trim.due, trim.last = False, time.monotonic()
            try:
                async with asyncio.timeout(self.publish_timeout):
                    await self.trim(stream)
            except Exception as exc:  # noqa: BLE001 - retention is best effort: next time
                logger.debug("%r: could not trim %r: %s", self, stream, exc)

    async def trim(self, stream: str, /) -> int:
        """Delete the entries of ``stream`` (a stream key, ``name_of(destination)``) that
        every consumer group of it has acknowledged; how many. Subscriptions call it as they
        acknowledge (``trim_interval``); call it yourself after ``trim_interval=None``."""
        client = self.broker._connection  # noqa: SLF001 - the broker's client
        groups = await client.xinfo_groups(stream)
        if not groups:
            return 0
        needed: list[tuple[int, int]] = []
        for group in groups:
            if int(group.get("pending") or 0):
                summary = await client.xpending(stream, _text(group["name"]))
                oldest = summary.get("min") if isinstance(summary, dict) else None
                if oldest:
                    needed.append(_entry(_text(oldest)))
                    continue
            ms, seq = _entry(_text(group.get("last-delivered-id") or "0-0"))
            needed.append((ms, seq + 1))
        ms, seq = min(needed)
        if (ms, seq) <= (0, 1):
            return 0
        return int(await client.xtrim(stream, minid=f"{ms}-{seq}", approximate=False))

    async def close(self) -> None:
        trims, self._trims = self._trims or {}, None
        running = [t.task for t in trims.values() if t.task is not None and not t.task.done()]
        for task in running:
            task.cancel()
        if running:
            # End them while the client is open. redis-py can let a cancellation go (a trim
            # went on to its next command after one); a command after the broker's stop
            # would open a connection that nobody closes.
            await asyncio.wait(running, timeout=self.publish_timeout)
        await super().close()

    async def _first_attempt(self, raw: StreamMessage[Any]) -> int:
        count = getattr(raw, "get_delivery_count", None)
        if count is None:
            return 1
        delivered = await count()
        return delivered if isinstance(delivered, int) and delivered > 0 else 1


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class _Trim:
    __slots__ = ("due", "last", "task")

    def __init__(self) -> None:
        self.due = False
        self.last = 0.0
        self.task: asyncio.Task[None] | None = None
