"""What the event store, the unit of work and the outbox storage refuse or cannot do."""

from __future__ import annotations

from collections.abc import Sequence

from dockyard._errors.base import DockyardError

__all__ = [
    "AggregateNotFoundError",
    "ConcurrencyError",
    "DeadLetterNotFoundError",
    "DuplicateEventIdError",
    "InvalidStreamIdError",
    "StorageError",
    "StoreUnavailableError",
    "StreamDeletedError",
]


class StorageError(DockyardError):
    """A store refused a write or a lookup, or could not be reached."""


def _expected_text(expected: object) -> str:
    return f"version {expected}" if isinstance(expected, int) else str(expected)


class ConcurrencyError(StorageError):
    """Another writer changed the stream since the caller read it (optimistic concurrency)."""

    def __init__(self, stream_id: str, expected: object, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(stream_id, expected, actual)

    def __str__(self) -> str:
        actual = "does not exist" if self.actual == 0 else f"is at version {self.actual}"
        return (
            f"Stream `{self.stream_id}` was expected at {_expected_text(self.expected)} "
            f"but {actual}. Hint: reload the stream, decide again on the fresh state and "
            "retry; pass `expected_version=ANY` only if the order of writers does not matter."
        )


class StreamDeletedError(StorageError):
    """The stream has a tombstone: it cannot be appended to or read again."""

    def __init__(self, stream_id: str, version: int, operation: str) -> None:
        self.stream_id = stream_id
        self.version = version
        self.operation = operation
        super().__init__(stream_id, version, operation)

    def __str__(self) -> str:
        return (
            f"Cannot {self.operation} stream `{self.stream_id}`: it was deleted at version "
            f"{self.version} and a deleted stream stays deleted. "
            "Hint: start a new stream under a new id."
        )


class InvalidStreamIdError(StorageError, ValueError):
    """A stream id breaks the one rule every event store applies (``check_stream_id``)."""

    def __init__(self, stream_id: object, problem: str) -> None:
        self.stream_id = stream_id
        self.problem = problem
        super().__init__(stream_id, problem)

    def __str__(self) -> str:
        if isinstance(self.stream_id, str):
            shown = repr(self.stream_id[:60])[1:-1] + ("…" if len(self.stream_id) > 60 else "")
            shown = f"`{shown}`"
        else:
            shown = repr(self.stream_id)
        return (
            f"Stream id {shown} cannot be stored: {self.problem}. Hint: a stream id is 1 to 255 "
            "characters of Unicode text without NUL characters or lone surrogates, the same on "
            "every store; build it with `stream_id_for(kind, id)` from a short id."
        )


class DuplicateEventIdError(StorageError, ValueError):
    """An appended event carries an id the store already holds (ids are unique store-wide)."""

    def __init__(self, event_id: object, stream_id: str, within_append: bool = False) -> None:
        self.event_id = event_id
        self.stream_id = stream_id
        self.within_append = within_append
        super().__init__(event_id, stream_id, within_append)

    def __str__(self) -> str:
        if self.within_append:
            what = (
                f"Event id `{self.event_id}` appears twice in the append to stream "
                f"`{self.stream_id}`, so it was refused"
            )
        else:
            what = (
                f"Event id `{self.event_id}` is already stored, so the append to stream "
                f"`{self.stream_id}` was refused"
            )
        return (
            f"{what} and nothing was appended. Hint: event ids are unique across all streams; "
            "let the store make them (leave out `NewEvent(event_id=...)`), or pass "
            "`idempotency_key=` so that a retried append is a no-op."
        )


class AggregateNotFoundError(StorageError, LookupError):
    """The aggregate's stream has no events."""

    def __init__(self, aggregate_type: str, aggregate_id: str, stream_id: str) -> None:
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id
        self.stream_id = stream_id
        super().__init__(aggregate_type, aggregate_id, stream_id)

    def __str__(self) -> str:
        return (
            f"No `{self.aggregate_type}` with id `{self.aggregate_id}`: stream "
            f"`{self.stream_id}` has no events. Hint: create it with `repository.create(...)` "
            "and save it first, or use `repository.get_or_none(...)` when absence is expected."
        )


class DeadLetterNotFoundError(StorageError, LookupError):
    """A dead letter operation named a message that is not a dead letter."""

    def __init__(self, message_ids: Sequence[str]) -> None:
        self.message_ids = tuple(message_ids)
        super().__init__(self.message_ids)

    def __str__(self) -> str:
        ids = ", ".join(f"`{m}`" for m in self.message_ids)
        return (
            f"No dead letter with message id {ids}: it was never dead-lettered, was already "
            "replayed or purged. Hint: list the current ones with `await dead_letters.list()`."
        )


class StoreUnavailableError(StorageError, ConnectionError):
    """The database did not answer; nothing was committed."""

    def __init__(self, operation: str, detail: str) -> None:
        self.operation = operation
        self.detail = detail
        super().__init__(operation, detail)

    def __str__(self) -> str:
        return (
            f"The database did not answer while trying to {self.operation}: {self.detail}. "
            "Nothing was committed. Hint: check that the database is running and reachable "
            "at the configured URL, then retry."
        )
