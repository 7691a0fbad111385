"""``dockyard.integrations.litestar`` passes ``WebIntegrationContract`` (``_contract.py``)."""

from __future__ import annotations

import gc
import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar

import pytest
from litestar import Controller, Litestar, Request, Response, WebSocket, get, post, websocket
from litestar.di import NamedDependency, Provide
from litestar.enums import HttpMethod
from litestar.exceptions import HTTPException, ImproperlyConfiguredException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery, JSONBody, SkipValidation
from litestar.response import Stream
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from dockyard import App, ISender, contextual, module, scoped
from dockyard.exceptions import (
    ConcurrencyError,
    IntegrationNotSetUpError,
    ModuleConfigurationError,
    NotExportedError,
)
from dockyard.integrations.litestar import (
    DockyardPlugin,
    FromDockyard,
    Inject,
    inject,
    last_event_id,
    sse_response,
)
from integration.web import _contract as contract
from integration.web._asgi import Till, asgi_get, till_of

# The handlers that inject, undecorated: `route(..., routed=...)` declares them with `Inject`
# dependencies (Litestar's DI), or under `@inject` (the wrapper resolves them, no dependency).


async def place(data: JSONBody[contract.OrderIn], sender: FromDockyard[ISender]) -> dict[str, str]:
    return {"order_id": await sender.send(contract.PlaceOrder(data.order_id, data.quantity))}


async def place_then_fail(data: JSONBody[contract.OrderIn], sender: FromDockyard[ISender]) -> None:
    # written in the request's unit of work, which the error rolls back
    await sender.send(contract.PlaceOrder(data.order_id, data.quantity))
    raise contract.SecretError("database password is hunter2")


async def get_order(order_id: FromPath[str], sender: FromDockyard[ISender]) -> dict[str, str]:
    return {"order_id": await sender.send(contract.GetOrder(order_id))}


async def commit_fails(resource: FromDockyard[contract.FailingCommit]) -> str:
    return "never sent"


async def me(user: FromDockyard[contract.User]) -> dict[str, str]:
    return {"name": user.name}


async def private(value: FromDockyard[contract.Private]) -> None: ...


def route(
    method: Callable[..., HTTPRouteHandler],
    path: str,
    handler: Callable[..., Any],
    *,
    routed: bool,
    **injected: Any,
) -> HTTPRouteHandler:
    """``@method(path)`` over ``handler``: its ``FromDockyard`` parameters resolved under
    ``@inject`` when ``routed``, else by an ``Inject`` of each name in ``injected``."""
    if routed:
        return method(path)(inject(handler))
    dependencies = {name: Inject(dependency) for name, dependency in injected.items()}
    return method(path, dependencies=dependencies)(handler)


@get("/conflict")
async def conflict() -> None:
    raise ConcurrencyError("Order-1", 1, 2)


@get("/teapot")
async def teapot() -> None:
    raise contract.Teapot("short and stout")


@get("/forbidden")
async def forbidden() -> None:
    raise HTTPException(status_code=403, detail="Not yours.", headers={"x-why": "owner"})


@get("/count/{limit:int}")
async def count(request: Request[Any, Any, Any], limit: FromPath[int]) -> Stream:
    return sse_response(request, contract.CountTo(limit), retry=1500, ping=None)


@get("/count/{limit:int}/resumable")
async def count_resumable(request: Request[Any, Any, Any], limit: FromPath[int]) -> Stream:
    after = int(last_event_id(request) or 0)
    return sse_response(request, contract.CountTo(limit, after=after), id_of=str)


@get("/count/{limit:int}/then-wait")
async def count_then_wait(request: Request[Any, Any, Any], limit: FromPath[int]) -> Stream:
    return sse_response(request, contract.CountTo(limit, then_wait=True), ping=0.05, event="count")


