"""``DeadLetters``: list, replay and purge messages that could not be delivered or handled."""

from __future__ import annotations

import builtins
import time
from collections.abc import Sequence

from dockyard.exceptions import DeadLetterNotFoundError
from dockyard.outbox._message import OutboxMessage
from dockyard.outbox._store import OutboxStore

__all__ = ["DeadLetters"]


class DeadLetters:
    """The dead letters of this app's outbox (inject it, or ``await app.get(DeadLetters)``).

    A dead letter is a message the relay could not publish after its last attempt, or one a
    consumer of this app could not decode or handle; ``last_error`` says why. Replaying puts
    it back in the outbox as a new pending message with the same id, so consumers that did
    handle it before skip it through their inbox.
    """

    __slots__ = ("_store",)

    def __init__(self, store: OutboxStore) -> None:
        self._store = store

    async def list(
        self,
        *,
        limit: int = 100,
        after: str | None = None,
        destination: str | None = None,
        type_name: str | None = None,
        since: float | None = None,
        error: str | None = None,
    ) -> builtins.list[OutboxMessage]:
        """Dead letters in outbox order; page with ``after=<last message id>``.

        Args:
            limit: At most this many.
            after: The last message id of the previous page.
            destination: Only those to this destination.
            type_name: Only those of this stable type name.
            since: Only those written (``created_at``) at or after this time (epoch seconds).
            error: Only those whose ``last_error`` contains this text, ignoring case.
        """
        return await self._store.dead_letters(
            limit=limit,
            after=after,
            destination=destination,
            type_name=type_name,
            since=since,
            error=error,
        )

    async def count(
        self,
        *,
        destination: str | None = None,
        type_name: str | None = None,
        since: float | None = None,
        error: str | None = None,
    ) -> int:
        """How many dead letters ``list`` finds with these filters, over all pages."""
        return await self._store.count_dead_letters(
            destination=destination, type_name=type_name, since=since, error=error
        )

    async def replay(self, *message_ids: str) -> builtins.list[str]:
        """Make these dead letters pending again, attempts reset; return their ids.

        Raises:
            DeadLetterNotFoundError: Some id is not a dead letter (nothing is replayed then).
        """
        await self._check(message_ids)
        return await self._store.replay(message_ids, time.time())

    async def replay_all(self) -> builtins.list[str]:
        """Replay every dead letter; return their ids."""
        return await self._store.replay(None, time.time())

    async def purge(self, *message_ids: str) -> builtins.list[str]:
        """Delete these dead letters for good; return their ids.

        Raises:
            DeadLetterNotFoundError: Some id is not a dead letter (nothing is purged then).
        """
        await self._check(message_ids)
        return await self._store.purge_dead(message_ids)

    async def purge_all(self) -> builtins.list[str]:
        """Delete every dead letter; return their ids."""
        return await self._store.purge_dead(None)

    async def _check(self, message_ids: Sequence[str]) -> None:
        missing = []
        for message_id in message_ids:
            found = await self._store.get(message_id)
            if found is None or found.status != "dead":
                missing.append(message_id)
        if missing:
            raise DeadLetterNotFoundError(missing)
