"""``SqlInbox``: the inbox on ``dockyard_inbox``, written in the scope's unit of work."""

from __future__ import annotations

import time

from sqlalchemy import text

from dockyard.outbox import Inbox
from dockyard.sql._errors import unavailable_as_store_error
from dockyard.sql._outbox.tables import inbox_table
from dockyard.sql._unit_of_work import SqlUnitOfWork

__all__ = ["SqlInbox"]

# The primary key decides: a second record of the same pair inserts nothing. A concurrent
# scope recording the same pair waits for the first one's commit (or rollback) and then sees
# it, so two consumers never both run the effect.
_RECORD = text(
    f"INSERT INTO {inbox_table.name} (message_id, handler, handled_at) "  # noqa: S608
    "VALUES (:message_id, :handler, :now) ON CONFLICT DO NOTHING RETURNING 1"
)


class SqlInbox(Inbox):
    """Records handled messages next to the handler's effects (PostgreSQL or SQLite)."""

    __slots__ = ("_uow",)

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    async def record(self, message_id: str, handler: str, /) -> bool:
        params = {"message_id": message_id, "handler": handler, "now": time.time()}
        with unavailable_as_store_error("record a handled message in the inbox"):
            return bool(await self._uow.fetch_rows(_RECORD, params))
