"""``Consumer``: the background service that receives one endpoint's messages.

For each delivery it checks the envelope, decodes the payload, opens a scope, records
``(message id, group)`` in the inbox and — only if that is new — hands the message to the
mediator (``publish`` for an event, ``send`` for a command). The scope commits the inbox
record and the handlers' effects together, so a redelivered message (the relay crashed after
publishing, or the consumer after handling) has its effect once.

Up to ``Endpoint.concurrency`` deliveries are handled at once. When handlers raise, the
endpoint's error policies (and the handler's ``@on_error``) decide: retry inline, redeliver
later with backoff, dead-letter or discard. Malformed messages (no type header, unknown type,
undecodable or oversized payload, a compressed payload that does not decompress) become dead
letters with the reason at once, and the consumer goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import time
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any

from dishka import AsyncContainer

from dockyard._logs import message_scope
from dockyard.consumer._endpoint import Endpoint
from dockyard.consumer._policies import Exhausted, failing_handler
from dockyard.exceptions import CorruptEventError, MessageRejectedError, MissingUpcasterError
from dockyard.messaging import IMessageBus, Request
from dockyard.messaging._bus import MessageBus
from dockyard.modules._supervisor import is_outage, service_running
from dockyard.outbox import Inbox, OutboxMessage, OutboxStatus, OutboxStore
from dockyard.outbox._outbox import OUT_OF_BAND_HANDLER
from dockyard.outbox._relay import messaging_system
from dockyard.serialization import RegisteredType, Serializer
from dockyard.serialization._compression import decompress
from dockyard.serialization._serializer import DECODE_ERRORS
from dockyard.telemetry._instruments import (
    CONSUMER_GROUP,
    CONVERSATION_ID,
    DESTINATION,
    MESSAGE_ID,
    MESSAGE_TYPE,
    OPERATION_NAME,
    OPERATION_TYPE,
    OUTCOME,
    SYSTEM,
    Instruments,
)
from dockyard.transport import (
    CAUSATION_ID,
    CONTENT_ENCODING,
    CONTENT_TYPE,
    CORRELATION_ID,
    NO_MESSAGE_ID,
    BacklogReader,
    Delivery,
    Transport,
    TransportMessage,
)

__all__ = ["Consumer", "Outcome", "ScopeFactory"]

logger = logging.getLogger("dockyard.consumer")

ScopeFactory = Callable[[], AbstractAsyncContextManager[AsyncContainer]]


class Outcome(enum.StrEnum):
    """What happened to one delivery (returned by ``Consumer.handle``, for tests and logs)."""

    HANDLED = "handled"
    DUPLICATE = "duplicate"
    """The inbox had it already: the handlers did not run again."""
    RETRY = "retry"
    """Given back to the broker, redelivered after the policy's backoff."""
    DEAD = "dead"
    DISCARDED = "discarded"


