"""``type_name_conflicts`` finds, in a built app, the clash its consumers would hit at start."""

from __future__ import annotations

import pytest

from clashing_events import Billing, Invoice, Orders, Ship, consumer_app
from dockyard import App, Event, module
from dockyard.consumer import ConsumerModule, listen
from dockyard.consumer._module import type_name_conflicts
from dockyard.exceptions import EventTypeConflictError
from dockyard.modules import DynamicModule
from dockyard.outbox import OutboxConfig, OutboxModule, route
from dockyard.serialization import Serializer
from dockyard.transport.memory import InMemoryTransport


class Named(Event):
    pass


def _app(*imports: DynamicModule, handlers: list[type]) -> App:
    @module(imports=list(imports), handlers=handlers)
    class Root: ...

    return App.build(Root)


def _outbox(serializer: Serializer | None = None) -> DynamicModule:
    return OutboxModule.register(transport=InMemoryTransport(), serializer=serializer)


def _consumers() -> DynamicModule:
    return ConsumerModule.register(endpoints=[listen("orders", group="shop")])


async def test_it_finds_the_clash_that_stops_the_consumer_at_start() -> None:
    app = consumer_app()
    (conflict,) = type_name_conflicts(app)
    assert (conflict.name, conflict.existing, conflict.new) == (
        "OrderPlaced",
        Orders.OrderPlaced,
        Billing.OrderPlaced,
    )
    # What the worker does: its consumer registers every handled type as it is built.
    (consumer,) = (s for s in app.background_services() if s.name == "consumer:orders:shop")
    async with app:
        with pytest.raises(EventTypeConflictError) as raised:
            await consumer.build()  # type: ignore[attr-defined]
    assert str(raised.value) == str(conflict)


def test_without_consumers_only_routed_types_are_serialized_by_name() -> None:
    local_only = _app(_outbox(), handlers=[Ship, Invoice])
    assert type_name_conflicts(local_only) == []
    routed = _app(
        _outbox(),
        handlers=[
            route(Orders.OrderPlaced).to("shipping"),
            route(Billing.OrderPlaced).to("billing"),
        ],
    )
    assert [c.name for c in type_name_conflicts(routed)] == ["OrderPlaced"]


def test_a_name_the_serializer_already_holds_counts() -> None:
    serializer = Serializer()
    serializer.registry.register(Named, name="OrderPlaced")
    app = _app(_outbox(serializer), _consumers(), handlers=[Ship])
    (conflict,) = type_name_conflicts(app)
    assert (conflict.existing, conflict.new) == (Named, Orders.OrderPlaced)
    # the outbox's own serializer is checked on a copy: it is not changed
    assert serializer.registry.get("OrderPlaced") is not None
    assert Orders.OrderPlaced not in {entry.cls for entry in serializer.registry}
    assert isinstance(app.graph.get(OutboxModule).provided[OutboxConfig].source, OutboxConfig)


def test_an_app_without_an_outbox_has_nothing_to_clash() -> None:
    assert type_name_conflicts(_app(handlers=[Ship, Invoice])) == []
