"""Event sourcing: aggregates and deciders, their repositories, and the store ports.

Adapters: ``dockyard.eventsourcing.memory`` (in memory) and ``dockyard.sql`` (SQLite,
PostgreSQL). Every adapter passes ``dockyard.testing.contracts.EventStoreContract``.
The errors an aggregate's user handles, ``ConcurrencyError`` and ``AggregateNotFoundError``,
are here too (and in ``dockyard.exceptions`` with all the others).
"""

from dockyard._errors.storage import AggregateNotFoundError, ConcurrencyError
from dockyard._public import use_public_paths
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
    LogHeadReader,
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
    "AggregateNotFoundError",
    "AggregateRepository",
    "AppendResult",
    "ConcurrencyError",
    "Decider",
    "DeciderRepository",
    "EventMetadata",
    "EventPublisher",
    "EventStore",
    "ExpectedVersion",
    "LogHeadReader",
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

use_public_paths(__name__, __all__)