class Consumer:
    """A background service running one endpoint (built by ``ConsumerModule``)."""

    __slots__ = (
        "_component",
        "_instruments",
        "_open_scope",
        "_out_of_band",
        "_serializer",
        "_store",
        "_system",
        "endpoint",
        "transport",
    )

    def __init__(
        self,
        endpoint: Endpoint,
        transport: Transport,
        *,
        open_scope: ScopeFactory,
        serializer: Serializer,
        store: OutboxStore,
        component: str = "",
        instruments: Instruments | None = None,
        out_of_band: frozenset[str] = frozenset(),
    ) -> None:
        self.endpoint = endpoint
        self._out_of_band = out_of_band
        """The names of the app's handlers run out of band (``dockyard-handler`` header)."""
        self._instruments = instruments if instruments is not None and instruments.active else None
        self._system = messaging_system(transport)
        self.transport = transport
        self._open_scope = open_scope
        self._serializer = serializer
        self._store = store
        self._component = component

    @property
    def name(self) -> str:
        return self.endpoint.name

    def __repr__(self) -> str:
        return f"<Consumer {self.endpoint.name}>"

    async def run(self, stop: asyncio.Event) -> None:
        """Handle deliveries, ``concurrency`` at a time, until ``stop``; in-flight ones finish."""
        endpoint = self.endpoint
        slots = asyncio.Semaphore(endpoint.concurrency)
        running: set[asyncio.Task[Outcome]] = set()
        stopped: asyncio.Future[bool] = asyncio.ensure_future(stop.wait())
        failed: list[BaseException] = []
        broken: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def settle(task: asyncio.Task[Outcome]) -> None:
            running.discard(task)
            slots.release()
            if not task.cancelled() and (error := task.exception()) is not None:
                failed.append(error)
                if not broken.done():
                    broken.set_result(None)  # stop receiving

        async with self.transport.subscribe(
            endpoint.destination, endpoint.group, prefetch=endpoint.concurrency
        ) as subscription:
            service_running()
            measuring = self._measuring_lag()
            lag = asyncio.create_task(measuring) if measuring is not None else None
            deliveries = aiter(subscription)

            async def receive() -> None:
                # One task receives for the whole run, a slot at a time: no task and no wait
                # per delivery. Between a delivery's arrival and its task nothing is awaited,
                # so a cancellation (the stop) never leaves one taken and not handled.
                while not stop.is_set():
                    await slots.acquire()
                    if failed:
                        return
                    delivery = await anext(deliveries, None)
                    if delivery is None:
                        return
                    task = asyncio.create_task(self.handle(delivery))
                    running.add(task)
                    task.add_done_callback(settle)

            receiver = asyncio.create_task(receive())
            try:
                ends: set[asyncio.Future[Any]] = {receiver, stopped, broken}
                await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
                if receiver.done():
                    receiver.result()  # the subscription's own error, if it raised
                await _cancelled(receiver)
                if running:
                    await asyncio.wait(running)
                if failed:
                    # An outage, as a rule (handler errors go to the policies): leaving the
                    # subscription gives the unsettled deliveries back; the worker's
                    # supervisor restarts this consumer with backoff.
                    raise failed[0]
            finally:
                await _cancelled(receiver)  # (forced to stop: it takes nothing more)
                stopped.cancel()
                if lag is not None:
                    lag.cancel()
                    await asyncio.gather(lag, return_exceptions=True)
                with contextlib.suppress(asyncio.CancelledError):
                    await stopped

    def _measuring_lag(self) -> Coroutine[Any, Any, None] | None:
        """The loop that reads the group's backlog for the ``dockyard.consumer.lag`` gauge,
        every ``backlog_interval``, when metrics are on and the transport can tell."""
        instruments, transport = self._instruments, self.transport
        if instruments is None or instruments.meter is None:
            return None
        if not isinstance(transport, BacklogReader):
            return None
        settings = instruments.settings
        interval = settings.backlog_interval if settings is not None else 15.0
        destination, group = self.endpoint.destination, self.endpoint.group

        async def measure() -> None:
            while True:
                try:
                    depth = await transport.backlog(destination, group)
                except Exception:
                    logger.debug("%s: could not read the backlog", self.name, exc_info=True)
                else:
                    instruments.record_consumer_lag(destination, group, depth)
                await asyncio.sleep(interval)

        return measure()

    async def handle(self, delivery: Delivery) -> Outcome:
        """Check, decode, deduplicate and dispatch one delivery; apply the error policy.

        Log records made meanwhile (the handlers' too) carry the message's ids (``_logs``).
        """
        with message_scope(delivery.message, self.endpoint.name):
            if self._instruments is not None:
                return await self._traced(delivery, self._instruments)
            return await self._handle(delivery)

    async def _traced(self, delivery: Delivery, instruments: Instruments) -> Outcome:
        """``_handle`` in a ``process`` span (kind ``CONSUMER``), the child of the trace
        context the message carries; counted and timed by outcome."""
        message = delivery.message
        attributes: dict[str, Any] = {
            SYSTEM: self._system,
            DESTINATION: message.destination,
            CONSUMER_GROUP: self.endpoint.group,
        }
        span = token = None
        if instruments.tracer is not None:
            headers = message.headers
            detail = {
                **attributes,
                OPERATION_TYPE: "process",
                OPERATION_NAME: "process",
                MESSAGE_ID: message.message_id,
                MESSAGE_TYPE: message.type_name,
                "messaging.delivery.attempt": delivery.attempt,
            }
            correlation = headers.get(CORRELATION_ID)
            if correlation is not None:
                detail[CONVERSATION_ID] = correlation
            span, token = instruments.start(
                f"process {message.destination}",
                detail,
                kind=instruments.span_kind.CONSUMER,
                parent=instruments.extract(headers),
            )
        started = time.perf_counter()
        try:
            outcome = await self._handle(delivery)
        except BaseException as exc:
            if span is not None:
                instruments.finish(span, token, exc if isinstance(exc, Exception) else None)
            raise
        attributes[OUTCOME] = str(outcome)
        if instruments.consumed is not None:
            instruments.consumed.add(1, attributes)
            instruments.process_duration.record(time.perf_counter() - started, attributes)
        if span is not None:
            span.set_attribute(OUTCOME, str(outcome))
            if outcome is Outcome.DEAD or outcome is Outcome.RETRY:
                status, code = instruments.error_status
                span.set_status(status(code, f"the message was {outcome}"))
            instruments.finish(span, token)
        return outcome

    async def _handle(self, delivery: Delivery) -> Outcome:
        message = delivery.message
        problem = self._problem(delivery)
        if problem is not None:
            reason = str(MessageRejectedError(message.message_id, message.destination, problem))
            return await self._dead_letter(delivery, reason)
        entry = self._serializer.registry.get(message.type_name)
        if entry is None:
            reason = (
                f"unknown message type `{message.type_name}`: no handler of this app takes it. "
                f"Hint: add a handler for it, or stop routing it to `{message.destination}`; "
                "then replay the dead letter"
            )
            return await self._dead_letter(delivery, reason)
        handler = message.headers.get(OUT_OF_BAND_HANDLER)
        if handler is not None and handler not in self._out_of_band:
            reason = (
                f"`{message.type_name}` is for handler `{handler}`, which this app does not "
                "run out of band. Hint: list `out_of_band(Handler, destination=...)` for it "
                "in this app's modules, or consume this destination in the app that does; "
                "then replay the dead letter"
            )
            return await self._dead_letter(delivery, reason)
        payload = message.payload
        encoding = message.headers.get(CONTENT_ENCODING)
        if encoding is not None:  # compressed by the sender's outbox (compress_above)
            try:
                payload = decompress(payload, encoding, self.endpoint.max_payload)
            except ValueError as exc:
                error = MessageRejectedError(message.message_id, message.destination, str(exc))
                return await self._dead_letter(delivery, str(error))
        try:
            value = self._serializer.decode_as(entry, message.schema_version, payload)
        except DECODE_ERRORS as exc:
            return await self._dead_letter(delivery, _undecodable(exc, message, entry))
        return await self._handle_decoded(value, delivery)

    async def _handle_decoded(self, value: object, delivery: Delivery) -> Outcome:
        message = delivery.message
        inline = 0
        while True:
            try:
                handled = await self._dispatch(value, delivery)
            except Exception as exc:
                if is_outage(exc):
                    # The database (or a broker) is down, not the handler: nothing is
                    # counted against the message. It goes back when the subscription closes.
                    raise
                policy = self.endpoint.policies.for_error(exc, failing_handler(exc))
                error = f"{type(exc).__name__}: {exc}"
                if inline < policy.inline_retries:
                    inline += 1
                    await asyncio.sleep(policy.inline_delay)
                    continue
                later = policy.retry_later
                if later is not None and not later.exhausted(delivery.attempt):
                    wait = later.delay(delivery.attempt)
                    logger.warning(
                        "%s: message %s failed (attempt %d, again in %.2fs): %s",
                        self.name, message.message_id, delivery.attempt, wait, error,
                    )  # fmt: skip
                    await delivery.nack(delay=wait)
                    return Outcome.RETRY
                if policy.then is Exhausted.DISCARD:
                    logger.warning(
                        "%s: message %s discarded by its error policy: %s",
                        self.name, message.message_id, error,
                    )  # fmt: skip
                    await delivery.ack()
                    return Outcome.DISCARDED
                return await self._dead_letter(delivery, error)
            await delivery.ack()
            service_running()
            return Outcome.HANDLED if handled else Outcome.DUPLICATE

    async def _dispatch(self, value: object, delivery: Delivery) -> bool:
        """Record the message in the inbox and run its handlers, in one scope; ``False``:
        the inbox had it already."""
        message = delivery.message
        headers = message.headers
        component = self._component
        async with self._open_scope() as scope:
            inbox = await scope.get(Inbox, component=component)
            if not await inbox.record(message.message_id, self.endpoint.group):
                return False
            bus = await scope.get(IMessageBus, component=component)
            handler = headers.get(OUT_OF_BAND_HANDLER)
            if handler is not None:  # one handler, not the event's (its stand-in wrote it)
                if not isinstance(bus, MessageBus):
                    msg = f"{type(bus).__name__} (the scope's IMessageBus) cannot run_handler"
                    raise TypeError(msg)
                await bus.run_handler(
                    handler,
                    value,
                    message_id=message.message_id,
                    correlation_id=headers.get(CORRELATION_ID),
                    causation_id=headers.get(CAUSATION_ID),
                    headers=headers,
                )
            elif isinstance(value, Request):
                await bus.send(
                    value,
                    message_id=message.message_id,
                    correlation_id=headers.get(CORRELATION_ID),
                    causation_id=headers.get(CAUSATION_ID),
                    headers=headers,
                )
            else:
                await bus.publish(
                    value,
                    message_id=message.message_id,
                    correlation_id=headers.get(CORRELATION_ID),
                    causation_id=headers.get(CAUSATION_ID),
                    headers=headers,
                )
        return True

    def _problem(self, delivery: Delivery) -> str | None:
        message = delivery.message
        if NO_MESSAGE_ID in message.headers:
            return (
                "it has no message id (no `message-id` header, and the broker keeps none for "
                "it), so a redelivery could not be told from a new message"
            )
        if not message.type_name:
            return "it has no `message-type` header"
        if message.schema_version < 1:
            return "its `schema-version` header is not a positive number"
        size, limit = len(message.payload), self.endpoint.max_payload
        if size > limit:
            return f"its payload of {size:,} bytes is over the endpoint's max_payload ({limit:,})"
        return None

    async def _dead_letter(self, delivery: Delivery, reason: str) -> Outcome:
        message = delivery.message
        logger.error(
            "%s: message %s (%s) is a dead letter: %s",
            self.name, message.message_id, message.type_name, reason,
        )  # fmt: skip
        if NO_MESSAGE_ID in message.headers:  # stored under its made-up id: replays keep it
            headers = {k: v for k, v in message.headers.items() if k != NO_MESSAGE_ID}
            message = dataclasses.replace(message, headers=headers)
        dead = OutboxMessage.from_transport(
            message,
            created_at=time.time(),
            status=OutboxStatus.DEAD,
            attempts=delivery.attempt,
            last_error=f"{self.name}: {reason}",
        )
        await self._store.add_dead_letter(dead)
        await delivery.ack()
        return Outcome.DEAD


