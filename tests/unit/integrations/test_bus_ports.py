"""``FromFastApi[ISender]`` (and ``IPublisher``, ``IMessageBus``) in the web integrations: the
bus an endpoint gets is the request scope's, on every path (FastAPI's dependency and
``inject``, Litestar's ``Inject`` and ``@inject``), whether Dishka built it (a first request)
or ``resolve_in`` did (the requests after it); a port provided otherwise stays Dishka's."""

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from dishka import Provider, Scope, make_async_container
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from litestar import Litestar, post
from litestar.testing import AsyncTestClient

from dockyard import App, module, scoped
from dockyard.integrations import fastapi as dockyard_fastapi
from dockyard.integrations import litestar as dockyard_litestar
from dockyard.integrations.fastapi import FromDockyard as FromFastApi
from dockyard.integrations.litestar import FromDockyard as FromLitestar
from dockyard.integrations.litestar import Inject
from dockyard.messaging import IMessageBus, IPublisher, ISender, Request, RequestHandler
from dockyard.messaging._bus import MessageBus, resolve_in


class Tally:
    """Scoped: one per request scope."""

    def __init__(self) -> None:
        self.count = 0


@dataclass(frozen=True)
class Bump(Request[int]):
    pass


class BumpHandler(RequestHandler[Bump, int]):
    def __init__(self, tally: Tally) -> None:
        self.tally = tally

    async def handle(self, request: Bump, /) -> int:
        self.tally.count += 1
        return self.tally.count


@module(providers=[scoped(Tally)], handlers=[BumpHandler], exports=[Tally])
class Root: ...


class FakeSender:
    """What a test puts in place of the sender: answers without the handlers."""

    async def send(self, request: Any, /, **_: Any) -> int:
        return -1


async def _answer(port: Any, tally: Tally) -> dict[str, int]:
    first = await port.send(Bump())
    second = await port.send(Bump())
    # the endpoint's bus works in the request's scope: the handler's Tally is the endpoint's
    return {"first": first, "second": second, "seen": tally.count}


def fastapi_app(app: App) -> FastAPI:
    web = FastAPI()
    dockyard_fastapi.setup_dockyard(web, app)

    @web.post("/depends/sender")
    async def depends_sender(
        sender: FromFastApi[ISender], tally: FromFastApi[Tally]
    ) -> dict[str, int]:
        return await _answer(sender, tally)

    @web.post("/depends/bus")
    async def depends_bus(bus: FromFastApi[IMessageBus], tally: FromFastApi[Tally]) -> Any:
        return await _answer(bus, tally)

    @web.post("/routed/sender")
    @dockyard_fastapi.inject
    async def routed_sender(
        sender: FromFastApi[ISender], tally: FromFastApi[Tally]
    ) -> dict[str, int]:
        return await _answer(sender, tally)

    return web


def litestar_app(app: App) -> Litestar:
    @post(
        "/depends/sender",
        dependencies={"sender": Inject(ISender), "tally": Inject(Tally)},
        status_code=200,
    )
    async def depends_sender(
        sender: FromLitestar[ISender], tally: FromLitestar[Tally]
    ) -> dict[str, int]:
        return await _answer(sender, tally)

    @post(
        "/depends/bus",
        dependencies={"bus": Inject(IMessageBus), "tally": Inject(Tally)},
        status_code=200,
    )
    async def depends_bus(bus: FromLitestar[IMessageBus], tally: FromLitestar[Tally]) -> Any:
        return await _answer(bus, tally)

    @post("/routed/sender", status_code=200)
    @dockyard_litestar.inject
    async def routed_sender(
        sender: FromLitestar[ISender], tally: FromLitestar[Tally]
    ) -> dict[str, int]:
        return await _answer(sender, tally)

    return Litestar(
        [depends_sender, depends_bus, routed_sender],
        plugins=[dockyard_litestar.DockyardPlugin(app)],
    )


@pytest.fixture(params=["fastapi", "litestar"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[tuple[App, Any]]:
    app = App.build(Root)
    if request.param == "fastapi":
        web = fastapi_app(app)
        async with (
            web.router.lifespan_context(web),
            AsyncClient(transport=ASGITransport(app=web), base_url="http://test") as http,
        ):
            yield app, http
    else:
        async with AsyncTestClient(litestar_app(app)) as http:
            yield app, http


PATHS = ["/depends/sender", "/depends/bus", "/routed/sender"]
REAL = {"first": 1, "second": 2, "seen": 2}


async def _post(http: Any, path: str) -> Mapping[str, int]:
    response = await http.post(path)
    assert response.status_code == 200, response.text
    answer: Mapping[str, int] = response.json()
    return answer


async def test_each_request_gets_a_bus_of_its_own_scope(client: tuple[App, Any]) -> None:
    _, http = client
    for _ in range(3):  # the first request of a path, and those after it
        for path in PATHS:
            assert await _post(http, path) == REAL, path


async def test_a_port_provided_otherwise_is_resolved_by_dishka_every_time() -> None:
    """``override`` refuses a second provider of a bus port today; a container that provides
    one otherwise (as a future override might) still gets its own on every resolution."""
    provider = Provider(scope=Scope.REQUEST)
    provider.provide(FakeSender, provides=ISender)
    provider.provide(FakeSender, provides=IMessageBus)
    container = make_async_container(provider)
    try:
        for _ in range(3):
            async with container() as scope:
                assert isinstance(await resolve_in(scope, ISender), FakeSender)
                assert isinstance(await resolve_in(scope, IMessageBus), FakeSender)
    finally:
        await container.close()


async def test_the_bus_of_a_scope_is_bound_to_that_scope() -> None:
    app = App.build(Root)
    async with app:
        for _ in range(3):  # the first scope, then those served without Dishka's resolution
            async with app.scope() as scope:
                sender = await resolve_in(scope, ISender)
                assert isinstance(sender, MessageBus)
                assert await sender.send(Bump()) == 1
                assert await sender.send(Bump()) == 2
                assert (await scope.get(Tally)).count == 2


def test_the_ports_are_the_ones_resolved_quicker() -> None:
    from dockyard.messaging._bus import _BUS_PORTS

    assert frozenset({ISender, IPublisher, IMessageBus}) == _BUS_PORTS
