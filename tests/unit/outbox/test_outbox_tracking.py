"""Message context is tracked in an app with an outbox only when something writes to it.

Tracking costs every message an envelope (docs/design/dispatch.md). The outbox reads the
envelope (a message it writes carries the handled one's correlation and causation ids), so
what depends on ``Outbox`` turns tracking on: every route, any handler that injects it. An
outbox nobody writes to, as in an app that only consumes, turns nothing on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dockyard.app import App
from dockyard.messaging import Command, CommandHandler, Event, MessagingSettings
from dockyard.modules import ModuleLike, module
from dockyard.outbox import Outbox, OutboxModule, OutboxStore, route
from dockyard.outbox.memory import InMemoryOutboxBackend
from dockyard.projections import Projection, ProjectionsModule, handles
from dockyard.sql import SqlModule, SqlOutboxBackend
from dockyard.transport import CAUSATION_ID, CORRELATION_ID
from dockyard.transport.memory import InMemoryTransport


@dataclass(frozen=True, slots=True)
class Ship(Command[str]):
    order_id: str


@dataclass(frozen=True, slots=True)
class Shipped(Event):
    order_id: str


class ShipHandler(CommandHandler[Ship, str]):
    async def handle(self, request: Ship, /) -> str:
        return request.order_id


class ShipThroughTheOutbox(CommandHandler[Ship, str]):
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    async def handle(self, request: Ship, /) -> str:
        return await self.outbox.add(Shipped(request.order_id), destination="shipping")


class Shipments(Projection):
    name = "shipments"

    @handles
    async def shipped(self, event: Shipped) -> None:
        del event


def _app(*imports: ModuleLike, handler: type = ShipHandler, **settings: bool) -> App:
    @module(handlers=[handler], imports=list(imports))
    class Shop: ...

    return App.build(Shop, messaging=MessagingSettings(**settings))  # type: ignore[arg-type]


def _outbox(*routes: type) -> ModuleLike:
    return OutboxModule.register(
        transport=InMemoryTransport(), backend=InMemoryOutboxBackend(), routes=routes
    )


def test_an_outbox_nobody_writes_to_tracks_nothing() -> None:
    assert _app(_outbox())._dispatcher.tracking is False


def test_the_sql_app_shape_without_routes_tracks_nothing(tmp_path: Path) -> None:
    sql = SqlModule.register(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    outbox = OutboxModule.register(transport=InMemoryTransport(), backend=SqlOutboxBackend())
    projections = ProjectionsModule.register(projections=[Shipments], imports=[sql])
    assert _app(sql, outbox, projections)._dispatcher.tracking is False


def test_a_route_tracks_the_context() -> None:
    assert _app(_outbox(route(Shipped).to("shipping")))._dispatcher.tracking is True


def test_the_setting_wins_either_way() -> None:
    assert _app(_outbox(), track_context=True)._dispatcher.tracking is True
    routed = _app(_outbox(route(Shipped).to("shipping")), track_context=False)
    assert routed._dispatcher.tracking is False


async def test_a_handler_writing_to_the_outbox_passes_on_its_commands_ids() -> None:
    app = _app(_outbox(), handler=ShipThroughTheOutbox)
    assert app._dispatcher.tracking is True
    async with app:
        message_id = await app.send(Ship("o-1"), message_id="cmd-1", correlation_id="conv-1")
        store = await app.get(OutboxStore)
        written = await store.get(message_id)
    assert written is not None
    assert written.headers[CORRELATION_ID] == "conv-1"
    assert written.headers[CAUSATION_ID] == "cmd-1"
