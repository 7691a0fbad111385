"""The ORM on the unit of work: an ``AsyncSession`` joined to the scope's transaction."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from dockyard.sql._unit_of_work import SqlUnitOfWork

__all__ = ["orm_session"]


async def orm_session(uow: SqlUnitOfWork) -> AsyncGenerator[AsyncSession, BaseException | None]:
    """The scope's ``AsyncSession``, inside the unit of work's transaction.

    ``uow.connection`` is handed out inside that transaction, so the session *joins* it
    instead of owning it, and works in a savepoint of its own
    (``join_transaction_mode="create_savepoint"``). ``session.commit()`` releases that
    savepoint and ``session.rollback()`` rolls back to it; neither ends the unit of work's
    transaction, so ORM rows, events and outbox rows commit or roll back together, when the
    scope ends. The unit of work flushes the session's pending changes before it commits or
    runs its last statement (``on_flush``), so a saga step's objects commit with its
    checkpoint; on a clean exit they are flushed before the unit of work commits. Nothing is
    sent until the session is used.
    """
    session = AsyncSession(
        bind=uow.connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    uow.on_flush(session.flush)  # a step's checkpoint, a commit: pending objects go first
    try:
        error = yield session
        if error is None and session.in_transaction() and _in_savepoint(session):
            await session.commit()  # flush, then release the savepoint: the uow commits
    finally:
        await session.close()


def _in_savepoint(session: AsyncSession) -> bool:
    """Whether the session's savepoint is still open: not when the unit of work committed or
    rolled back since (a saga step's checkpoint, ``TransactionalBehavior``), which ended it,
    after flushing the session (``on_flush``). What it holds since then is committed as ever
    (and fails as ever: its savepoint is gone)."""
    bind = session.bind  # `uow.connection` as it was handed out (asking it again may begin)
    sync = bind.sync_connection if isinstance(bind, AsyncConnection) else None
    return (sync is not None and sync.get_nested_transaction() is not None) or bool(
        session.new or session.dirty or session.deleted
    )
