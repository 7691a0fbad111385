"""Event store and snapshot store adapters that need nothing but Python.

The SQL adapters live in ``dockyard.sql``.
"""

from dockyard._public import use_public_paths
from dockyard.eventsourcing.store._memory import InMemoryEventStore
from dockyard.eventsourcing.store._memory_snapshots import InMemorySnapshotStore

__all__ = ["InMemoryEventStore", "InMemorySnapshotStore"]

use_public_paths(__name__, __all__)
