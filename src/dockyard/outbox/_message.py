"""``OutboxMessage``: one row of the outbox, as every store adapter reads and writes it."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dockyard.transport._port import TransportMessage

__all__ = ["OutboxMessage", "OutboxStatus"]


class OutboxStatus(enum.StrEnum):
    """Where a message is in its life: scheduled for later, waiting, delivered (kept for
    ``retention``), or dead."""

    SCHEDULED = "scheduled"
    """Written with a due time in the future; the relay makes it pending when it is due."""
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message waiting in (or kept by) the outbox.

    Attributes:
        message_id: Unique id; consumers deduplicate on it.
        destination: Where the relay publishes it.
        type_name: Stable type name of the payload.
        schema_version: Schema version of the payload.
        payload: The encoded message.
        headers: Correlation and causation ids, trace context and user headers.
        partition_key: Messages sharing a key are published in order; ``None``: no order.
        created_at: When it was written (epoch seconds).
        attempts: Failed publish attempts so far.
        next_attempt_at: When it may be published (epoch seconds); for a scheduled message,
            its due time.
        status: ``scheduled``, ``pending``, ``delivered`` or ``dead``.
        last_error: Why the last attempt failed (for dead letters: why it died).
    """

    message_id: str
    destination: str
    type_name: str
    payload: bytes
    schema_version: int = 1
    headers: Mapping[str, str] = field(default_factory=dict)
    partition_key: str | None = None
    created_at: float = 0.0
    attempts: int = 0
    next_attempt_at: float = 0.0
    status: OutboxStatus = OutboxStatus.PENDING
    last_error: str | None = None

    @property
    def created(self) -> datetime:
        """``created_at`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.created_at, UTC)

    def to_transport(self) -> TransportMessage:
        """The message as the transport sends it."""
        return TransportMessage(
            message_id=self.message_id,
            destination=self.destination,
            type_name=self.type_name,
            payload=self.payload,
            schema_version=self.schema_version,
            headers=self.headers,
            partition_key=self.partition_key,
        )

    @classmethod
    def from_transport(
        cls,
        message: TransportMessage,
        *,
        created_at: float,
        status: OutboxStatus = OutboxStatus.PENDING,
        attempts: int = 0,
        last_error: str | None = None,
    ) -> OutboxMessage:
        """An outbox row for a message received from a transport (consumer dead letters)."""
        return cls(
            message_id=message.message_id,
            destination=message.destination,
            type_name=message.type_name,
            payload=message.payload,
            schema_version=message.schema_version,
            headers=message.headers,
            partition_key=message.partition_key,
            created_at=created_at,
            attempts=attempts,
            next_attempt_at=created_at,
            status=status,
            last_error=last_error,
        )
