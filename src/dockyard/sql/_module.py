"""``SqlModule``: the database, one unit of work per request scope, and the stores on it."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.di import object_, scoped, singleton
from dockyard.eventsourcing import EventStore, SnapshotStore
from dockyard.messaging import UnitOfWork
from dockyard.modules import DynamicModule, OffersDefaults, OnAppInit, OnAppShutdown, module
from dockyard.outbox import OutboxBackend
from dockyard.projections import CheckpointStore, EventNotifier, LeaseStore
from dockyard.sagas import ProcessBackend, SagaBackend
from dockyard.serialization import Serializer
from dockyard.sql._database import Database
from dockyard.sql._eventsourcing.event_store import SqlEventStore
from dockyard.sql._eventsourcing.snapshot_store import SqlSnapshotStore
from dockyard.sql._orm import orm_session
from dockyard.sql._projections.checkpoints import SqlCheckpointStore
from dockyard.sql._projections.leases import SqlLeaseStore
from dockyard.sql._projections.notify import PostgresEventNotifier
from dockyard.sql._unit_of_work import SqlUnitOfWork

if TYPE_CHECKING:  # the lifecycle hooks' signature; an adapter never imports the app at run time
    from dockyard.app import App

__all__ = ["SqlModule", "database_of"]


async def unit_of_work(database: Database) -> AsyncGenerator[SqlUnitOfWork, BaseException | None]:
    """One unit of work per scope: commits when the scope exits cleanly, else rolls back."""
    uow = database.unit_of_work()
    await uow.begin()
    try:
        error = yield uow  # Dishka sends the exception the scope exited with, or None
        if error is None:
            # flush what the scope's session holds, commit and give the connection back in
            # one step (`commit()` then `close()` ends the transaction twice over): what
            # `async with uow` does on a clean exit
            await uow.__aexit__(None, None, None)
        else:
            await uow.rollback()
    finally:
        await uow.close()  # nothing left to do after a clean exit


def event_store(uow: SqlUnitOfWork, serializer: Serializer) -> SqlEventStore:
    """The scope's event store, writing on the scope's unit of work."""
    return SqlEventStore(uow, serializer)


def transactional_unit_of_work(uow: SqlUnitOfWork) -> UnitOfWork:
    """The same unit of work, as ``TransactionalBehavior`` and projection runners see it."""
    return uow


def checkpoint_store(uow: SqlUnitOfWork) -> SqlCheckpointStore:
    """Projection checkpoints, written in the scope's transaction with the read model."""
    return SqlCheckpointStore(uow)


def lease_store(database: Database) -> SqlLeaseStore:
    """Projection leases, on their own short transactions."""
    return SqlLeaseStore(database)


def event_notifier(database: Database) -> PostgresEventNotifier:
    """``LISTEN``/``NOTIFY`` wake-ups for projection runners (PostgreSQL only)."""
    return PostgresEventNotifier(database)


def snapshot_store(uow: SqlUnitOfWork, serializer: Serializer) -> SqlSnapshotStore:
    """The scope's snapshot store, writing on the scope's unit of work."""
    return SqlSnapshotStore(uow, serializer)


class _Lifecycle(OnAppInit, OnAppShutdown):
    __slots__ = ("create_tables", "database", "tables")

    def __init__(
        self, database: Database, *, create_tables: bool, tables: tuple[MetaData, ...]
    ) -> None:
        self.database = database
        self.create_tables = create_tables
        self.tables = tables

    async def on_app_init(self, app: App) -> None:  # noqa: ARG002 -- the hook's signature
        if self.create_tables:
            await self.database.create_tables()
            if self.tables:
                async with self.database.engine.begin() as connection:
                    for metadata in self.tables:
                        await connection.run_sync(metadata.create_all)

    async def on_app_shutdown(self, app: App) -> None:  # noqa: ARG002 -- the hook's signature
        await self.database.dispose()


