"""An in-memory app with projections, shared by the unit tests of dockyard.projections."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.di import singleton
from dockyard.eventsourcing import EventStore
from dockyard.eventsourcing.memory import InMemoryEventStore
from dockyard.modules import module
from dockyard.projections import CheckpointStore, LeaseStore
from dockyard.projections.memory import InMemoryCheckpointStore, InMemoryLeaseStore
from dockyard.serialization import Serializer, TypeRegistry


@dataclass(frozen=True, slots=True)
class Deposited:
    account: str
    amount: int


@dataclass(frozen=True, slots=True)
class Withdrawn:
    account: str
    amount: int


@dataclass(frozen=True, slots=True)
class Renamed:
    account: str
    name: str


SERIALIZER = Serializer(TypeRegistry([Deposited, Withdrawn, Renamed]))


def make_store() -> InMemoryEventStore:
    return InMemoryEventStore(SERIALIZER)


@module(
    providers=[
        singleton(EventStore, make_store),
        singleton(CheckpointStore, InMemoryCheckpointStore),
        singleton(LeaseStore, InMemoryLeaseStore),
    ],
    exports=[EventStore, CheckpointStore, LeaseStore],
)
class MemoryStores: ...
