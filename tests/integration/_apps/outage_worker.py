"""A worker with every kind of background service, whose servers sit behind the test's proxies.

Run by ``dockyard worker integration._apps.outage_worker:app``. The environment says where
PostgreSQL and the broker are (``DOCKYARD_OUTAGE_PG_PORT``, ``DOCKYARD_OUTAGE_BROKER`` =
``rabbit``/``nats``/``memory``, ``DOCKYARD_OUTAGE_BROKER_PORT``), which schema and destination
to use. It runs:

* a catch-up projection writing one ``outage_applied`` row per event (primary key on the
  position: applying an event twice would fail its batch);
* the outbox relay, publishing ``Ping`` messages (the test's producer routes them and writes
  the outbox rows; the worker does not route them, it consumes them);
* a consumer of those messages writing one ``outage_effects`` row per handling, in the
  inbox's transaction (so each message's effect is there once, or the test sees it twice).

The test writes events and outbox rows straight into the schema, not through the proxy.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from dockyard.app import App
from dockyard.consumer import ConsumerModule, listen
from dockyard.eventsourcing import RecordedEvent
from dockyard.messaging import Event, EventHandler
from dockyard.modules import module
from dockyard.outbox import OutboxModule, RelaySettings
from dockyard.projections import Projection, ProjectionsModule, RunnerSettings, handles
from dockyard.retry import RetryPolicy
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.sql import SqlModule, SqlOutboxBackend, SqlUnitOfWork
from dockyard.transport import Transport

GROUP = "outage"
TABLES = (
    "CREATE TABLE outage_applied (position BIGINT PRIMARY KEY, n INTEGER NOT NULL)",
    "CREATE TABLE outage_effects (n INTEGER NOT NULL)",
)
LEASE_TTL = 2.0


@dataclass(frozen=True, slots=True)
class Ticked:
    n: int


@dataclass(frozen=True, slots=True)
class Ping(Event):
    n: int


class Applied(Projection):
    name = "applied"

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    @handles
    async def ticked(self, event: Ticked, recorded: RecordedEvent) -> None:
        await self._uow.connection.execute(
            text("INSERT INTO outage_applied (position, n) VALUES (:position, :n)"),
            {"position": recorded.global_position, "n": event.n},
        )


class RecordEffect(EventHandler[Ping]):
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    async def handle(self, event: Ping, /) -> None:
        await self._uow.connection.execute(
            text("INSERT INTO outage_effects (n) VALUES (:n)"), {"n": event.n}
        )


def transport(broker: str, port: int) -> Transport:
    if broker == "rabbit":
        from faststream.rabbit import RabbitBroker

        from dockyard.transport.rabbit import RabbitTransport

        amqp = RabbitBroker(
            f"amqp://guest:guest@127.0.0.1:{port}/", reconnect_interval=0.5, logger=None
        )
        return RabbitTransport(broker=amqp)
    if broker == "nats":
        from dockyard.transport.nats import NatsTransport

        return NatsTransport(f"nats://127.0.0.1:{port}", ack_wait=2.0)
    from dockyard.transport.memory import InMemoryTransport

    return InMemoryTransport()


def build(
    postgres_url: str,
    schema: str,
    broker: str,
    destination: str,
    *,
    application_name: str = "dockyard-outage",
    pool: dict[str, Any] | None = None,
    make_transport: Callable[[str, int], Transport] | None = None,
) -> App:
    """The worker app; ``postgres_url`` may point at a proxy, the rest is the same.

    Its PostgreSQL connections carry ``application_name``, so a test can find (and
    terminate, or count) this worker's connections and nobody else's.
    """
    settings = {"search_path": schema, "application_name": application_name}
    sql = SqlModule.register(
        postgres_url,
        serializer=Serializer(TypeRegistry([Ticked])),
        connect_args={"server_settings": settings},
        **(pool or {}),
    )
    retry = RetryPolicy(max_attempts=1_000, initial_delay=0.05, max_delay=0.5)
    modules = [
        sql,
        OutboxModule.register(
            transport=(make_transport or transport)(
                broker, int(os.environ.get("DOCKYARD_OUTAGE_BROKER_PORT", "0"))
            ),
            backend=SqlOutboxBackend(),
            relay=RelaySettings(batch_size=50, retry=retry, idle_poll_interval=1.0),
            run_relay=broker != "memory",
        ),
        ProjectionsModule.register(
            projections=[Applied],
            imports=[sql],
            settings=RunnerSettings(lease_ttl=LEASE_TTL, idle_poll_interval=1.0),
        ),
    ]
    if broker != "memory":
        modules.append(
            ConsumerModule.register(endpoints=[listen(destination, group=GROUP, concurrency=4)])
        )

    @module(handlers=[RecordEffect], imports=modules)
    class OutageWorker: ...

    return App.build(OutageWorker)


def _from_environment(make_transport: Callable[[str, int], Transport] | None = None) -> App:
    port = os.environ.get("DOCKYARD_OUTAGE_PG_PORT", "5432")
    return build(
        f"postgresql+asyncpg://postgres@127.0.0.1:{port}/test",
        os.environ.get("DOCKYARD_OUTAGE_SCHEMA", "public"),
        os.environ.get("DOCKYARD_OUTAGE_BROKER", "memory"),
        os.environ.get("DOCKYARD_OUTAGE_DESTINATION", "outage"),
        application_name=os.environ.get("DOCKYARD_OUTAGE_APPLICATION", "dockyard-outage"),
        pool={
            key: int(os.environ[f"DOCKYARD_OUTAGE_{key.upper()}"])
            for key in ("pool_size", "max_overflow")
            if f"DOCKYARD_OUTAGE_{key.upper()}" in os.environ
        },
        make_transport=make_transport,
    )


def with_transport(make: Callable[[str, int], Transport]) -> App:
    """The app from the environment, its transport made by ``make`` (another broker's app
    module passes its own; the rest is the same)."""
    return _from_environment(make)


app = _from_environment
"""What ``dockyard worker integration._apps.outage_worker:app`` loads (a function: it reads
the environment when called)."""
