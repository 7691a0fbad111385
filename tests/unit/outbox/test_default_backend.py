"""Where an outbox keeps its messages when the registration does not say: never silently in
memory next to a database, or in front of a broker."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from dockyard import App, Event, module
from dockyard.exceptions import MissingOutboxBackendError, ModuleConfigurationError
from dockyard.modules import ModuleLike
from dockyard.outbox import OutboxModule, OutboxStore, route
from dockyard.outbox.memory import InMemoryOutboxBackend
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.sql import Database, SqlModule
from dockyard.transport.memory import InMemoryTransport


@dataclass(frozen=True, slots=True)
class Shipped(Event):
    order_id: str


class Broker:
    """A transport of a broker (anything but ``InMemoryTransport``); never used here."""


def _app(*imports: ModuleLike) -> App:
    @module(imports=list(imports), handlers=[route(Shipped).to("shipments")])
    class Shop: ...

    return App.build(Shop)


async def test_with_sql_module_the_outbox_is_in_the_database_by_default(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    serializer = Serializer(TypeRegistry([Shipped]))
    app = _app(
        SqlModule.register(url, serializer=serializer, create_tables=True),
        OutboxModule.register(transport=InMemoryTransport(), serializer=serializer),
    )
    async with app:
        await app.publish(Shipped("o-1"))
        database = await app.get(Database)
        async with database.engine.connect() as connection:
            rows = (
                await connection.execute(sa.text("SELECT destination FROM dockyard_outbox"))
            ).all()
    assert [tuple(row) for row in rows] == [("shipments",)]


async def test_sql_module_registered_after_the_outbox_is_found_too(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    outbox = OutboxModule.register(transport=Broker())  # type: ignore[arg-type]
    app = _app(outbox, SqlModule.register(url, create_tables=True))
    assert type(app.container).__name__  # built: the database backend was chosen
    store = await app.container.get(OutboxStore, component=app.graph.get(OutboxModule).component)
    assert type(store).__module__.startswith("dockyard.sql")
    await app.container.close()


async def test_an_app_without_a_database_keeps_an_in_memory_transport_in_memory() -> None:
    async with _app(OutboxModule.register(transport=InMemoryTransport())) as app:
        await app.publish(Shipped("o-1"))
        store = await app.get(OutboxStore)
        assert type(store).__module__ == "dockyard.outbox.memory"


def test_a_broker_without_a_database_and_without_a_backend_is_refused() -> None:
    with pytest.raises(ModuleConfigurationError) as caught:
        _app(OutboxModule.register(transport=Broker()))  # type: ignore[arg-type]
    problem = caught.value.problems[0]  # then what needs the outbox, listed after it
    assert isinstance(problem, MissingOutboxBackendError)
    assert str(problem) == (
        "Module `OutboxModule` has no backend for its outbox: the app has no `SqlModule` and "
        "the transport is `Broker`, so messages would wait in process memory and a crash "
        "would lose them. Hint: add `SqlModule.register(url)` to the app (its outbox backend "
        "is then the default), or pass `backend=InMemoryOutboxBackend()` to accept that."
    )


def test_the_in_memory_backend_named_with_a_broker_is_built_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="dockyard.outbox"):
        _app(OutboxModule.register(transport=Broker(), backend=InMemoryOutboxBackend()))  # type: ignore[arg-type]
    (record,) = [r for r in caplog.records if r.name == "dockyard.outbox"]
    assert "process memory" in record.getMessage()
    assert "Broker" in record.getMessage()


def test_the_in_memory_backend_with_the_in_memory_transport_says_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="dockyard.outbox"):
        _app(OutboxModule.register(transport=InMemoryTransport(), backend=InMemoryOutboxBackend()))
    assert not [r for r in caplog.records if r.name == "dockyard.outbox"]
