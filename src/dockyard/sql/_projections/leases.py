"""``SqlLeaseStore``: projection leases, each operation in a short transaction of its own."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import ColumnElement, Float, delete, func, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from dockyard.projections._leases import Lease
from dockyard.sql._database import Database
from dockyard.sql._errors import unavailable_as_store_error
from dockyard.sql._projections.tables import projection_leases_table as table

__all__ = ["SqlLeaseStore"]


class SqlLeaseStore:
    """A ``LeaseStore`` in ``dockyard_projection_leases`` (a singleton over the ``Database``).

    Acquiring is one upsert that only overwrites a free, expired or already owned row. On
    PostgreSQL expiry is judged by the server's clock, so runners on hosts whose clocks
    disagree still agree on who holds a lease; SQLite runs on one host and uses its clock.
    """

    __slots__ = ("_postgres", "database")

    def __init__(self, database: Database) -> None:
        self.database = database
        self._postgres = database.dialect == "postgresql"

    def _now(self) -> ColumnElement[float]:
        if self._postgres:
            return func.extract("epoch", func.clock_timestamp()).cast(Float)
        return literal(time.time(), Float)

    async def acquire(self, name: str, owner: str, ttl: float) -> bool:
        insert: Any = pg_insert if self._postgres else sqlite_insert
        now = self._now()
        statement = insert(table).values(name=name, owner=owner, expires_at=now + ttl)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.name],
            set_={"owner": statement.excluded.owner, "expires_at": statement.excluded.expires_at},
            where=(table.c.owner == owner) | (table.c.expires_at < now),
        ).returning(table.c.owner)
        with unavailable_as_store_error(f"acquire the lease of `{name}`"):
            async with self.database.engine.begin() as connection:
                won = (await connection.execute(statement)).scalar_one_or_none()
        return won == owner

    async def release(self, name: str, owner: str) -> None:
        with unavailable_as_store_error(f"release the lease of `{name}`"):
            async with self.database.engine.begin() as connection:
                await connection.execute(
                    delete(table).where(table.c.name == name, table.c.owner == owner)
                )

    async def holder(self, name: str) -> Lease | None:
        query = select(table.c.owner, table.c.expires_at).where(
            table.c.name == name, table.c.expires_at > self._now()
        )
        with unavailable_as_store_error(f"read the lease of `{name}`"):
            async with self.database.engine.connect() as connection:
                row = (await connection.execute(query)).one_or_none()
        return None if row is None else Lease(name, row.owner, row.expires_at)
