"""The ORM on the unit of work: an ``AsyncSession`` joined to the scope's transaction."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.sql._unit_of_work import SqlUnitOfWork

__all__ = ["orm_session"]


async def orm_session(uow: SqlUnitOfWork) -> AsyncGenerator[AsyncSession, BaseException | None]:
    """The scope's ``AsyncSession``, inside the unit of work's transaction.

    ``uow.connection`` is handed out inside that transaction, so the session *joins* it
    instead of owning it, and works in a savepoint of its own
    (``join_transaction_mode="create_savepoint"``). ``session.commit()`` releases that
    savepoint and ``session.rollback()`` rolls back to it; neither ends the unit of work's
    transaction, so ORM rows, events and outbox rows commit or roll back together, when the
    scope ends. On a clean exit the session's pending changes are flushed before the unit of
    work commits. Nothing is sent until the session is used.
    """
    session = AsyncSession(
        bind=uow.connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    try:
        error = yield session
        if error is None and session.in_transaction():
            await session.commit()  # flush, then release the savepoint: the uow commits
    finally:
        await session.close()