class TestLitestar(contract.WebIntegrationContract):
    request_type = Request
    openapi_path = "/schema/openapi.json"
    endpoint_word = "handler"
    routed: ClassVar[bool] = False
    """The handlers under ``@inject`` rather than with ``Inject`` dependencies."""

    @staticmethod
    def current_user(request: Request) -> contract.User:  # type: ignore[type-arg] # the context's key
        return contract.User(request.headers.get("x-user", "anonymous"))

    def lifespan(self, web: Any) -> AbstractAsyncContextManager[Any]:
        return web.lifespan()  # type: ignore[no-any-return]

    def web_app(
        self,
        app: App,
        probe: contract.Probe,
        *,
        background_services: bool = False,
        private_route: bool = False,
    ) -> Litestar:
        async def scopes(
            first: FromDockyard[contract.Marker], second: FromDockyard[contract.Marker]
        ) -> dict[str, int]:
            await probe.overlap()
            return {"first": first.number, "second": second.number}

        routed = self.routed
        handlers = [
            route(post, "/orders", place, routed=routed, sender=ISender),
            route(post, "/orders/then-fail", place_then_fail, routed=routed, sender=ISender),
            route(get, "/orders/{order_id:str}", get_order, routed=routed, sender=ISender),
            conflict,
            teapot,
            forbidden,
            route(
                get, "/commit-fails", commit_fails, routed=routed, resource=contract.FailingCommit
            ),
            route(
                get,
                "/scopes",
                scopes,
                routed=routed,
                first=contract.Marker,
                second=contract.Marker,
            ),
            route(get, "/me", me, routed=routed, user=contract.User),
            count,
            count_then_wait,
            count_resumable,
        ]
        if private_route:
            handlers.append(route(get, "/private", private, routed=routed, value=contract.Private))
        problems = contract.problems()
        plugin = DockyardPlugin(app, problems=problems, background_services=background_services)
        return Litestar(handlers, plugins=[plugin])


GET, POST = HttpMethod.GET, HttpMethod.POST


class TestLitestarInject(TestLitestar):
    """The same contract with every injecting handler under ``@inject``: its ``FromDockyard``
    parameters are resolved by the wrapper, in a scope it opens, not by Litestar dependencies."""

    routed = True

    async def test_the_handlers_inject_without_litestar_dependencies(self, served: Any) -> None:
        web = self.web_app(served.app, served.probe)
        routes = {r.path_format: r for r in web.routes if isinstance(r, HTTPRoute)}
        injecting = {"/orders": POST, "/orders/{order_id}": GET, "/me": GET}
        injecting |= {"/orders/then-fail": POST, "/commit-fails": GET, "/scopes": GET}
        for path, method in injecting.items():
            handler, kwargs_model = routes[path].route_handler_map[method]
            assert getattr(handler.fn, "__dockyard_dependencies__", ()), path
            assert not kwargs_model.dependency_batches, path  # not even `dockyard_scope`