def _undecodable(error: Exception, message: TransportMessage, entry: RegisteredType) -> str:
    """A received message's decode error in a consumer's words (the serializer's own words
    are about stored events and stream positions)."""
    version = message.schema_version
    if isinstance(error, MissingUpcasterError):
        if error.stored_version > error.current_version:
            return (
                f"`{message.type_name}` was sent at schema version {version}, newer than this "
                f"app's version {error.current_version}. Hint: deploy the version that sends "
                "it to this consumer's app too, then replay the dead letter"
            )
        return (
            f"`{message.type_name}` was sent at schema version {version} and this app is at "
            f"version {error.current_version}, with no upcaster from {version}. Hint: register "
            f"one with `registry.upcaster({message.type_name!r}, from_version={version})`, "
            "then replay the dead letter"
        )
    detail = error.detail if isinstance(error, CorruptEventError) else str(error)
    sent_as = message.headers.get(CONTENT_TYPE)
    if sent_as is not None and sent_as != entry.content_type:
        return (
            f"the payload of `{message.type_name}` is `{sent_as}` and this app decodes it as "
            f"`{entry.content_type}` ({type(entry.codec).__name__}), so it cannot be "
            f"decoded: {detail}. Hint: give `{message.type_name}` the sender's codec here "
            "(`TypeRegistry.register(cls, codec=...)` or `@event_type(codec=...)`); then "
            "replay the dead letter"
        )
    return (
        f"the payload of `{message.type_name}` (schema version {version}) cannot be decoded: "
        f"{detail}. Hint: fix what sent it, or add an upcaster if the class changed shape "
        "without a schema version bump; then replay the dead letter"
    )


async def _cancelled(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` if it is still running, and wait until it has ended."""
    if not task.done():
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)
