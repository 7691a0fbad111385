"""Event store and snapshot store adapters that need nothing but Python.

The SQL adapters live in ``dockyard.sql``.
"""

from dockyard.eventsourcing.memory import InMemoryEventStore
from dockyard.eventsourcing.store._memory_snapshots import InMemorySnapshotStore

__all__ = ["InMemoryEventStore", "InMemorySnapshotStore"]