@module()
class SqlModule:
    """SQL persistence for an app: import ``SqlModule.register(url=...)`` once, at the root.

    Provides and exports ``Database`` (app-wide), ``SqlUnitOfWork`` (one per request scope:
    committed when the scope exits without an error, rolled back when it raises),
    ``EventStore`` and ``SnapshotStore`` (per scope, on that unit of work) and the
    ``Serializer`` they share. Your repositories take ``SqlUnitOfWork`` and execute on
    ``uow.connection``, or take SQLAlchemy's ``AsyncSession`` (per scope, joined to that
    transaction in a savepoint of its own), so their rows commit with the events.

    For projections it also provides ``CheckpointStore`` (per scope, same transaction as the
    read model), ``LeaseStore`` and, on PostgreSQL, the ``LISTEN``/``NOTIFY``
    ``EventNotifier``; and the unit of work again as ``dockyard.messaging.UnitOfWork`` for
    ``TransactionalBehavior`` and the projection runners.
    """

    @classmethod
    def register(
        cls,
        url: str,
        *,
        serializer: Serializer | None = None,
        create_tables: bool = False,
        tables: Iterable[MetaData] = (),
        **engine_options: Any,  # passed to SQLAlchemy's create_async_engine
    ) -> DynamicModule:
        """Configure the module.

        Args:
            url: A SQLAlchemy URL: ``postgresql+asyncpg://…`` or ``sqlite+aiosqlite:///…``;
                without a driver (``postgresql://…``, ``sqlite:///…``) the same. Another
                driver raises ``DatabaseUrlError``; a missing one, ``MissingExtraError``.
            serializer: The serializer (and its type registry) of events and snapshots.
            create_tables: Create dockyard's tables at startup (demos and tests; use
                migrations in production).
            tables: The app's own tables (read models, ...), as SQLAlchemy ``MetaData``:
                created with dockyard's when ``create_tables`` is set (those missing only,
                as ``MetaData.create_all`` does). In production, give the same ``MetaData``
                to your migrations (``docs/migrations.md``).
            **engine_options: Passed to ``create_async_engine`` (``pool_size``, …).
        """
        database = Database(url, **engine_options)
        own_tables = tuple(tables)
        return DynamicModule(
            cls,
            providers=[
                object_(database, provides=Database),
                object_(serializer or Serializer(), provides=Serializer),
                scoped(unit_of_work),
                scoped(EventStore, event_store),
                scoped(AsyncSession, orm_session),
                scoped(SnapshotStore, snapshot_store),
                scoped(UnitOfWork, transactional_unit_of_work),
                scoped(CheckpointStore, checkpoint_store),
                singleton(LeaseStore, lease_store),
                singleton(EventNotifier, event_notifier, when=database.dialect == "postgresql"),
            ],
            exports=[
                Database,
                Serializer,
                SqlUnitOfWork,
                AsyncSession,
                UnitOfWork,
                EventStore,
                SnapshotStore,
                CheckpointStore,
                LeaseStore,
                *([EventNotifier] if database.dialect == "postgresql" else []),
            ],
            extensions=[
                _Lifecycle(database, create_tables=create_tables, tables=own_tables),
                _OutboxDefault(),
            ],
            settings=(
                url,
                create_tables,
                tuple(id(t) for t in own_tables),
                id(serializer),
                tuple(sorted(engine_options.items())),
            ),
        )


class _OutboxDefault(OffersDefaults):
    """An app with ``SqlModule`` keeps its outbox, inbox and sagas in the unit of work by
    default (the backends import this module, their ``imports()`` name it: imported here)."""

    __slots__ = ()

    def default_for(self, kind: type) -> object | None:
        if kind is OutboxBackend:
            from dockyard.sql._outbox.store import SqlOutboxBackend

            return SqlOutboxBackend()
        if kind is SagaBackend:
            from dockyard.sql._sagas.store import SqlSagaBackend

            return SqlSagaBackend()
        if kind is ProcessBackend:
            from dockyard.sql._sagas.processes import SqlProcessBackend

            return SqlProcessBackend()
        return None


def database_of(app: App) -> Database | None:
    """The ``Database`` of the app's ``SqlModule``, read from the built app (nothing starts)."""
    for node in app.modules:
        for extension in node.extensions:
            if isinstance(extension, _Lifecycle):
                return extension.database
    return None
