"""``TransactionalBehavior``: commit the scope's unit of work on success, roll back on error."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from dockyard.messaging._behavior import PipelineBehavior
from dockyard.messaging._messages import StreamRequest

__all__ = ["TransactionalBehavior", "UnitOfWork"]


class UnitOfWork(Protocol):
    """What ``TransactionalBehavior`` needs: provide yours as ``scoped(UnitOfWork, YourUow)``.

    ``dockyard.sql.SqlUnitOfWork`` satisfies it as is (``SqlModule`` provides it as both).
    """

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class TransactionalBehavior(PipelineBehavior[Any, Any]):
    """Commits the scope's ``UnitOfWork`` when the outermost message succeeds; rolls back if
    it raises.

    Register the class (not an instance), so each scope gets its own with its unit of work:
    ``MessagingSettings(message_behaviors={Command: [TransactionalBehavior]})``. Messages sent
    or published while another is being handled in the same scope join its transaction: only
    the outermost one commits. For a stream request the commit waits until the stream ends.
    """

    __slots__ = ("_depth", "_uow")

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._depth = 0

    async def handle(self, message: Any, call_next: Callable[[], Awaitable[Any]], /) -> Any:
        if self._depth:
            return await call_next()
        if isinstance(message, StreamRequest):
            return self._stream(await call_next())
        self._depth += 1
        try:
            result = await call_next()
        except BaseException:
            await self._uow.rollback()
            raise
        finally:
            self._depth -= 1
        await self._uow.commit()
        return result

    async def _stream(self, iterator: AsyncIterator[Any]) -> AsyncIterator[Any]:
        self._depth += 1
        try:
            async for item in iterator:
                yield item
        except BaseException:
            await self._uow.rollback()
            raise
        finally:
            self._depth -= 1
        await self._uow.commit()
