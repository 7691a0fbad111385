"""The shape of a production worker: SQL, an outbox on SQL storage and a catch-up projection.

Run by ``dockyard worker integration._apps.stopping_worker:app``; the PostgreSQL schema comes
from ``DOCKYARD_TEST_SCHEMA``. Short leases keep the projection's heartbeat busy, so a SIGTERM
often lands while it renews its lease.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from dockyard.app import App
from dockyard.eventsourcing import RecordedEvent
from dockyard.modules import module
from dockyard.outbox import OutboxModule
from dockyard.projections import Projection, ProjectionsModule, RunnerSettings, handles
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.sql import SqlModule, SqlOutboxBackend
from dockyard.transport.memory import InMemoryTransport
from integration._apps.services import POSTGRES_URL, engine_options


@dataclass(frozen=True, slots=True)
class Ticked:
    n: int


class Ticks(Projection):
    name = "ticks"

    def __init__(self) -> None:
        self.seen = 0

    @handles
    async def ticked(self, event: Ticked, recorded: RecordedEvent) -> None:
        del event, recorded
        self.seen += 1


def build(schema: str) -> App:
    sql = SqlModule.register(
        POSTGRES_URL, serializer=Serializer(TypeRegistry([Ticked])), **engine_options(schema)
    )
    projections = ProjectionsModule.register(
        projections=[Ticks],
        imports=[sql],
        settings=RunnerSettings(lease_ttl=0.3, max_poll_interval=0.05),
    )

    @module(
        imports=[
            sql,
            OutboxModule.register(transport=InMemoryTransport(), backend=SqlOutboxBackend()),
            projections,
        ]
    )
    class Worker: ...

    return App.build(Worker)


app = build(os.environ.get("DOCKYARD_TEST_SCHEMA", "public"))
