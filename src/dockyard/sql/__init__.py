"""SQL persistence on SQLAlchemy Core (async): SQLite through aiosqlite, PostgreSQL through asyncpg.

Every dockyard table lives in one ``MetaData`` (``dockyard.sql.metadata``): create them with
``create_tables(engine)`` for demos and tests, with ``dockyard db create|upgrade APP``, or in
your Alembic migrations through ``dockyard.sql.alembic`` (which also brings PostgreSQL's
sequence and functions; docs/migrations.md). The ``Table`` objects are exported as
``events_table``, ``outbox_table``, … for queries of your own. A ``SqlUnitOfWork`` owns one
connection and one transaction; the stores write on it, next to your own tables, so all of it
commits together.

This package is the one import path; inside, the adapters are grouped by the feature whose
ports they implement (``_eventsourcing``, ``_outbox``, ``_projections``, ``_sagas``) around a core
(database, unit of work, driver gates, notices, module).
"""

from dockyard._public import use_public_paths
from dockyard.sql import _requires  # noqa: F401 - first: names the extra if SQLAlchemy is missing
from dockyard.sql._database import Database, create_tables, drop_tables
from dockyard.sql._eventsourcing.event_store import SqlEventStore
from dockyard.sql._eventsourcing.snapshot_store import SqlSnapshotStore
from dockyard.sql._eventsourcing.tables import (
    events_table,
    idempotency_keys_table,
    snapshots_table,
    streams_table,
)
from dockyard.sql._metadata import metadata
from dockyard.sql._module import SqlModule
from dockyard.sql._outbox.inbox import SqlInbox
from dockyard.sql._outbox.store import SqlOutboxBackend, SqlOutboxStore, SqlOutboxWriter
from dockyard.sql._outbox.tables import inbox_table, outbox_scheduled_table, outbox_table
from dockyard.sql._projections.checkpoints import SqlCheckpointStore
from dockyard.sql._projections.leases import SqlLeaseStore
from dockyard.sql._projections.notify import PostgresEventNotifier
from dockyard.sql._projections.tables import (
    projection_checkpoints_table,
    projection_leases_table,
)
from dockyard.sql._sagas.processes import (
    SqlProcessBackend,
    SqlProcessStore,
    SqlProcessWriter,
    processes_table,
)
from dockyard.sql._sagas.store import SqlSagaBackend, SqlSagaStore, SqlSagaWriter
from dockyard.sql._sagas.tables import sagas_table
from dockyard.sql._unit_of_work import SqlUnitOfWork

__all__ = [
    "Database",
    "PostgresEventNotifier",
    "SqlCheckpointStore",
    "SqlEventStore",
    "SqlInbox",
    "SqlLeaseStore",
    "SqlModule",
    "SqlOutboxBackend",
    "SqlOutboxStore",
    "SqlOutboxWriter",
    "SqlProcessBackend",
    "SqlProcessStore",
    "SqlProcessWriter",
    "SqlSagaBackend",
    "SqlSagaStore",
    "SqlSagaWriter",
    "SqlSnapshotStore",
    "SqlUnitOfWork",
    "create_tables",
    "drop_tables",
    "events_table",
    "idempotency_keys_table",
    "inbox_table",
    "metadata",
    "outbox_scheduled_table",
    "outbox_table",
    "processes_table",
    "projection_checkpoints_table",
    "projection_leases_table",
    "sagas_table",
    "snapshots_table",
    "streams_table",
]

use_public_paths(__name__, __all__)
