"""``dockyard.integrations.fastapi`` passes ``WebIntegrationContract`` (``_contract.py``)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any, ClassVar

import fastapi
import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, WebSocket
from fastapi.exceptions import FastAPIError
from fastapi.routing import APIRoute

from dockyard import App, ISender, module, scoped
from dockyard.exceptions import (
    ConcurrencyError,
    IntegrationNotSetUpError,
    ModuleConfigurationError,
    NotExportedError,
)
from dockyard.integrations import fastapi as dockyard_fastapi
from dockyard.integrations.fastapi import (
    DockyardRoute,
    EventSourceResponse,
    FromDockyard,
    inject,
    last_event_id,
    setup_dockyard,
    sse_response,
)
from integration.web import _contract as contract
from integration.web._asgi import Till, asgi_get, till_of


class TestFastAPI(contract.WebIntegrationContract):
    request_type = Request
    openapi_path = "/openapi.json"
    endpoint_word = "endpoint"
    route_class: ClassVar[type[APIRoute]] = APIRoute

    @staticmethod
    def current_user(request: Request) -> contract.User:
        return contract.User(request.headers.get("x-user", "anonymous"))

    def lifespan(self, web: Any) -> AbstractAsyncContextManager[Any]:
        return web.router.lifespan_context(web)  # type: ignore[no-any-return]

    def web_app(
        self,
        app: App,
        probe: contract.Probe,
        *,
        background_services: bool = False,
        private_route: bool = False,
    ) -> FastAPI:
        web = FastAPI(title="orders")
        web.router.route_class = self.route_class
        problems = contract.problems()
        setup_dockyard(web, app, problems=problems, background_services=background_services)

        @web.post("/orders", status_code=201)
        async def place(order: contract.OrderIn, sender: FromDockyard[ISender]) -> dict[str, str]:
            order_id = await sender.send(contract.PlaceOrder(order.order_id, order.quantity))
            return {"order_id": order_id}

        @web.post("/orders/then-fail")
        async def place_then_fail(order: contract.OrderIn, sender: FromDockyard[ISender]) -> None:
            # written in the request's unit of work, which the error rolls back
            await sender.send(contract.PlaceOrder(order.order_id, order.quantity))
            raise contract.SecretError("database password is hunter2")

        @web.get("/orders/{order_id}")
        async def get(order_id: str, sender: FromDockyard[ISender]) -> dict[str, str]:
            return {"order_id": await sender.send(contract.GetOrder(order_id))}

        @web.get("/conflict")
        async def conflict() -> None:
            raise ConcurrencyError("Order-1", 1, 2)

        @web.get("/teapot")
        async def teapot() -> None:
            raise contract.Teapot("short and stout")

        @web.get("/forbidden")
        async def forbidden() -> None:
            raise HTTPException(403, "Not yours.", headers={"x-why": "owner"})

        @web.get("/commit-fails")
        async def commit_fails(_: FromDockyard[contract.FailingCommit]) -> str:
            return "never sent"

        @web.get("/scopes")
        async def scopes(
            first: FromDockyard[contract.Marker], second: FromDockyard[contract.Marker]
        ) -> dict[str, int]:
            await probe.overlap()
            return {"first": first.number, "second": second.number}

        @web.get("/me")
        async def me(user: FromDockyard[contract.User]) -> dict[str, str]:
            return {"name": user.name}

        @web.get("/count/{limit}")
        async def count(limit: int, request: Request) -> EventSourceResponse:
            return sse_response(request, contract.CountTo(limit), retry=1500, ping=None)

        @web.get("/count/{limit}/resumable")
        async def count_resumable(limit: int, request: Request) -> EventSourceResponse:
            after = int(last_event_id(request) or 0)
            return sse_response(request, contract.CountTo(limit, after=after), id_of=str)

        @web.get("/count/{limit}/then-wait")
        async def count_then_wait(limit: int, request: Request) -> EventSourceResponse:
            stream = contract.CountTo(limit, then_wait=True)
            return sse_response(request, stream, ping=0.05, event="count")

        if private_route:

            @web.get("/private")
            async def private(_: FromDockyard[contract.Private]) -> None: ...

        return web


class TestFastAPIPublicPath(TestFastAPI):
    """The same contract where FastAPI's function-scoped exit stack is not where dockyard
    looks for it (a FastAPI it does not know): a ``yield`` dependency holds the scope."""

    @pytest.fixture(autouse=True)
    def _public_path(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(dockyard_fastapi, "_FAST", False)


class TestFastAPIRoute(TestFastAPI):
    """The same contract with every endpoint under ``DockyardRoute``: the endpoint's
    ``FromDockyard`` parameters are resolved by the wrapper, not by FastAPI dependencies."""

    route_class = DockyardRoute

    async def test_the_endpoints_inject_without_fastapi_dependencies(self, served: Any) -> None:
        web = self.web_app(served.app, served.probe)
        routes = {route.path: route for route in web.routes if isinstance(route, APIRoute)}
        for path in ("/orders", "/orders/{order_id}", "/commit-fails", "/scopes", "/me"):
            assert isinstance(routes[path], DockyardRoute)
            assert not list(dockyard_fastapi._injected(routes[path].dependant)), path


class TestFastAPIRoutePublicPath(TestFastAPIRoute):
    """``DockyardRoute`` where FastAPI's exit stack is not known (user dependencies that take
    ``FromDockyard`` share the scope through the public yield dependency)."""

    @pytest.fixture(autouse=True)
    def _public_path(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(dockyard_fastapi, "_FAST", False)


def test_the_installed_fastapi_takes_the_fast_path() -> None:
    assert dockyard_fastapi._has_function_stack()


@pytest.mark.parametrize("version", ["0.120.4", "1.0.0", "2.1", "dev"])
def test_a_fastapi_outside_the_known_versions_takes_the_public_path(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    monkeypatch.setattr(fastapi, "__version__", version)
    assert not dockyard_fastapi._has_function_stack()


# -- one scope per request, in process ---------------------------------------------------------


class Tally:
    """A scoped object: one per scope."""


class Ledger:
    def __init__(self, tally: Tally) -> None:
        self.tally = tally


@module(providers=[scoped(Tally), scoped(Ledger)])
class Books: ...


async def ledger_of(ledger: FromDockyard[Ledger]) -> Ledger:
    """A dependency of the user's that takes ``FromDockyard`` too."""
    return ledger


