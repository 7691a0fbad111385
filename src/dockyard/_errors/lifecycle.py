"""Something used outside its life: before it started, or after it closed."""

from __future__ import annotations

from dockyard._errors.base import DockyardError

__all__ = [
    "AppNotStartedError",
    "LifecycleError",
    "TransactionEndedError",
    "TransportClosedError",
    "UnitOfWorkError",
]


class LifecycleError(DockyardError):
    """An app, unit of work or transport was used before it started or after it closed."""


class AppNotStartedError(LifecycleError, RuntimeError):
    """The app was used outside ``async with app`` (before start or after stop)."""

    def __init__(self, action: str) -> None:
        self.action = action
        super().__init__(action)

    def __str__(self) -> str:
        return (
            f"Cannot {self.action} before the app has started. "
            "Hint: use `async with app:` (or `await app.start()`) first."
        )


class UnitOfWorkError(LifecycleError, RuntimeError):
    """A unit of work was used before it began or after it closed."""

    def __init__(self, action: str, state: str) -> None:
        self.action = action
        self.state = state
        super().__init__(action, state)

    def __str__(self) -> str:
        return (
            f"Cannot {self.action}: the unit of work {self.state}. "
            "Hint: use it inside `async with database.unit_of_work() as uow:` "
            "(or the request scope that provides it)."
        )


class TransactionEndedError(UnitOfWorkError):
    """A unit of work's transaction was ended by something else (a ``Session`` built on
    ``uow.connection`` that rolled it back): its commit is refused, and what it holds since is
    rolled back."""

    def __init__(self, action: str) -> None:
        self.action = action
        self.state = "had its transaction ended by something else"
        super(UnitOfWorkError, self).__init__(action)  # its one field is its args

    def __str__(self) -> str:
        return (
            f"Cannot {self.action}: its transaction was ended by something other than the unit "
            "of work, most likely a `Session` built on `uow.connection` that rolled it back "
            "(`session.rollback()`, or a flush that failed), so what was written before that "
            "is gone. Nothing written since is committed either: the unit of work rolled back. "
            "Hint: use the `AsyncSession` that `SqlModule` provides, or build yours with "
            '`join_transaction_mode="create_savepoint"`: either rolls back to a savepoint of '
            "its own; end the transaction only through the unit of work."
        )


class TransportClosedError(LifecycleError, RuntimeError):
    """A transport was used after ``close()``."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        super().__init__(transport)

    def __str__(self) -> str:
        return (
            f"The {self.transport} transport is closed: it cannot publish or deliver any more. "
            "Hint: close a transport only once nothing publishes or consumes through it "
            "(after the app and its worker have stopped); build a new one to start again."
        )
