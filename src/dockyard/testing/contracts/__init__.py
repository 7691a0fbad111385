"""Contract suites every adapter of a port must pass; third-party adapters can run them too.

Subclass a contract in a test module, name the subclass ``Test…`` and implement its abstract
factory fixture. The suites need pytest and pytest-asyncio.
"""

from dockyard._public import use_public_paths
from dockyard.testing.contracts.event_store import EventStoreContract, EventStoreFactory
from dockyard.testing.contracts.outbox import OutboxContract, OutboxHarness
from dockyard.testing.contracts.processes import ProcessStoreContract, ProcessStoreHarness
from dockyard.testing.contracts.projections import (
    CheckpointStoreContract,
    CheckpointStoreFactory,
    LeaseStoreContract,
)
from dockyard.testing.contracts.sagas import SagaStoreContract, SagaStoreHarness
from dockyard.testing.contracts.snapshot_store import SnapshotStoreContract, SnapshotStoreFactory
from dockyard.testing.contracts.transport import TransportContract

__all__ = [
    "CheckpointStoreContract",
    "CheckpointStoreFactory",
    "EventStoreContract",
    "EventStoreFactory",
    "LeaseStoreContract",
    "OutboxContract",
    "OutboxHarness",
    "ProcessStoreContract",
    "ProcessStoreHarness",
    "SagaStoreContract",
    "SagaStoreHarness",
    "SnapshotStoreContract",
    "SnapshotStoreFactory",
    "TransportContract",
]

use_public_paths(__name__, __all__)
