"""SQL persistence on SQLAlchemy Core (async): SQLite through aiosqlite, PostgreSQL through asyncpg.

Every dockyard table lives in one ``MetaData`` (``dockyard.sql.metadata``): create them with
``create_tables(engine)`` for demos and tests, or add them to your Alembic migrations with
``target_metadata = dockyard.sql.metadata``. A ``UnitOfWork`` owns one connection and one
transaction; the stores write on it, next to your own tables, so all of it commits together.
"""

from dockyard.sql._database import Database, create_tables, drop_tables
from dockyard.sql._eventsourcing.event_store import SqlEventStore
from dockyard.sql._eventsourcing.snapshot_store import SqlSnapshotStore
from dockyard.sql._eventsourcing.tables import events, idempotency_keys, snapshots, streams
from dockyard.sql._metadata import metadata
from dockyard.sql._module import SqlModule
from dockyard.sql._outbox.inbox import SqlInbox
from dockyard.sql._outbox.store import SqlOutboxStorage, SqlOutboxStore, SqlOutboxWriter
from dockyard.sql._outbox.tables import inbox, outbox
from dockyard.sql._projections.checkpoints import SqlCheckpointStore
from dockyard.sql._projections.leases import SqlLeaseStore
from dockyard.sql._projections.notify import PostgresEventNotifier
from dockyard.sql._projections.tables import (
    projection_checkpoints,
    projection_leases,
)
from dockyard.sql._unit_of_work import UnitOfWork

__all__ = [
    "Database",
    "PostgresEventNotifier",
    "SqlCheckpointStore",
    "SqlEventStore",
    "SqlInbox",
    "SqlLeaseStore",
    "SqlModule",
    "SqlOutboxStorage",
    "SqlOutboxStore",
    "SqlOutboxWriter",
    "SqlSnapshotStore",
    "UnitOfWork",
    "create_tables",
    "drop_tables",
    "events",
    "idempotency_keys",
    "inbox",
    "metadata",
    "outbox",
    "projection_checkpoints",
    "projection_leases",
    "snapshots",
    "streams",
]