def books_web(app: App, route_class: type[APIRoute] = APIRoute) -> FastAPI:
    web = FastAPI()
    web.router.route_class = route_class
    setup_dockyard(web, app)

    @web.get("/same")
    async def same(
        tally: FromDockyard[Tally], ledger: Annotated[Ledger, Depends(ledger_of)]
    ) -> dict[str, bool]:
        return {"same": ledger.tally is tally}

    return web


@pytest.fixture(params=["fast", "public"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(dockyard_fastapi, "_FAST", request.param == "fast")
    return str(request.param)


@pytest.fixture(params=[APIRoute, DockyardRoute])
def route_class(request: pytest.FixtureRequest) -> type[APIRoute]:
    return request.param  # type: ignore[no-any-return]


@pytest.mark.usefixtures("path")
async def test_the_endpoint_and_a_dependency_of_the_users_share_the_requests_scope(
    route_class: type[APIRoute],
) -> None:
    web = books_web(App.build(Books), route_class)
    async with web.router.lifespan_context(web):
        assert await asgi_get(web, "/same") == (200, {"same": True})


@pytest.mark.usefixtures("path")
async def test_a_request_leaves_nothing_for_the_cyclic_garbage_collector(
    route_class: type[APIRoute],
) -> None:
    """A reference cycle per request (the scope in the ASGI scope, the ``Request`` in the
    scope's context) is memory the GC must find, and CPU: +30 µs a request under uvicorn."""
    web = books_web(App.build(Books), route_class)
    async with web.router.lifespan_context(web):
        await asgi_get(web, "/same")  # imports, caches
        gc.collect()
        gc.disable()
        try:
            for _ in range(20):
                assert await asgi_get(web, "/same") == (200, {"same": True})
            garbage = gc.collect()
        finally:
            gc.enable()
    assert garbage == 0


# -- DockyardRoute and @inject -------------------------------------------------------------------


def tills_web(ends: list[str]) -> FastAPI:
    @module(providers=[scoped(Tally), scoped(Ledger), scoped(Till, till_of(ends))])
    class Shop: ...

    web = FastAPI()
    setup_dockyard(web, App.build(Shop))
    router = APIRouter(prefix="/shop", route_class=DockyardRoute)

    @router.get("/sale")
    async def sale(amount: int, request: Request, till: FromDockyard[Till]) -> dict[str, Any]:
        """Ring up a sale."""
        assert isinstance(till, Till)
        return {"amount": amount, "path": request.url.path, "ends": list(ends)}

    @router.get("/refund")
    async def refund(till: FromDockyard[Till]) -> None:
        raise HTTPException(409, "No refunds.")

    @router.get("/count")
    def count(tally: FromDockyard[Tally]) -> str:  # a sync endpoint: run in the thread pool
        return type(tally).__name__

    web.include_router(router)

    @web.get("/decorated")
    @inject
    async def decorated(
        tally: FromDockyard[Tally], ledger: Annotated[Ledger, Depends(ledger_of)]
    ) -> bool:
        return ledger.tally is tally  # the dependency opened the scope: the endpoint shares it

    return web


async def test_a_dockyard_route_commits_when_the_endpoint_returns_before_the_response() -> None:
    ends: list[str] = []
    web = tills_web(ends)
    async with web.router.lifespan_context(web):
        status, body = await asgi_get(web, "/shop/sale?amount=3")
        assert (status, body) == (200, {"amount": 3, "path": "/shop/sale", "ends": []})
        assert ends == ["committed"]
        assert await asgi_get(web, "/shop/refund") == (
            409,
            {
                "type": "about:blank",
                "title": "Conflict",
                "status": 409,
                "detail": "No refunds.",
                "instance": "/shop/refund",
            },
        )
        assert ends == ["committed", "rolled back"]
        assert await asgi_get(web, "/shop/count") == (200, "Tally")
        assert await asgi_get(web, "/decorated") == (200, True)


async def test_a_dockyard_route_keeps_the_schema_of_the_endpoint() -> None:
    web = tills_web([])
    async with web.router.lifespan_context(web):
        status, schema = await asgi_get(web, "/openapi.json")
    assert status == 200
    sale = schema["paths"]["/shop/sale"]["get"]
    assert [p["name"] for p in sale["parameters"]] == ["amount"]
    assert sale["description"] == "Ring up a sale."
    assert sale["operationId"] == "sale_shop_sale_get"
    assert "parameters" not in schema["paths"]["/shop/refund"]["get"]
    assert "parameters" not in schema["paths"]["/decorated"]["get"]


async def test_a_dockyard_route_in_an_app_without_setup_dockyard_names_the_fix() -> None:
    web = FastAPI()
    web.router.route_class = DockyardRoute

    @web.get("/orders")
    async def orders(tally: FromDockyard[Tally]) -> None: ...

    with pytest.raises(IntegrationNotSetUpError) as raised:
        await asgi_get(web, "/orders")
    message = str(raised.value)
    assert "This FastAPI app has no dockyard app" in message
    assert "`FromDockyard[Tally]` of endpoint" in message
    assert "orders" in message
    assert "Hint: call `setup_dockyard(web, app)`" in message
    assert isinstance(raised.value, RuntimeError)


async def test_inject_on_a_websocket_endpoint_is_refused_naming_it() -> None:
    """At start-up with ``setup_dockyard`` (in an included router too), and at the first
    connection without it: never a ``KeyError`` from inside the wrapper."""

    @module(providers=[scoped(Tally)])
    class Root: ...

    router = APIRouter(prefix="/v1")

    @router.websocket("/ws")
    @inject
    async def tally_socket(websocket: WebSocket, tally: FromDockyard[Tally]) -> None:
        await websocket.accept()

    web = FastAPI()
    setup_dockyard(web, App.build(Root))
    web.include_router(router)
    with pytest.raises(FastAPIError) as raised:
        async with web.router.lifespan_context(web):
            pass
    message = str(raised.value)
    assert "`@inject` is on the websocket endpoint `" in message
    assert "tally_socket` of `/v1/ws`: it wraps HTTP endpoints only" in message
    assert "Hint: remove it" in message

    bare = FastAPI()
    bare.include_router(router)
    with pytest.raises(FastAPIError) as raised:
        await _connect(bare, "/v1/ws")
    assert "tally_socket`: it wraps HTTP endpoints only" in str(raised.value)


async def _connect(web: Any, path: str) -> None:
    """Open a websocket to ``path`` of ``web`` through its ASGI call, then disconnect."""
    events: Iterator[dict[str, Any]] = iter(
        [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]
    )

    async def receive() -> dict[str, Any]:
        return next(events)

    async def send(message: Any) -> None:
        del message

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"test")],
        "client": ("127.0.0.1", 50000),
        "server": ("test", 80),
        "subprotocols": [],
        "state": {},
    }
    await web(scope, receive, send)


async def test_a_dockyard_route_is_checked_at_start_up_in_an_included_router() -> None:
    @module(providers=[scoped(Tally)])
    class Inner: ...

    @module(imports=[Inner])
    class Root: ...

    web = FastAPI()
    setup_dockyard(web, App.build(Root))
    router = APIRouter(prefix="/v1", route_class=DockyardRoute)

    @router.get("/tally")
    async def tally(value: FromDockyard[Tally]) -> None: ...

    web.include_router(router)
    with pytest.raises(ModuleConfigurationError) as raised:
        async with web.router.lifespan_context(web):
            pass
    [problem] = raised.value.problems
    assert isinstance(problem, NotExportedError)
    assert "`Tally` (for endpoint `GET /v1/tally`)" in str(problem)


def test_inject_leaves_an_endpoint_without_from_dockyard_and_a_generator_alone() -> None:
    async def plain(number: int) -> int:
        return number

    async def stream(tally: FromDockyard[Tally]) -> AsyncIterator[int]:
        yield 1

    assert inject(plain) is plain
    assert inject(stream) is stream
    wrapped = inject(ledger_of)
    assert inject(wrapped) is wrapped
