"""The ORM on the unit of work: an ``AsyncSession`` joined to the scope's transaction."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.sql._unit_of_work import SqlUnitOfWork

__all__ = ["orm_session"]


async def orm_session(uow: SqlUnitOfWork) -> AsyncGenerator[AsyncSession, BaseException | None]:
    """The scope's ``AsyncSession``, inside the unit of work's transaction.

    The transaction is begun first (on the driver, where the unit of work's fast path runs),
    so the session *joins* it instead of owning it: it works in a savepoint of its own
    (``join_transaction_mode="create_savepoint"``). ``session.commit()`` releases that
    savepoint and ``session.rollback()`` rolls back to it; neither ends the unit of work's
    transaction, so ORM rows, events and outbox rows commit or roll back together, when the
    scope ends. On a clean exit the session's pending changes are flushed before the unit of
    work commits.
    """
    await uow.driver()  # begin now: a session on a connection outside a transaction owns it
    connection = uow.connection  # tells SQLAlchemy's Connection the transaction has begun
    if not connection.in_transaction():  # pragma: no cover - the driver began it just above
        raise AssertionError("the unit of work's transaction did not begin")
    session = AsyncSession(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    try:
        error = yield session
        if error is None and session.in_transaction():
            await session.commit()  # flush, then release the savepoint: the uow commits
    finally:
        await session.close()