async def test_sse_response_in_an_app_without_the_plugin_names_the_fix() -> None:
    raised: list[Exception] = []

    def keep(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        raised.append(exc)
        return Response(None, status_code=500)

    web = Litestar([count], exception_handlers={Exception: keep})
    async with AsyncTestClient(web) as client:
        assert (await client.get("/count/3")).status_code == 500
    assert [type(error) for error in raised] == [IntegrationNotSetUpError]
    message = str(raised[0])
    assert "This Litestar app has no dockyard app" in message
    assert "`sse_response` of handler `GET /count/{limit}`" in message
    assert "Hint: call `Litestar(..., plugins=[DockyardPlugin(app)])`" in message


# -- @inject, in process -------------------------------------------------------------------------


class Tally:
    """A scoped object: one per scope."""


class Ledger:
    def __init__(self, tally: Tally) -> None:
        self.tally = tally


async def ledger_of(book: FromDockyard[Ledger]) -> Ledger:
    """A dependency of the user's that injects through Litestar's DI (``Inject``)."""
    return book


# A named dependency of the user's, not dockyard's: `inject` leaves it to Litestar.
OwnLedger = NamedDependency[SkipValidation[Ledger]]


def tills_web(ends: list[str]) -> Litestar:
    @module(providers=[scoped(Tally), scoped(Ledger), scoped(Till, till_of(ends))])
    class Shop: ...

    @get("/sale")
    @inject
    async def sale(
        amount: FromQuery[int], request: Request[Any, Any, Any], till: FromDockyard[Till]
    ) -> dict[str, Any]:
        """Ring up a sale."""
        assert isinstance(till, Till)
        return {"amount": amount, "path": request.url.path, "ends": list(ends)}

    @post("/refund")
    @inject
    async def refund(till: FromDockyard[Till]) -> None:
        raise HTTPException(status_code=409, detail="No refunds.")

    @get("/tally")
    @inject
    def tally(value: FromDockyard[Tally]) -> str:  # synchronous: run in a worker thread
        return type(value).__name__

    @get("/same", dependencies={"ledger": Provide(ledger_of), "book": Inject(Ledger)})
    @inject
    async def same(tally: FromDockyard[Tally], ledger: OwnLedger) -> bool:
        return ledger.tally is tally  # `ledger_of` opened the request's scope: one for both

    return Litestar([sale, refund, tally, same], plugins=[DockyardPlugin(App.build(Shop))])


async def test_inject_commits_when_the_handler_returns_and_rolls_back_when_it_raises() -> None:
    ends: list[str] = []
    async with AsyncTestClient(tills_web(ends)) as client:
        sale = await client.get("/sale", params={"amount": 3})
        assert (sale.status_code, sale.json()) == (200, {"amount": 3, "path": "/sale", "ends": []})
        assert ends == ["committed"]  # before the response
        refund = await client.post("/refund")
        assert refund.headers["content-type"] == "application/problem+json"
        assert (refund.status_code, refund.json()) == (
            409,
            {
                "type": "about:blank",
                "title": "Conflict",
                "status": 409,
                "detail": "No refunds.",
                "instance": "/refund",
            },
        )
        assert ends == ["committed", "rolled back"]
        assert (await client.get("/tally")).text == "Tally"
        assert (await client.get("/same")).json() is True


async def test_inject_keeps_the_schema_of_the_handler_without_the_injected_parameters() -> None:
    async with AsyncTestClient(tills_web([])) as client:
        schema = (await client.get("/schema/openapi.json")).json()
    sale = schema["paths"]["/sale"]["get"]
    assert [p["name"] for p in sale["parameters"]] == ["amount"]  # not `till`, nor `request`
    assert sale["operationId"] == "SaleSale"  # the handler's name
    assert sale["summary"] == "Sale"
    assert "parameters" not in schema["paths"]["/refund"]["post"]
    assert "parameters" not in schema["paths"]["/tally"]["get"]


async def test_inject_in_an_app_without_the_plugin_names_the_fix() -> None:
    raised: list[Exception] = []

    def keep(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        raised.append(exc)
        return Response(None, status_code=500)

    @get("/tally")
    @inject
    async def tally(value: FromDockyard[Tally]) -> None: ...

    web = Litestar([tally], exception_handlers={Exception: keep})
    async with AsyncTestClient(web) as client:
        assert (await client.get("/tally")).status_code == 500
    assert [type(error) for error in raised] == [IntegrationNotSetUpError]
    message = str(raised[0])
    assert "This Litestar app has no dockyard app" in message
    assert "`FromDockyard[Tally]` of handler function `" in message
    assert "test_inject_in_an_app_without_the_plugin_names_the_fix.<locals>.tally`" in message
    assert "Hint: call `Litestar(..., plugins=[DockyardPlugin(app)])`" in message
    assert isinstance(raised[0], RuntimeError)


async def test_inject_is_checked_at_start_up_naming_the_handler() -> None:
    @module(providers=[scoped(Tally)])
    class Inner: ...

    @module(imports=[Inner])
    class Root: ...

    @get("/tally")
    @inject
    async def tally(value: FromDockyard[Tally]) -> None: ...

    app = App.build(Root)
    web = Litestar([tally], plugins=[DockyardPlugin(app)])
    with pytest.raises(ExceptionGroup) as raised:  # the test client's task group wraps it
        async with AsyncTestClient(web):
            pass
    [error] = raised.value.exceptions
    assert isinstance(error, ModuleConfigurationError)
    [problem] = error.problems
    assert isinstance(problem, NotExportedError)
    assert "`Tally` (for handler `GET /tally`), provided by `Inner`" in str(problem)
    assert not app.is_started


def _root(*, reads_request: bool) -> type:
    """A root module providing ``Tally``; with ``reads_request``, also ``contextual(Request)``:
    a handler under ``inject`` then gets the request by the plugin's ``before_request`` hook
    (the scope's context needs it), else a wrapper made for the plugin's app (no hook)."""
    request = [contextual(Request)] if reads_request else []

    @module(providers=[scoped(Tally), *request])
    class Root: ...

    return Root


@pytest.mark.parametrize("reads_request", [True, False], ids=["handed", "bound"])
async def test_inject_runs_the_handlers_own_before_request_hook_and_its_answer(
    reads_request: bool,
) -> None:
    """The hook Litestar would have called (the handler's, else its router's or app's) runs,
    before the handler: after the plugin's hook handed the request over, or, when nothing is
    handed over, alone; a response it returns is the answer, and the handler does not run."""
    seen: list[str] = []
    Root = _root(reads_request=reads_request)  # noqa: N806 - a module class

    async def app_hook(request: Request[Any, Any, Any]) -> Any:
        seen.append(f"app {request.url.path}")
        return "stopped" if request.query_params.get("stop") else None

    def handler_hook(request: Request[Any, Any, Any]) -> None:  # synchronous: Litestar wraps it
        seen.append(f"handler {request.url.path}")

    @get("/own")
    @inject
    async def own(tally: FromDockyard[Tally]) -> str:
        seen.append("own ran")
        return type(tally).__name__

    @get("/hooked", before_request=handler_hook)
    @inject
    async def hooked(request: Request[Any, Any, Any], tally: FromDockyard[Tally]) -> str:
        seen.append(f"hooked ran {request.url.path}")
        return type(tally).__name__

    @get("/hooked-too", before_request=handler_hook)
    @inject
    async def hooked_too(tally: FromDockyard[Tally]) -> str:
        seen.append("hooked-too ran")
        return type(tally).__name__

    web = Litestar(
        [own, hooked, hooked_too],
        before_request=app_hook,
        plugins=[DockyardPlugin(App.build(Root))],
    )
    async with AsyncTestClient(web) as client:
        assert (await client.get("/own")).text == "Tally"
        assert (await client.get("/own", params={"stop": 1})).text == "stopped"
        assert (await client.get("/own")).text == "Tally"  # the hand-over was cleared
        assert (await client.get("/hooked")).text == "Tally"
        assert (await client.get("/hooked-too")).text == "Tally"
    assert seen == [
        "app /own",
        "own ran",
        "app /own",
        "app /own",
        "own ran",
        "handler /hooked",
        "hooked ran /hooked",
        "handler /hooked-too",
        "hooked-too ran",
    ]


async def test_a_handler_under_inject_takes_no_request_from_an_earlier_one() -> None:
    """The request handed to a wrapper does not outlive the handler, nor a hook's own answer
    (the handler did not run): a handler of an app without the plugin, called next in the
    same task, still says the plugin is missing instead of running in the other app. (The
    app reads the request, so its handlers get it by the hook.)"""
    Root = _root(reads_request=True)  # noqa: N806 - a module class

    def stop(request: Request[Any, Any, Any]) -> str:
        return "stopped"

    @get("/stopped", before_request=stop)
    @inject
    async def stopped(value: FromDockyard[Tally]) -> str:
        return "ran"

    @get("/runs")
    @inject
    async def runs(value: FromDockyard[Tally]) -> str:
        return "ran"

    @get("/bare")
    @inject
    async def bare(value: FromDockyard[Tally]) -> str:
        return "ran"

    with_plugin = Litestar([stopped, runs], plugins=[DockyardPlugin(App.build(Root))])
    without = Litestar([bare], debug=False)
    statuses = []
    async with with_plugin.lifespan():
        for path, answer in (("/runs", "ran"), ("/stopped", "stopped")):
            assert await asgi_get(with_plugin, path) == (200, answer)
            statuses.append((await asgi_get(without, "/bare"))[0])  # the same task, no hook
    assert statuses == [500, 500]


class Label:
    def __init__(self, name: str) -> None:
        self.name = name


@get("/label")
@inject
async def label_of(label: FromDockyard[Label]) -> str:
    return label.name


async def test_one_handler_in_two_litestar_apps_resolves_in_each_ones_dockyard_app() -> None:
    """Litestar registers a copy of the handler in each app; each copy gets a hook of its own,
    which hands over its own plugin's app."""

    def web_of(name: str) -> Litestar:
        @module(providers=[scoped(Label, lambda: Label(name))])
        class Root: ...

        return Litestar([label_of], plugins=[DockyardPlugin(App.build(Root))])

    first, second = web_of("first"), web_of("second")
    async with first.lifespan(), second.lifespan():
        answers = [await asgi_get(web, "/label") for web in (first, second, first)]
    assert answers == [(200, "first"), (200, "second"), (200, "first")]


class Caller:
    def __init__(self, request: Request) -> None:  # type: ignore[type-arg] # the context's key
        self.path = request.url.path


@get("/caller")
@inject
async def caller_of(label: FromDockyard[Label], caller: FromDockyard[Caller]) -> str:
    return f"{label.name} {caller.path}"


async def test_one_handler_in_an_app_that_reads_the_request_and_in_one_that_does_not() -> None:
    """The plugin of an app whose providers read the request hands it over by the hook; the
    other app's copy of the same handler runs the wrapper made for its app, which opens a
    scope with nothing in its context."""

    @module(providers=[scoped(Label, lambda: Label("reads")), contextual(Request), scoped(Caller)])
    class Reads: ...

    @module(providers=[scoped(Label, lambda: Label("plain"))])
    class Plain: ...

    reads = Litestar([caller_of, label_of], plugins=[DockyardPlugin(App.build(Reads))])
    plain = Litestar([label_of], plugins=[DockyardPlugin(App.build(Plain))])
    async with reads.lifespan(), plain.lifespan():
        answers = [
            await asgi_get(reads, "/caller"),
            await asgi_get(plain, "/label"),
            await asgi_get(reads, "/label"),
        ]
    assert answers == [(200, "reads /caller"), (200, "plain"), (200, "reads")]


TILLS_SEEN: list[str] = []


def _tills_hook(request: Request[Any, Any, Any]) -> None:
    TILLS_SEEN.append(request.url.path)


class Tills(Controller):
    path = "/tills"
    before_request = _tills_hook  # type: ignore[assignment] # Litestar unbinds it; sync: still called

    @get("/")
    @inject
    async def count(self, tally: FromDockyard[Tally]) -> str:
        return f"{type(self).__name__} {type(tally).__name__}"

    @get("/sync")
    @inject
    def count_in_a_thread(self, request: Request[Any, Any, Any], tally: FromDockyard[Tally]) -> str:
        return f"{type(self).__name__} {type(tally).__name__} {request.url.path}"


async def test_inject_on_a_controllers_methods() -> None:
    """Litestar calls a controller's handler with the controller as its first argument."""

    @module(providers=[scoped(Tally)])
    class Root: ...

    web = Litestar([Tills], plugins=[DockyardPlugin(App.build(Root))])
    async with web.lifespan():
        assert await asgi_get(web, "/tills") == (200, "Tills Tally")
        assert await asgi_get(web, "/tills/sync") == (200, "Tills Tally /tills/sync")
    assert TILLS_SEEN == ["/tills", "/tills/sync"]


def test_inject_on_a_websocket_handler_is_refused_when_the_app_is_built() -> None:
    @websocket("/ws")
    @inject
    async def tally_socket(socket: WebSocket[Any, Any, Any], tally: FromDockyard[Tally]) -> None:
        await socket.accept()

    @module(providers=[scoped(Tally)])
    class Root: ...

    with pytest.raises(ImproperlyConfiguredException) as raised:
        Litestar([tally_socket], plugins=[DockyardPlugin(App.build(Root))])
    message = str(raised.value)
    assert "`@inject` is on the websocket handler `" in message
    assert "tally_socket` of `/ws`: it wraps HTTP handlers only" in message
    assert "Hint: remove it" in message


def test_inject_leaves_a_handler_without_from_dockyard_and_a_generator_alone() -> None:
    async def plain(number: int) -> int:
        return number

    async def stream(tally: FromDockyard[Tally]) -> AsyncIterator[int]:
        yield 1

    async def own(ledger: OwnLedger) -> Ledger:
        return ledger

    assert inject(plain) is plain
    assert inject(stream) is stream
    assert inject(own) is own  # a named dependency, but not dockyard's
    wrapped = inject(ledger_of)
    assert wrapped is not ledger_of
    assert inject(wrapped) is wrapped
    assert list(inspect.signature(wrapped).parameters) == []  # the request comes by a hook


@get("/inject", dependencies={"tally": Inject(Tally)})
async def tally_injected(tally: FromDockyard[Tally]) -> str:
    return type(tally).__name__


@get("/wrapped")
@inject
async def tally_wrapped(tally: FromDockyard[Tally]) -> str:
    return type(tally).__name__


@pytest.mark.parametrize("path", ["/inject", "/wrapped"])
async def test_a_request_leaves_nothing_for_the_cyclic_garbage_collector(path: str) -> None:
    """The scope kept in the ASGI scope for ``inject`` (by ``dockyard_scope``) holds the
    ``Request`` in its context, which holds the ASGI scope: it leaves when the scope closes."""

    @module(providers=[scoped(Tally)])
    class Root: ...

    web = Litestar([tally_injected, tally_wrapped], plugins=[DockyardPlugin(App.build(Root))])
    async with web.lifespan():
        assert (await asgi_get(web, path))[0] == 200  # imports, caches
        gc.collect()
        gc.disable()
        try:
            for _ in range(20):
                assert (await asgi_get(web, path))[0] == 200
            garbage = gc.collect()
        finally:
            gc.enable()
    assert garbage == 0
