"""The outbox and inbox ports. Every adapter passes ``OutboxContract``.

Writers (``OutboxWriter``, ``Inbox``) are scoped: they write in the scope's transaction, so a
routed message and an inbox record commit with the handler's effects. ``OutboxStore`` works
in its own transactions: the relay's claims and the dead-letter operations.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from dockyard.outbox._message import OutboxMessage, OutboxStatus

__all__ = ["Cancellation", "ClaimedBatch", "Inbox", "OutboxStore", "OutboxWriter", "Promotion"]


class Cancellation(enum.StrEnum):
    """What ``Outbox.cancel`` found."""

    CANCELLED = "cancelled"
    """It was waiting (scheduled, pending, retrying or a dead letter): it is deleted when the
    scope commits and is never published."""
    ALREADY_PUBLISHED = "already_published"
    """The relay published it before (it is kept for ``RelaySettings.retention``)."""
    NOT_FOUND = "not_found"
    """No such message: never written, rolled back, cancelled, or published and purged."""


@dataclass(frozen=True, slots=True)
class Promotion:
    """What ``OutboxStore.promote`` did."""

    count: int
    """Scheduled messages it made pending (a message whose id was already in the outbox is
    dropped instead, and counted)."""
    next_due: float | None
    """When the next scheduled message not taken is due (``None``: none is scheduled). With
    ``count == limit`` more may be due already."""


class OutboxWriter(Protocol):
    """Adds (and cancels) messages in the outbox in the current scope's transaction."""

    async def add(self, messages: Sequence[OutboxMessage], /) -> None:
        """Write ``messages``; they become visible to relays when the scope commits.

        A message whose status is ``SCHEDULED`` waits until its ``next_attempt_at``
        (``OutboxStore.promote``); the others are pending.
        """
        ...

    async def cancel(self, message_id: str, /) -> Cancellation:
        """Delete the message unless it was published; effective when the scope commits.

        A message a relay is publishing right now is waited for (its batch's outcome decides).
        Until the scope ends, relays do not publish it, nor later messages of its key.
        """
        ...


class Inbox(Protocol):
    """Remembers which handler has handled which message, in the scope's transaction."""

    async def record(self, message_id: str, handler: str, /) -> bool:
        """Record that ``handler`` handles ``message_id`` now.

        Returns:
            ``True`` the first time; ``False`` if it was handled before (or is being handled
            by a concurrent scope), in which case the caller must skip its effects. The record
            commits, or rolls back, with the scope.
        """
        ...


class ClaimedBatch(Protocol):
    """Messages one relay holds until the batch ends; no other relay sees them meanwhile."""

    @property
    def messages(self) -> Sequence[OutboxMessage]:
        """Claimed messages in outbox order, at most one run of each partition key."""
        ...

    async def delivered(self, message_ids: Sequence[str], now: float, /) -> None:
        """Mark ``message_ids`` delivered at ``now`` (kept until the retention ends)."""
        ...

    async def failed(
        self, message_id: str, error: str, attempts: int, next_attempt_at: float, /
    ) -> None:
        """Record a failed attempt; the message waits until ``next_attempt_at``."""
        ...

    async def dead(self, message_id: str, error: str, attempts: int, /) -> None:
        """Turn the message into a dead letter with ``error``."""
        ...


class OutboxStore(Protocol):
    """What relays and the dead-letter API do with the outbox, each in its own transaction."""

    @property
    def hears_every_commit(self) -> bool:
        """Whether ``listen`` hears every commit, from any process (PostgreSQL ``LISTEN``, or
        memory); if not (SQLite shared by processes), relays also poll."""
        ...

    @property
    def claims_overlap(self) -> bool:
        """Whether two claims can be open at once without waiting for each other (each takes
        what the other does not hold, with the same order guarantees); if so, a relay claims
        its next batch while the current one is published (``RelaySettings.pipeline``)."""
        ...

    def claim(self, limit: int, now: float, /) -> AbstractAsyncContextManager[ClaimedBatch]:
        """Claim up to ``limit`` pending messages due at ``now``, for the block's duration.

        Order within a partition key is kept across concurrent claims: a message is claimed
        only when no earlier message of its key is claimed by someone else or waiting for a
        retry. Leaving the block without an error commits the marks made on the batch;
        with an error (or a crash) every claimed message is pending again.
        """
        ...

    def listen(self) -> AbstractAsyncContextManager[asyncio.Event]:
        """While open, the event is set whenever new messages may have been committed."""
        ...

    async def next_due(self) -> float | None:
        """The earliest ``next_attempt_at`` of a pending or a scheduled message, or ``None``."""
        ...

    async def promote(self, now: float, limit: int, /) -> Promotion:
        """Make up to ``limit`` scheduled messages due at ``now`` pending.

        They join the end of the outbox (of their key's order) in due order, then in the
        order they were scheduled. Concurrent calls, from any process, never promote a message
        twice; a message being cancelled by an open scope is skipped until the scope ends.
        """
        ...

    async def purge_delivered(self, before: float, /) -> int:
        """Delete messages delivered before ``before``; return how many."""
        ...

    async def purge_handled(self, before: float, /) -> int:
        """Delete the inbox's records of messages handled before ``before``; return how many.
        A message redelivered after its record is gone is handled again."""
        ...

    async def get(self, message_id: str, /) -> OutboxMessage | None:
        """The message with that id, whatever its status."""
        ...

    async def counts(self) -> Mapping[OutboxStatus, int]:
        """How many messages are in each status."""
        ...

    async def oldest_pending(self) -> float | None:
        """When the oldest message waiting for the relay was written (``created_at``, epoch
        seconds), or ``None`` when none waits; scheduled messages wait by design and do not
        count until they are due and promoted."""
        ...

    async def counts_by_destination(self) -> Mapping[str, Mapping[OutboxStatus, int]]:
        """How many messages each destination has in each status (destinations by name;
        every status present, zero when none)."""
        ...

    async def dead_letters(
        self,
        *,
        limit: int = 100,
        after: str | None = None,
        destination: str | None = None,
        type_name: str | None = None,
        since: float | None = None,
        error: str | None = None,
    ) -> list[OutboxMessage]:
        """Dead letters in outbox order, ``limit`` at a time after message id ``after``.

        Args:
            limit: At most this many.
            after: The last message id of the previous page.
            destination: Only those to this destination.
            type_name: Only those of this stable type name.
            since: Only those written (``created_at``) at or after this time (epoch seconds).
            error: Only those whose ``last_error`` contains this text, ignoring case.
        """
        ...

    async def count_dead_letters(
        self,
        *,
        destination: str | None = None,
        type_name: str | None = None,
        since: float | None = None,
        error: str | None = None,
    ) -> int:
        """How many dead letters ``dead_letters`` would list with these filters, all pages."""
        ...

    async def add_dead_letter(self, message: OutboxMessage, /) -> None:
        """Store ``message`` as a dead letter (replacing a row with the same id)."""
        ...

    async def replay(self, message_ids: Sequence[str] | None, now: float, /) -> list[str]:
        """Make dead letters pending again (all of them with ``None``); return their ids."""
        ...

    async def purge_dead(self, message_ids: Sequence[str] | None, /) -> list[str]:
        """Delete dead letters (all of them with ``None``); return their ids."""
        ...
