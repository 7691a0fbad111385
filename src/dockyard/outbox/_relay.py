"""``OutboxRelay``: the background service that publishes committed outbox messages.

See ``docs/design/outbox-relay.md`` for how claims keep order within a partition key across
several relays, how relays wake up, how a batch is published (all at once through
``publish_many`` when the transport has it, ``BatchPublisher``, else message by message) and
how a relay keeps up to ``RelaySettings.pipeline`` batches in flight: it claims the next batch
while the current one is published, when the store's claims can overlap.

Scheduled messages wait in the store until due (``docs/design/scheduled-messages.md``); the
relay promotes them (``OutboxStore.promote``) when it starts, when it wakes at or after the
earliest due time ``next_due`` told it of, and at least every ``max_poll_interval`` while it
drains without a pause (for messages scheduled by other processes meanwhile).

A transport that cannot reach its broker says so with ``TransportUnavailableError``; that is
not the message's failure, so it counts no attempt: the relay leaves the messages pending and
pauses (a circuit breaker: ``RelaySettings.outage_pause`` doubling up to ``max_outage_pause``,
with jitter), logging once when the outage starts and once when it ends. Any other error is
the message's: it is retried by ``RetryPolicy`` and becomes a dead letter in the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from dockyard._logs import message_scope
from dockyard.exceptions import StoreUnavailableError, TransportUnavailableError
from dockyard.modules._supervisor import service_degraded, service_running
from dockyard.outbox._destinations import ClaimsByDestination, Destinations
from dockyard.outbox._message import OutboxMessage, OutboxStatus
from dockyard.outbox._settings import RelaySettings
from dockyard.outbox._store import ClaimedBatch, OutboxStore
from dockyard.retry import RetryPolicy
from dockyard.telemetry._instruments import (
    BATCH_COUNT,
    CONVERSATION_ID,
    DESTINATION,
    ERROR_TYPE,
    MESSAGE_ID,
    OPERATION_NAME,
    OPERATION_TYPE,
    OUTCOME,
    SYSTEM,
    Instruments,
)
from dockyard.transport._port import (
    CORRELATION_ID,
    BatchPublisher,
    BatchPublishError,
    Transport,
    TransportMessage,
)

__all__ = ["OutboxRelay", "RelayResult"]

logger = logging.getLogger("dockyard.outbox")

_MIN_POLL = 0.005


@dataclass(frozen=True, slots=True)
class RelayResult:
    """What one batch did."""

    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    unavailable: int = 0
    """Messages left pending, no attempt counted, because the transport was unavailable."""


class OutboxRelay:
    """Claims batches of due messages, publishes them through the transport, records the outcome.

    Safe to run in several processes at once. ``run`` returns when ``stop`` is set, after the
    batch in flight is published and committed (a crash instead leaves that batch pending for
    another relay: its messages may then be published twice, never lost).
    """

    __slots__ = (
        "_claim",
        "_destinations",
        "_instruments",
        "_last_cleanup",
        "_name",
        "_outage_reason",
        "_promote_at",
        "_promoted_at",
        "_rng",
        "_transport_name",
        "settings",
        "store",
        "transport",
    )

    def __init__(
        self,
        store: OutboxStore,
        transport: Transport,
        settings: RelaySettings | None = None,
        *,
        name: str = "outbox-relay",
        rng: random.Random | None = None,
        instruments: Instruments | None = None,
        destinations: Destinations | None = None,
        transport_name: str | None = None,
    ) -> None:
        """``destinations``: claim only these (one relay per transport, in an app with several:
        ``docs/design/outbox-relay.md``); ``None``: every destination. ``transport_name``: the
        backlog gauge counts ``destinations`` only, under that name."""
        self.store = store
        self._destinations = destinations
        self._transport_name = transport_name
        self._claim: Callable[[int, float], AbstractAsyncContextManager[ClaimedBatch]]
        if destinations is None:
            self._claim = store.claim
        elif isinstance(store, ClaimsByDestination):
            self._claim = functools.partial(store.claim_destinations, destinations)
        else:
            msg = (
                f"the outbox store {type(store).__name__} cannot claim by destination "
                "(ClaimsByDestination), which an app with several transports needs"
            )
            raise TypeError(msg)
        self._instruments = instruments if instruments is not None and instruments.active else None
        self.transport = transport
        self.settings = settings or RelaySettings()
        self._name = name
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._last_cleanup = 0.0
        self._outage_reason = ""
        self._promote_at = 0.0  # promote scheduled messages at or after this (0: at once)
        self._promoted_at = 0.0  # when it last did

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<OutboxRelay {self._name}>"

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set."""
        settings = self.settings
        idle = _MIN_POLL
        outage_tries = 0  # tries that found the transport unavailable, in a row
        outage_started = 0.0
        async with self.store.listen() as wake:
            while not stop.is_set():
                wake.clear()
                try:
                    result = await self._drain(stop)
                    await self._cleanup()
                    if self._instruments is not None:
                        await self._measure()
                except StoreUnavailableError as error:
                    service_degraded(f"the outbox store is unavailable: {error}")
                    idle = min(settings.idle_poll_interval, max(idle * 2, 0.5))
                    await _wait_any(stop, wake, idle)
                    continue
                if result.unavailable:
                    outage_tries += 1
                    reason = (
                        "the transport is unavailable; relaying is paused until it answers "
                        f"(no attempts are counted meanwhile): {self._outage_reason}"
                    )
                    # Under a worker: degraded in app.health(), and the worker logs it once.
                    supervised = service_degraded(reason)
                    if outage_tries == 1:
                        outage_started = time.monotonic()
                        if not supervised:
                            logger.warning("%s: %s", self._name, reason)
                    # New commits must not cut the pause short: only the pause, or stop.
                    await _wait_any(stop, asyncio.Event(), self._outage_pause(outage_tries))
                    continue
                supervised = service_running()
                if outage_tries:
                    if not supervised:  # a worker says "recovered after" itself
                        logger.info(
                            "%s: the transport is available again after %.1fs; relaying resumed",
                            self._name, time.monotonic() - outage_started,
                        )  # fmt: skip
                    outage_tries = 0
                if result.delivered:
                    idle = _MIN_POLL
                timeout = await self._idle_timeout(idle)
                await _wait_any(stop, wake, timeout)
                idle = min(settings.max_poll_interval, idle * 2)

    def _outage_pause(self, tries: int) -> float:
        """The pause after the ``tries``-th try in a row found the transport unavailable:
        doubling from ``outage_pause`` up to ``max_outage_pause``, the upper half jittered (so
        relays do not reconnect in step, and never hammer the broker with near-zero pauses)."""
        settings = self.settings
        backoff = RetryPolicy(
            initial_delay=settings.outage_pause, max_delay=settings.max_outage_pause, jitter=False
        )
        ceiling = backoff.delay(tries)
        return ceiling / 2 + self._rng.uniform(0.0, ceiling / 2)

    async def relay_once(self) -> RelayResult:
        """Promote the scheduled messages that are due, claim one batch, publish it, record
        the outcome; return what happened."""
        now = time.time()
        await self._promote(now)
        async with self._claim(self.settings.batch_size, now) as batch:
            return await self._publish(batch, now)

    async def drain(self) -> int:
        """Relay batches until none is due; return how many messages were delivered."""
        self._promote_at = 0.0  # whatever became due, however long ago
        return (await self._drain(None)).delivered

    async def _drain(self, stop: asyncio.Event | None) -> RelayResult:
        """Relay batches, up to ``settings.pipeline`` in flight, until a claim finds nothing.

        A full claim starts the next claim at once, while its batch is published (if the
        store's claims overlap). A claim that comes back short ends the pipeline: the batches
        in flight finish, and if that claim overlapped one of them (whose keys it could not
        take) the relay claims again alone — and one batch at a time for the rest of this
        drain, because the pending messages have fewer keys than the batches in flight hold,
        and a claim beside them would read every pending row to find nothing. It returns
        after a claim alone found nothing, or once ``stop`` is set and the batches in flight
        are committed.
        """
        batch_size = self.settings.batch_size
        depth = self.settings.pipeline if self.store.claims_overlap else 1
        poll = self.settings.max_poll_interval
        refresh_at = time.time() + poll  # a long drain promotes anyway then (see the module)
        done: list[RelayResult] = []
        in_flight: deque[asyncio.Task[RelayResult]] = deque()

        async def finish(keep: int) -> None:
            while len(in_flight) > keep:
                done.append(await in_flight[0])
                in_flight.popleft()

        try:
            while stop is None or not stop.is_set():
                now = time.time()
                if now >= self._promote_at or now >= refresh_at:
                    await self._promote(now)
                    refresh_at = now + poll
                claimed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
                task = asyncio.create_task(self._claimed_batch(claimed))
                in_flight.append(task)
                await asyncio.wait((claimed, task), return_when=asyncio.FIRST_COMPLETED)
                if not claimed.done():
                    await finish(0)  # the claim failed: its error goes up from here
                count = claimed.result()
                if count >= batch_size:
                    await finish(depth - 1)  # claim the next while this one is published
                    if any(r.unavailable for r in done):
                        break  # the transport is down: no more claims until it answers
                    continue
                alone = len(in_flight) == 1
                await finish(0)
                if any(r.unavailable for r in done):
                    break  # as above (else a short batch is claimed again at once, in a loop)
                if not alone:
                    depth = 1  # too few keys beside the batches in flight: stop overlapping
                elif count == 0:
                    break
        except asyncio.CancelledError:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
            raise
        except BaseException:
            # Let the other batches end as they would have (committed or rolled back).
            await asyncio.gather(*in_flight, return_exceptions=True)
            raise
        await finish(0)
        return RelayResult(
            sum(r.claimed for r in done),
            sum(r.delivered for r in done),
            sum(r.retried for r in done),
            sum(r.dead for r in done),
            sum(r.unavailable for r in done),
        )

    async def _promote(self, now: float) -> None:
        """Make one batch of the scheduled messages due at ``now`` pending; learn when the
        next one is due."""
        limit = self.settings.batch_size
        promotion = await self.store.promote(now, limit)
        self._promoted_at = now
        if promotion.count >= limit:
            self._promote_at = now  # more may be due: the next claim of this drain promotes
        else:
            due = promotion.next_due
            self._promote_at = math.inf if due is None else due
        if promotion.count:
            logger.debug("%s: %d scheduled messages are due", self._name, promotion.count)

    async def _claimed_batch(self, claimed: asyncio.Future[int]) -> RelayResult:
        """``relay_once``, telling ``claimed`` how many messages it holds once it has them."""
        now = time.time()
        async with self._claim(self.settings.batch_size, now) as batch:
            claimed.set_result(len(batch.messages))
            return await self._publish(batch, now)

    async def _publish(self, batch: ClaimedBatch, now: float) -> RelayResult:
        messages = batch.messages
        transport = self.transport
        traced = _Traced(self._instruments, transport, messages) if self._instruments else None
        wire = traced.wire if traced is not None else None
        if isinstance(transport, BatchPublisher):
            failed = await _publish_many(transport, messages, wire)
        else:
            failed = await self._publish_each(messages, wire)
        if traced is not None:
            traced.end(failed)
        retry = self.settings.retry
        delivered: list[str] = []
        stopped_keys: set[str] = set()
        retried = dead = unavailable = 0
        for message in messages:
            key = message.partition_key
            if key is not None and key in stopped_keys:
                continue  # an earlier message of its key failed: it stays, to keep the order
            exc = failed.get(message.message_id)
            if exc is None:
                delivered.append(message.message_id)
                continue
            if key is not None:
                stopped_keys.add(key)
            if isinstance(exc, TransportUnavailableError):
                unavailable += 1  # not the message's failure: it stays as it is
                self._outage_reason = str(exc)
                continue
            attempts = message.attempts + 1
            error = f"{type(exc).__name__}: {exc}"
            if retry.exhausted(attempts):
                dead += 1
                await batch.dead(message.message_id, error, attempts)
                with message_scope(message, self._name):
                    logger.error(
                        "%s: message %s to %s is a dead letter after %d attempts: %s",
                        self._name, message.message_id, message.destination, attempts, error,
                    )  # fmt: skip
            else:
                retried += 1
                wait = retry.delay(attempts, self._rng)
                await batch.failed(message.message_id, error, attempts, now + wait)
                with message_scope(message, self._name):
                    logger.warning(
                        "%s: publishing message %s to %s failed (attempt %d, next in %.2fs): %s",
                        self._name, message.message_id, message.destination, attempts, wait, error,
                    )  # fmt: skip
        if delivered:
            await batch.delivered(delivered, time.time())
        return RelayResult(len(messages), len(delivered), retried, dead, unavailable)

    async def _publish_each(
        self, messages: Sequence[OutboxMessage], wire: Sequence[TransportMessage] | None = None
    ) -> dict[str, BaseException]:
        """Publish one by one, awaiting each; a failure skips the rest of its key.

        ``wire``: the messages as sent, when telemetry rewrote their trace context.
        """
        publish = self.transport.publish
        failed: dict[str, BaseException] = {}
        stopped_keys: set[str] = set()
        for index, message in enumerate(messages):
            key = message.partition_key
            if key is not None and key in stopped_keys:
                continue
            try:
                with message_scope(message, self._name):  # the transport's own records
                    await publish(message.to_transport() if wire is None else wire[index])
            except TransportUnavailableError as exc:
                # Nothing else would get through either: the rest stay pending, untouched.
                failed.update((m.message_id, exc) for m in messages[index:])
                return failed
            except Exception as exc:  # noqa: BLE001 - any transport failure is retried
                failed[message.message_id] = exc
                if key is not None:
                    stopped_keys.add(key)
        return failed

    async def _measure(self) -> None:
        """Read the outbox's counts for the backlog gauge, every ``backlog_interval``: this
        relay loop's own destinations in an app with several transports."""
        instruments = self._instruments
        now = time.time()
        transport = self._transport_name
        if instruments is None or not instruments.backlog_due(now, transport):
            return
        destinations = self._destinations
        if destinations is None or transport is None:
            counts = await self.store.counts()
        else:
            by_destination = await self.store.counts_by_destination()
            mine = [c for d, c in by_destination.items() if destinations.matches(d)]
            counts = {status: sum(c.get(status, 0) for c in mine) for status in OutboxStatus}
        oldest = await self.store.oldest_pending()
        instruments.record_backlog(
            {str(status): n for status, n in counts.items()},
            now,
            oldest_pending_age=None if oldest is None else max(0.0, now - oldest),
            transport=transport,
        )

    async def _cleanup(self) -> None:
        now = time.time()
        if now - self._last_cleanup < self.settings.cleanup_interval:
            return
        self._last_cleanup = now
        purged = await self.store.purge_delivered(now - self.settings.retention)
        if purged:
            logger.debug("%s: deleted %d delivered messages", self._name, purged)
        forgotten = await self.store.purge_handled(now - self.settings.inbox_retention)
        if forgotten:
            logger.debug("%s: deleted %d inbox records", self._name, forgotten)

    async def _idle_timeout(self, idle: float) -> float:
        """How long to sleep: until the next retry or scheduled message is due, capped by the
        poll interval; and when to promote next.

        The last promotion told when the next scheduled message is due. A due time in the
        future may be earlier (a message scheduled since; or a retry's: one promotion for
        nothing). One in the past says that pending rows are due — this relay claims them
        next, or another relay holds their keys — and maybe that a message scheduled by
        another process during the last drain is: promote within ``max_poll_interval`` of
        the last time, not on every short poll.
        """
        cap = self.settings.idle_poll_interval if self.store.hears_every_commit else idle
        due = await self.store.next_due()
        now = time.time()
        if due is None:
            self._promote_at = math.inf
            return cap
        if due > now:
            self._promote_at = min(self._promote_at, due)
        else:
            again = self._promoted_at + self.settings.max_poll_interval
            self._promote_at = min(self._promote_at, again)
        return max(_MIN_POLL, min(cap, due - now))


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    if stop.is_set() or wake.is_set():
        return
    stopped = asyncio.ensure_future(stop.wait())
    woken = asyncio.ensure_future(wake.wait())
    try:
        await asyncio.wait({stopped, woken}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (stopped, woken):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _publish_many(
    transport: BatchPublisher,
    messages: Sequence[OutboxMessage],
    wire: Sequence[TransportMessage] | None = None,
) -> dict[str, BaseException]:
    """Publish the batch at once; the messages that failed, with why.

    Messages the transport held back (behind a failure of their key) are not in the result:
    the caller skips every message of a key after its first failure anyway.
    """
    try:
        await transport.publish_many([m.to_transport() for m in messages] if wire is None else wire)
    except BatchPublishError as exc:
        return exc.failed
    except Exception as exc:  # noqa: BLE001 - nothing is known to be accepted: all failed
        return {m.message_id: exc for m in messages}
    return {}


class _Traced:
    """One batch's ``publish`` spans (kind ``PRODUCER``), each the child of the trace context
    its outbox row carries (the ``create`` span of the write), and the messages as sent:
    with that span's context in their headers, so the consumer's span is its child."""

    __slots__ = ("_destination", "_instruments", "_spans", "_system", "wire")

    def __init__(
        self, instruments: Instruments, transport: Transport, messages: Sequence[OutboxMessage]
    ) -> None:
        self._instruments = instruments
        self._system = system = messaging_system(transport)
        self._spans: list[Any] = []
        self.wire: list[TransportMessage] = []
        tracer = instruments.tracer
        for message in messages:
            wire = message.to_transport()
            if tracer is not None:
                attributes = {
                    SYSTEM: system,
                    OPERATION_TYPE: "send",
                    OPERATION_NAME: "publish",
                    DESTINATION: message.destination,
                    MESSAGE_ID: message.message_id,
                    BATCH_COUNT: len(messages),
                }
                correlation = message.headers.get(CORRELATION_ID)
                if correlation is not None:
                    attributes[CONVERSATION_ID] = correlation
                span = tracer.start_span(
                    f"publish {message.destination}",
                    context=instruments.extract(message.headers),
                    kind=instruments.span_kind.PRODUCER,
                    attributes=attributes,
                )
                headers = dict(message.headers)
                instruments.inject(headers, span)
                wire = _with_headers(wire, headers)
                self._spans.append(span)
            self.wire.append(wire)

    def end(self, failed: dict[str, BaseException]) -> None:
        instruments = self._instruments
        counter = instruments.published
        for index, wire in enumerate(self.wire):
            error = failed.get(wire.message_id)
            if counter is not None:
                attributes = {SYSTEM: self._system, DESTINATION: wire.destination}
                if error is not None:
                    attributes[ERROR_TYPE] = type(error).__name__
                counter.add(1, attributes)
            if self._spans:
                span = self._spans[index]
                if error is not None:
                    instruments.fail(span, error)
                    span.set_attribute(OUTCOME, "retried")
                span.end()


def _with_headers(message: TransportMessage, headers: dict[str, str]) -> TransportMessage:
    return TransportMessage(
        message_id=message.message_id,
        destination=message.destination,
        type_name=message.type_name,
        payload=message.payload,
        schema_version=message.schema_version,
        headers=headers,
        partition_key=message.partition_key,
    )


def messaging_system(transport: object) -> str:
    """The transport's ``messaging.system`` (its ``messaging_system`` attribute: ``rabbitmq``,
    ``nats``, ``redis``, ``kafka``), else ``dockyard``."""
    system = getattr(transport, "messaging_system", None)
    return system if isinstance(system, str) else "dockyard"
