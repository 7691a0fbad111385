"""Event sourcing: aggregates and deciders, their repositories, and the store ports.

Adapters: ``dockyard.eventsourcing.store`` (in memory) and ``dockyard.sql`` (SQLite,
PostgreSQL). Every adapter passes ``dockyard.testing.contracts.EventStoreContract``.
"""

from dockyard.eventsourcing._aggregate import Aggregate, applies
from dockyard.eventsourcing._decider import Decider
from dockyard.eventsourcing._repository import (
    AggregateRepository,
    DeciderRepository,
    EventPublisher,
)
from dockyard.eventsourcing._retry import retry_on_conflict
from dockyard.eventsourcing._store import (
    ANY,
    MAX_STREAM_ID_LENGTH,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    EventMetadata,
    EventStore,
    ExpectedVersion,
    NewEvent,
    OpenAppend,
    RecordedEvent,
    check_stream_id,
    stream_id_for,
)
from dockyard.eventsourcing._store_snapshots import Snapshot, SnapshotStore

__all__ = [
    "ANY",
    "MAX_STREAM_ID_LENGTH",
    "NO_STREAM",
    "STREAM_EXISTS",
    "Aggregate",
    "AggregateRepository",
    "AppendResult",
    "Decider",
    "DeciderRepository",
    "EventMetadata",
    "EventPublisher",
    "EventStore",
    "ExpectedVersion",
    "NewEvent",
    "OpenAppend",
    "RecordedEvent",
    "Snapshot",
    "SnapshotStore",
    "applies",
    "check_stream_id",
    "retry_on_conflict",
    "stream_id_for",
]
