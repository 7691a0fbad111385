"""Projections: read models built from the event log, inline or catch-up, exactly once.

- ``Projection`` with ``@handles`` methods, one per event type.
- Inline (``ProjectionsModule.register(inline=[...])``): run as event handlers in the scope
  that saves the events, so their writes are part of the command's transaction.
- Catch-up (``projections=[...]``, and ``subscriptions=[...]`` for event handlers): a
  ``CatchUpRunner`` per projection follows ``EventStore.read_all`` from a checkpoint, writing
  the checkpoint in the same transaction as the read model; one runner at a time holds a lease.
- ``ProjectionControl``: status, lag, retry, skip, rebuild with progress.

Ports: ``CheckpointStore``, ``LeaseStore``, ``EventNotifier``; in-memory adapters in
``dockyard.projections.memory``, SQL adapters in ``dockyard.sql``. See ``docs/projections.md``.
"""

from dockyard._public import use_public_paths
from dockyard.projections._checkpoints import Checkpoint, CheckpointStore, Failure
from dockyard.projections._control import (
    ProjectionControl,
    ProjectionState,
    ProjectionStatus,
    RebuildProgress,
)
from dockyard.projections._leases import Lease, LeaseStore
from dockyard.projections._module import ProjectionsModule
from dockyard.projections._notify import EventNotifier
from dockyard.projections._projection import Projection, handles
from dockyard.projections._runner import CatchUpRunner
from dockyard.projections._settings import RunnerSettings

__all__ = [
    "CatchUpRunner",
    "Checkpoint",
    "CheckpointStore",
    "EventNotifier",
    "Failure",
    "Lease",
    "LeaseStore",
    "Projection",
    "ProjectionControl",
    "ProjectionState",
    "ProjectionStatus",
    "ProjectionsModule",
    "RebuildProgress",
    "RunnerSettings",
    "handles",
]

use_public_paths(__name__, __all__)
