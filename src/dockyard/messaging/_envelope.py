"""Envelopes: the ids, time and headers around a message, and the injectable context.

Ids cost nothing until read: an envelope stores its parent and creates its message id on first
access. Envelopes exist only while context tracking is on (see ``MessagingSettings``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType

from dockyard.exceptions import MessageContextError

__all__ = ["Envelope", "MessageContext"]

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})

CURRENT: ContextVar[Envelope | None] = ContextVar("dockyard_message_envelope", default=None)
"""The envelope of the message being handled in this task, if tracking is on."""


class Envelope:
    """A message with its metadata. Read-only; ids are created on first read.

    Attributes:
        message: The message itself.
        parent: The envelope of the message being handled when this one was sent, if any.
    """

    __slots__ = (
        "_causation_id",
        "_correlation_id",
        "_created",
        "_headers",
        "_message_id",
        "message",
        "parent",
    )

    def __init__(
        self,
        message: object,
        parent: Envelope | None,
        message_id: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message
        self.parent = parent
        self._message_id = message_id
        self._correlation_id = correlation_id
        self._causation_id = causation_id
        self._headers = headers
        self._created = time.time()

    @property
    def message_id(self) -> str:
        """This message's id: given by the sender, or a random UUID made on first read."""
        if self._message_id is None:
            self._message_id = str(uuid.uuid4())
        return self._message_id

    @property
    def correlation_id(self) -> str:
        """The id shared by every message of one conversation: given, inherited from the
        parent, or (for the first message) its own message id."""
        if self._correlation_id is None:
            parent = self.parent
            self._correlation_id = parent.correlation_id if parent else self.message_id
        return self._correlation_id

    @property
    def causation_id(self) -> str | None:
        """The id of the message whose handler sent this one (given, or the parent's id)."""
        if self._causation_id is None and self.parent is not None:
            self._causation_id = self.parent.message_id
        return self._causation_id

    @property
    def timestamp(self) -> datetime:
        """When the message was sent (UTC)."""
        return datetime.fromtimestamp(self._created, UTC)

    @property
    def headers(self) -> Mapping[str, str]:
        """Free-form string headers given by the sender (not inherited)."""
        return self._headers if self._headers is not None else _NO_HEADERS

    def __repr__(self) -> str:
        return f"<Envelope {type(self.message).__qualname__} id={self.message_id}>"


class MessageContext:
    """Injectable view of the message being handled: ``def __init__(self, ctx: MessageContext)``.

    Read it inside ``handle`` (not in the constructor: one handler instance may serve several
    messages in one scope). Declaring the dependency turns context tracking on for the messages
    whose handlers (or behaviors) depend on it, directly or through their dependencies.
    """

    __slots__ = ("_tracking",)
    __dockyard_reads_envelope__ = True
    """Depending on this class turns tracking on (``Outbox`` is marked the same way)."""

    def __init__(self, *, tracking: bool) -> None:
        self._tracking = tracking

    @property
    def envelope(self) -> Envelope:
        """The envelope of the message being handled.

        Raises:
            MessageContextError: Outside a handler or behavior, or with tracking off.
        """
        current = CURRENT.get()
        if current is None:
            raise MessageContextError(tracking=self._tracking)
        return current

    @property
    def message_id(self) -> str:
        return self.envelope.message_id

    @property
    def correlation_id(self) -> str:
        return self.envelope.correlation_id

    @property
    def causation_id(self) -> str | None:
        return self.envelope.causation_id

    @property
    def timestamp(self) -> datetime:
        return self.envelope.timestamp

    @property
    def headers(self) -> Mapping[str, str]:
        return self.envelope.headers
