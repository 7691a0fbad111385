"""``Listener``: one endpoint's consumer with a concurrency limit and error policies.

It builds on ``dockyard.outbox.Consumer`` (decode, inbox dedupe, dispatch in a fresh scope,
dead letters) and adds what a broker endpoint needs: up to ``concurrency`` messages handled
at once, per-handler and per-exception error policies, and a guard that turns malformed
messages (no type header, unknown type, undecodable payload, oversized payload) into dead
letters with the reason, without stopping the endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from dataclasses import dataclass, field
from typing import Any

from dockyard.consumer._policies import ErrorPolicies, Exhausted, failing_handler
from dockyard.exceptions import MessageRejectedError, UnknownEventTypeError
from dockyard.modules._supervisor import is_outage, service_running
from dockyard.outbox import Consume, Consumer, OutboxStore
from dockyard.outbox._consumer import ScopeFactory
from dockyard.serialization import Serializer
from dockyard.serialization._serializer import DECODE_ERRORS
from dockyard.transport import Delivery, Transport

__all__ = ["Endpoint", "Listener", "Outcome", "listen"]

logger = logging.getLogger("dockyard.consumer")

DEFAULT_MAX_PAYLOAD = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What an app receives: ``destination``'s messages, as consumer group ``group``.

    Attributes:
        destination: As the producer routes it (``route(E).to("rabbit://orders")``).
        group: The consumer group (each group gets every message; its consumers share them).
        concurrency: Messages handled at once (the subscription's prefetch). Above 1, the
            broker hands messages out concurrently: per-key order holds only at 1.
        policies: What to do when a handler raises.
        max_payload: Bigger payloads are dead letters, not decoded.
    """

    destination: str
    group: str
    concurrency: int = 1
    policies: ErrorPolicies = field(default_factory=ErrorPolicies)
    max_payload: int = DEFAULT_MAX_PAYLOAD

    def __post_init__(self) -> None:
        if not self.destination or not self.group:
            msg = "listen() needs a destination and a group"
            raise ValueError(msg)
        if self.concurrency < 1 or self.max_payload < 1:
            msg = "Endpoint.concurrency and max_payload must be >= 1"
            raise ValueError(msg)

    @property
    def name(self) -> str:
        return f"listener:{self.destination}:{self.group}"


def listen(
    destination: str,
    *,
    group: str,
    concurrency: int = 1,
    policies: ErrorPolicies | None = None,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
) -> Endpoint:
    """An endpoint for ``ConsumerModule.register(endpoints=[...])``."""
    return Endpoint(destination, group, concurrency, policies or ErrorPolicies(), max_payload)


class Outcome(enum.StrEnum):
    """What happened to one delivery."""

    HANDLED = "handled"
    DUPLICATE = "duplicate"
    RETRY = "retry"
    DEAD = "dead"
    DISCARDED = "discarded"


class Listener:
    """A background service running one endpoint (see ``ConsumerModule``)."""

    __slots__ = ("_consumer", "_serializer", "endpoint", "transport")

    def __init__(
        self,
        endpoint: Endpoint,
        transport: Transport,
        *,
        open_scope: ScopeFactory,
        serializer: Serializer,
        store: OutboxStore,
        component: str = "",
    ) -> None:
        self.endpoint = endpoint
        self.transport = transport
        self._serializer = serializer
        self._consumer = Consumer(
            Consume(endpoint.destination, endpoint.group),
            transport,
            open_scope=open_scope,
            serializer=serializer,
            store=store,
            component=component,
        )

    @property
    def name(self) -> str:
        return self.endpoint.name

    def __repr__(self) -> str:
        return f"<Listener {self.endpoint.name}>"

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
            deliveries = aiter(subscription)
            try:
                while not stop.is_set():
                    await slots.acquire()
                    if failed:
                        break
                    receive: asyncio.Future[Any] = asyncio.ensure_future(anext(deliveries, None))
                    await asyncio.wait(
                        {receive, stopped, broken}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if not receive.done():
                        receive.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await receive
                        break
                    delivery = receive.result()
                    if delivery is None:
                        break
                    task = asyncio.create_task(self.handle(delivery))
                    running.add(task)
                    task.add_done_callback(settle)
                if running:
                    await asyncio.wait(running)
                if failed:
                    # An outage, as a rule (handler errors go to the policies): leaving the
                    # subscription gives the unsettled deliveries back; the worker's
                    # supervisor restarts this listener with backoff.
                    raise failed[0]
            finally:
                stopped.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stopped

    async def handle(self, delivery: Delivery) -> Outcome:
        """Check, decode, deduplicate and dispatch one delivery; apply the error policy."""
        message = delivery.message
        problem = self._problem(delivery)
        if problem is not None:
            reason = str(MessageRejectedError(message.message_id, message.destination, problem))
            return await self._dead(delivery, reason)
        entry = self._serializer.registry.get(message.type_name)
        if entry is None:
            return await self._dead(delivery, str(UnknownEventTypeError(message.type_name)))
        try:
            value = self._serializer.decode_as(entry, message.schema_version, message.payload)
        except DECODE_ERRORS as exc:
            return await self._dead(delivery, str(exc))
        return await self._dispatch(value, delivery)

    async def _dispatch(self, value: object, delivery: Delivery) -> Outcome:
        message = delivery.message
        inline = 0
        while True:
            try:
                handled = await self._consumer._dispatch(value, delivery)  # noqa: SLF001
            except Exception as exc:
                if is_outage(exc):
                    raise  # the database or a broker, not the handler: nothing is counted
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
                return await self._dead(delivery, error)
            await delivery.ack()
            service_running()
            return Outcome.HANDLED if handled else Outcome.DUPLICATE

    def _problem(self, delivery: Delivery) -> str | None:
        message = delivery.message
        if not message.type_name:
            return "it has no `message-type` header"
        if message.schema_version < 1:
            return "its `schema-version` header is not a positive number"
        size, limit = len(message.payload), self.endpoint.max_payload
        if size > limit:
            return f"its payload of {size:,} bytes is over the endpoint's max_payload ({limit:,})"
        return None

    async def _dead(self, delivery: Delivery, reason: str) -> Outcome:
        await self._consumer._dead_letter(delivery, reason)  # noqa: SLF001
        return Outcome.DEAD
