"""Event sourcing: the event store and snapshot store ports and the values they exchange.

Adapters: ``dockyard.eventsourcing.store`` (in memory) and ``dockyard.sql`` (SQLite,
PostgreSQL). Every adapter passes ``dockyard.testing.contracts.EventStoreContract``.
"""

from dockyard.eventsourcing._store import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    EventMetadata,
    EventStore,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    stream_id_for,
)
from dockyard.eventsourcing._store_snapshots import Snapshot, SnapshotStore

__all__ = [
    "ANY",
    "NO_STREAM",
    "STREAM_EXISTS",
    "AppendResult",
    "EventMetadata",
    "EventStore",
    "ExpectedVersion",
    "NewEvent",
    "RecordedEvent",
    "Snapshot",
    "SnapshotStore",
    "stream_id_for",
]
