"""``Outbox``: write a message for another service in the current scope's transaction."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from dockyard.messaging._envelope import CURRENT
from dockyard.outbox._message import OutboxMessage
from dockyard.outbox._settings import OutboxConfig
from dockyard.outbox._store import OutboxWriter
from dockyard.transport._port import CAUSATION_ID, CORRELATION_ID

__all__ = ["Outbox", "outgoing_headers"]


def outgoing_headers(
    *,
    correlation_id: str | None,
    causation_id: str | None,
    inherited: Mapping[str, str],
    extra: Mapping[str, str] | None,
) -> dict[str, str]:
    """Headers of an outgoing message: ids, the caller's trace context, then ``extra``."""
    headers = dict(inherited)
    if correlation_id is not None:
        headers[CORRELATION_ID] = correlation_id
    if causation_id is not None:
        headers[CAUSATION_ID] = causation_id
    else:
        headers.pop(CAUSATION_ID, None)
    _inject_trace_context(headers)
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

    __slots__ = ("_config", "_writer")
    __dockyard_reads_envelope__ = True
    """What depends on the outbox (a route, a handler) turns context tracking on: a message
    written while another is handled carries its correlation and causation ids."""

    def __init__(self, writer: OutboxWriter, config: OutboxConfig) -> None:
        self._writer = writer
        self._config = config

    async def add(
        self,
        message: object,
        /,
        *,
        destination: str,
        partition_key: str | None = None,
        message_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Write ``message`` to the outbox, for ``destination``.

        Inside a handler the new message carries the handled message's correlation id, and
        its id as causation id.

        Args:
            message: The event or command (any class the serializer can encode).
            destination: Where the relay publishes it.
            partition_key: Messages sharing a key are published in order.
            message_id: Its id; a new UUID by default.
            headers: Extra string headers.

        Returns:
            The message id.
        """
        envelope = CURRENT.get()
        message_id = message_id or str(uuid.uuid4())
        if envelope is not None:
            correlation_id: str | None = envelope.correlation_id
            causation_id: str | None = envelope.message_id
            inherited = envelope.headers
        else:
            correlation_id, causation_id, inherited = message_id, None, {}
        await self._write(
            message,
            destination,
            partition_key,
            message_id,
            outgoing_headers(
                correlation_id=correlation_id,
                causation_id=causation_id,
                inherited=inherited,
                extra=headers,
            ),
        )
        return message_id

    async def forward(
        self, message: object, /, *, destination: str, partition_key: str | None
    ) -> str:
        """Write the message being handled, with its own envelope's ids (used by routes)."""
        envelope = CURRENT.get()
        if envelope is None or envelope.message is not message:
            return await self.add(message, destination=destination, partition_key=partition_key)
        headers = outgoing_headers(
            correlation_id=envelope.correlation_id,
            causation_id=envelope.causation_id,
            inherited=envelope.headers,
            extra=None,
        )
        message_id = envelope.message_id
        await self._write(message, destination, partition_key, message_id, headers)
        return message_id

    async def _write(
        self,
        message: object,
        destination: str,
        partition_key: str | None,
        message_id: str,
        headers: dict[str, str],
    ) -> None:
        serialized = self._config.serializer.serialize(message)
        now = time.time()
        await self._writer.add(
            [
                OutboxMessage(
                    message_id=message_id,
                    destination=destination,
                    type_name=serialized.type_name,
                    payload=serialized.data,
                    schema_version=serialized.schema_version,
                    headers=headers,
                    partition_key=partition_key,
                    created_at=now,
                    next_attempt_at=now,
                )
            ]
        )


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
