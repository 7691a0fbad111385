"""``Outbox``: write a message for another service in the current scope's transaction."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping, MutableMapping
from datetime import datetime, timedelta
from typing import Any

from dockyard._type_name import type_name
from dockyard.messaging._envelope import CURRENT
from dockyard.outbox._message import OutboxMessage, OutboxStatus
from dockyard.outbox._settings import OutboxConfig
from dockyard.outbox._store import Cancellation, OutboxWriter
from dockyard.serialization._compression import GZIP, compress
from dockyard.telemetry._instruments import (
    CONVERSATION_ID,
    DESTINATION,
    IN_PROCESS,
    MESSAGE_ID,
    MESSAGE_TYPE,
    OPERATION_NAME,
    OPERATION_TYPE,
    SYSTEM,
    Instruments,
)
from dockyard.transport._port import CAUSATION_ID, CONTENT_ENCODING, CONTENT_TYPE, CORRELATION_ID

__all__ = ["OUT_OF_BAND_HANDLER", "Outbox", "outgoing_headers"]

OUT_OF_BAND_HANDLER = "dockyard-handler"
"""The header naming the one handler a consumer runs for the message (``out_of_band``)."""


def outgoing_headers(
    *,
    correlation_id: str | None,
    causation_id: str | None,
    inherited: Mapping[str, str],
    extra: Mapping[str, str] | None,
    inject: Callable[[MutableMapping[str, str]], None] | None = None,
) -> dict[str, str]:
    """Headers of an outgoing message: ids, the caller's trace context, then ``extra``.

    ``inject`` writes the trace context (the app's telemetry propagator); by default, the
    global OpenTelemetry propagator's if OpenTelemetry is installed.
    """
    headers = dict(inherited)
    if correlation_id is not None:
        headers[CORRELATION_ID] = correlation_id
    if causation_id is not None:
        headers[CAUSATION_ID] = causation_id
    else:
        headers.pop(CAUSATION_ID, None)
    # Names the handler the *handled* message was for: not this one's (``out_of_band``).
    headers.pop(OUT_OF_BAND_HANDLER, None)
    (inject or _inject_trace_context)(headers)
    if extra:
        headers.update(extra)
    return headers


class Outbox:
    """Writes messages for other services; the relay publishes them after the commit.

    Inject it in a handler to send something that has no route, or to choose the destination
    and key per message. Routed events (``route(E).to(...)``) go through it too.

    Example:
        ```python
        class NotifyShipping(EventHandler[OrderPaid]):
            def __init__(self, outbox: Outbox) -> None:
                self._outbox = outbox

            async def handle(self, event: OrderPaid) -> None:
                await self._outbox.add(ShipOrder(event.order_id), destination="shipping")
        ```
    """

    __slots__ = ("_config", "_instruments", "_writer")
    __dockyard_reads_envelope__ = True
    """What depends on the outbox (a route, a handler) turns context tracking on: a message
    written while another is handled carries its correlation and causation ids."""

    def __init__(
        self, writer: OutboxWriter, config: OutboxConfig, instruments: Instruments
    ) -> None:
        self._writer = writer
        self._config = config
        self._instruments = instruments

    async def add(
        self,
        message: object,
        /,
        *,
        destination: str,
        partition_key: str | None = None,
        message_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        deliver_at: datetime | float | None = None,
        deliver_after: timedelta | float | None = None,
    ) -> str:
        """Write ``message`` to the outbox, for ``destination``.

        Inside a handler the new message carries the handled message's correlation id, and
        its id as causation id.

        Args:
            message: The event or command (any class the serializer can encode).
            destination: Where the relay publishes it.
            partition_key: Messages sharing a key are published in order; a scheduled
                message takes its place in that order when it is due.
            message_id: Its id; a new UUID by default. ``cancel`` takes it.
            headers: Extra string headers.
            deliver_at: Publish it at this time, not before: an aware ``datetime`` or epoch
                seconds. A time already past means now.
            deliver_after: Publish it after this delay (a ``timedelta`` or seconds).

        Returns:
            The message id.

        Raises:
            ValueError: Both ``deliver_at`` and ``deliver_after``, a naive ``datetime``, a
                negative delay, or a time that is not finite.
        """
        due = _due_time(deliver_at, deliver_after)
        envelope = CURRENT.get()
        message_id = message_id or str(uuid.uuid4())
        if envelope is not None:
            correlation_id: str | None = envelope.correlation_id
            causation_id: str | None = envelope.message_id
            inherited = envelope.headers
        else:
            correlation_id, causation_id, inherited = message_id, None, {}
        await self._send(
            message,
            destination,
            partition_key,
            message_id,
            correlation_id,
            causation_id,
            inherited,
            headers,
            due,
        )
        return message_id

    def _span(
        self, message: object, destination: str, message_id: str, correlation_id: str | None
    ) -> tuple[Any, Any]:
        """The ``create`` span of one outbox write (its context goes in the headers)."""
        instruments = self._instruments
        attributes = {
            SYSTEM: IN_PROCESS,
            OPERATION_TYPE: "create",
            OPERATION_NAME: "outbox",
            DESTINATION: destination,
            MESSAGE_ID: message_id,
            MESSAGE_TYPE: type_name(type(message)),
        }
        if correlation_id is not None:
            attributes[CONVERSATION_ID] = correlation_id
        return instruments.start(
            f"create {destination}", attributes, kind=instruments.span_kind.PRODUCER
        )

    async def cancel(self, message_id: str, /) -> Cancellation:
        """Cancel a message that was not published yet, with the scope's transaction.

        Meant for scheduled messages (a timeout that is no longer needed), it works on any
        message still waiting in the outbox. Until the scope ends, relays publish neither it
        nor later messages of its key; if the scope rolls back, nothing is cancelled.

        Returns:
            ``Cancellation.CANCELLED``: it will never be published.
            ``Cancellation.ALREADY_PUBLISHED``: too late, the relay published it.
            ``Cancellation.NOT_FOUND``: no such message (or published and purged since).
        """
        return await self._writer.cancel(message_id)

    async def forward(
        self, message: object, /, *, destination: str, partition_key: str | None
    ) -> str:
        """Write the message being handled, with its own envelope's ids (used by routes)."""
        envelope = CURRENT.get()
        if envelope is None or envelope.message is not message:
            return await self.add(message, destination=destination, partition_key=partition_key)
        message_id = envelope.message_id
        await self._send(
            message,
            destination,
            partition_key,
            message_id,
            envelope.correlation_id,
            envelope.causation_id,
            envelope.headers,
            None,
        )
        return message_id

    async def _send(
        self,
        message: object,
        destination: str,
        partition_key: str | None,
        message_id: str,
        correlation_id: str | None,
        causation_id: str | None,
        inherited: Mapping[str, str],
        extra: Mapping[str, str] | None,
        due: float | None = None,
    ) -> None:
        """Write one message with its headers; with telemetry, in a ``create`` span whose
        trace context the headers carry."""
        instruments = self._instruments
        if instruments.tracer is None:
            headers = outgoing_headers(
                correlation_id=correlation_id,
                causation_id=causation_id,
                inherited=inherited,
                extra=extra,
            )
            await self._write(message, destination, partition_key, message_id, headers, due)
            return
        span, token = self._span(message, destination, message_id, correlation_id)
        try:
            headers = outgoing_headers(
                correlation_id=correlation_id,
                causation_id=causation_id,
                inherited=inherited,
                extra=extra,
                inject=instruments.inject,
            )
            await self._write(message, destination, partition_key, message_id, headers, due)
        except Exception as exc:
            instruments.finish(span, token, exc)
            raise
        instruments.finish(span, token)

    async def _write(
        self,
        message: object,
        destination: str,
        partition_key: str | None,
        message_id: str,
        headers: dict[str, str],
        due: float | None = None,
    ) -> None:
        config = self._config
        serialized = config.serializer.serialize(message)
        payload = serialized.data
        # Set here, after the inherited headers: the handled message's own say nothing of this.
        headers[CONTENT_TYPE] = serialized.content_type
        limit = config.compress_above
        if limit is not None and len(payload) > limit:
            payload = compress(payload)
            headers[CONTENT_ENCODING] = GZIP
        else:
            headers.pop(CONTENT_ENCODING, None)
        now = time.time()
        scheduled = due is not None and due > now
        await self._writer.add(
            [
                OutboxMessage(
                    message_id=message_id,
                    destination=destination,
                    type_name=serialized.type_name,
                    payload=payload,
                    schema_version=serialized.schema_version,
                    headers=headers,
                    partition_key=partition_key,
                    created_at=now,
                    next_attempt_at=due if scheduled and due is not None else now,
                    status=OutboxStatus.SCHEDULED if scheduled else OutboxStatus.PENDING,
                )
            ]
        )


def _due_time(
    deliver_at: datetime | float | None, deliver_after: timedelta | float | None
) -> float | None:
    """The due time, in epoch seconds, of ``Outbox.add``'s arguments."""
    if deliver_at is None and deliver_after is None:
        return None
    if deliver_at is not None and deliver_after is not None:
        msg = "Outbox.add takes deliver_at or deliver_after, not both"
        raise ValueError(msg)
    if isinstance(deliver_at, datetime):
        if deliver_at.tzinfo is None or deliver_at.utcoffset() is None:
            msg = (
                f"Outbox.add(deliver_at={deliver_at!r}) needs a timezone-aware datetime. "
                "Hint: datetime.now(UTC) + timedelta(...), or epoch seconds"
            )
            raise ValueError(msg)
        due = deliver_at.timestamp()
    elif deliver_at is not None:
        due = float(deliver_at)
    else:
        delay = (
            deliver_after.total_seconds()
            if isinstance(deliver_after, timedelta)
            else float(deliver_after)  # type: ignore[arg-type]  # not None: checked above
        )
        if delay < 0:
            msg = f"Outbox.add(deliver_after=...) must not be negative, got {delay} s"
            raise ValueError(msg)
        due = time.time() + delay
    if not math.isfinite(due):
        msg = f"Outbox.add: the due time must be finite, got {due}"
        raise ValueError(msg)
    return due


_propagator: Any = None
_propagator_loaded = False


def _inject_trace_context(headers: dict[str, str]) -> None:
    """Add the current OpenTelemetry span's ``traceparent`` if OpenTelemetry is installed."""
    global _propagator, _propagator_loaded  # noqa: PLW0603 - a lazy, process-wide lookup
    if not _propagator_loaded:
        _propagator_loaded = True
        try:
            from opentelemetry import propagate  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            _propagator = None
        else:
            _propagator = propagate
    if _propagator is not None:
        _propagator.inject(headers)
