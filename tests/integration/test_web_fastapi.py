"""dockyard.integrations.fastapi against a real server: uvicorn on a socket, httpx as client.

The server runs in the test's event loop (``uvicorn.Server.serve`` on a socket the test bound),
so the test can look at what the app did (rows, events, outbox rows) through dockyard's public
API, and at what the stream handlers saw.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel

from dockyard import (
    App,
    Command,
    CommandHandler,
    Event,
    IPublisher,
    ISender,
    Query,
    QueryHandler,
    StreamHandler,
    StreamRequest,
    contextual,
    module,
    scoped,
)
from dockyard.di import Lifetime
from dockyard.eventsourcing import EventStore
from dockyard.exceptions import (
    AggregateNotFoundError,
    ConcurrencyError,
    ModuleConfigurationError,
    NotExportedError,
)
from dockyard.integrations import ProblemMapping, RuleViolation
from dockyard.integrations.fastapi import FromDockyard, setup_dockyard, sse_response
from dockyard.outbox import OutboxModule, OutboxStatus, OutboxStore, route
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.sql import SqlOutboxBackend, SqlUnitOfWork
from dockyard.testing.pytest import IsolatedDatabase, isolated_database
from dockyard.transport.memory import InMemoryTransport
from services import POSTGRES_URL, require_service

TIMEOUT = 30.0

orders_table = sa.Table(
    "web_orders",
    sa.MetaData(),
    sa.Column("order_id", sa.String(64), primary_key=True),
    sa.Column("quantity", sa.Integer, nullable=False),
)


# -- the app under test -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderPlaced(Event):
    order_id: str
    quantity: int


@dataclass(frozen=True, slots=True)
class PlaceOrder(Command[str]):
    order_id: str
    quantity: int
    fail_after_writes: bool = False


@dataclass(frozen=True, slots=True)
class GetQuantity(Query[int]):
    order_id: str


@dataclass(frozen=True, slots=True)
class Status:
    order_id: str
    step: int


@dataclass(frozen=True, slots=True)
class WatchOrder(StreamRequest[Status]):
    order_id: str
    steps: int  # -1: never ends


class OutOfStock(RuleViolation):
    pass


class AlreadyPlaced(RuleViolation):
    status = 409
    title = "Order already placed"


class SecretError(Exception):
    pass


class Teapot(Exception):
    pass


class FailsAtScopeExit:
    """Raises when the request's scope closes, after the endpoint returned."""


async def fails_at_scope_exit() -> AsyncIterator[FailsAtScopeExit]:
    yield FailsAtScopeExit()
    raise ConcurrencyError("order-late", 0, 1)


class Private:
    """Provided by `Internals` and not exported: endpoints must not get it."""


@module(providers=[scoped(Private)])
class Internals: ...


@dataclass
class Probe:
    """What the test observes of the app: scopes opened and closed, streams ended."""

    started: int = 0
    stopped: int = 0
    scopes: list[object] = field(default_factory=list)
    stream_finished: asyncio.Event = field(default_factory=asyncio.Event)
    stream_opened: asyncio.Event = field(default_factory=asyncio.Event)
    release_streams: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: int = 0
    both_in_flight: asyncio.Event = field(default_factory=asyncio.Event)


class RequestTag:
    """Per scope: which request it serves (from the `Request` in the scope's context)."""

    def __init__(self, request: Request) -> None:
        self.value = request.headers.get("x-tag", "")


class SeenTag:
    """Depends on `RequestTag`: the same instance when both come from one scope."""

    def __init__(self, tag: RequestTag) -> None:
        self.tag = tag


class PlaceOrderHandler(CommandHandler[PlaceOrder, str]):
    def __init__(self, uow: SqlUnitOfWork, events: EventStore, publisher: IPublisher) -> None:
        self.uow, self.events, self.publisher = uow, events, publisher

    async def handle(self, command: PlaceOrder) -> str:
        if command.quantity <= 0:
            raise OutOfStock(f"cannot order {command.quantity} items")
        placed = OrderPlaced(command.order_id, command.quantity)
        await self.events.append(f"order-{command.order_id}", [placed], expected_version=0)
        await self.uow.connection.execute(
            orders_table.insert().values(order_id=command.order_id, quantity=command.quantity)
        )
        await self.publisher.publish(placed)  # routed: an outbox row
        if command.fail_after_writes:
            raise SecretError("database password is hunter2")
        return command.order_id


class GetQuantityHandler(QueryHandler[GetQuantity, int]):
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self.uow = uow

    async def handle(self, query: GetQuantity) -> int:
        result = await self.uow.connection.execute(
            sa.select(orders_table.c.quantity).where(orders_table.c.order_id == query.order_id)
        )
        quantity = result.scalar_one_or_none()
        if quantity is None:
            raise AggregateNotFoundError("Order", query.order_id, f"order-{query.order_id}")
        return int(quantity)


class WatchOrderHandler(StreamHandler[WatchOrder, Status]):
    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    async def handle(self, request: WatchOrder) -> AsyncIterator[Status]:
        self.probe.stream_opened.set()
        try:
            for step in range(1, max(request.steps, 1) + 1):
                yield Status(request.order_id, step)
            if request.steps < 0:  # one status, then nothing until the client goes away
                await asyncio.Event().wait()
        finally:
            self.probe.stream_finished.set()


def build(
    isolated: IsolatedDatabase, probe: Probe, transport: InMemoryTransport | None = None
) -> App:
    @module(
        providers=[
            scoped(RequestTag),
            scoped(SeenTag),
            contextual(Request),
            scoped(fails_at_scope_exit),
            contextual(Probe, lifetime=Lifetime.SINGLETON),
        ],
        exports=[RequestTag, SeenTag, FailsAtScopeExit],
        handlers=[PlaceOrderHandler, GetQuantityHandler, WatchOrderHandler],
        imports=[
            Internals,
            isolated.sql_module(serializer=Serializer(TypeRegistry([OrderPlaced]))),
            OutboxModule.register(
                transport=transport or InMemoryTransport(),
                backend=SqlOutboxBackend(),
                routes=[route(OrderPlaced).to("orders")],
            ),
        ],
    )
    class Orders: ...

    @asynccontextmanager
    async def counted(app: App) -> AsyncIterator[None]:
        probe.started += 1
        yield
        probe.stopped += 1

    return App.build(Orders, context={Probe: probe}, lifespan=[counted])


class OrderIn(BaseModel):
    order_id: str
    quantity: int
    fail_after_writes: bool = False


def web_app(app: App, probe: Probe, *, background_services: bool = False) -> FastAPI:
    web = FastAPI(title="orders")
    problems = ProblemMapping().add(Teapot, 418, title="I'm a teapot", detail=str)
    setup_dockyard(web, app, problems=problems, background_services=background_services)

    @web.post("/orders", status_code=201)
    async def place(order: OrderIn, sender: FromDockyard[ISender]) -> dict[str, str]:
        order_id = await sender.send(
            PlaceOrder(order.order_id, order.quantity, order.fail_after_writes)
        )
        return {"order_id": order_id}

    @web.get("/orders/{order_id}")
    async def get(order_id: str, sender: FromDockyard[ISender]) -> dict[str, int]:
        return {"quantity": await sender.send(GetQuantity(order_id))}

    @web.get("/scope")
    async def which_scope(
        tag: FromDockyard[RequestTag], seen: FromDockyard[SeenTag]
    ) -> dict[str, Any]:
        probe.in_flight += 1
        if probe.in_flight == 2:
            probe.both_in_flight.set()
        await asyncio.wait_for(probe.both_in_flight.wait(), TIMEOUT)
        probe.scopes.append(tag)
        return {"tag": tag.value, "one_scope": seen.tag is tag}

    @web.post("/late")
    async def late(_: FromDockyard[FailsAtScopeExit]) -> dict[str, str]:
        return {"written": "late"}

    @web.get("/conflict")
    async def conflict() -> None:
        raise ConcurrencyError("order-1", 1, 2)

    @web.get("/already")
    async def already() -> None:
        raise AlreadyPlaced("order 1 was placed yesterday")

    @web.get("/forbidden")
    async def forbidden() -> None:
        raise HTTPException(403, "Not yours.", headers={"x-why": "owner"})

    @web.get("/teapot")
    async def teapot() -> None:
        raise Teapot("short and stout")

    @web.get("/orders/{order_id}/status")
    async def status(order_id: str, request: Request, steps: int = -1) -> Any:
        return sse_response(request, WatchOrder(order_id, steps), retry=1500, ping=None)

    @web.get("/orders/{order_id}/quiet")
    async def quiet(order_id: str, request: Request) -> Any:
        return sse_response(request, WatchOrder(order_id, -1), ping=0.05, event="status")

    return web


# -- a real server ------------------------------------------------------------------------------


@dataclass
class Server:
    client: httpx.AsyncClient
    app: App
    probe: Probe
    web: FastAPI
    isolated: IsolatedDatabase


@asynccontextmanager
async def serve(web: FastAPI) -> AsyncIterator[str]:
    """Run ``web`` on uvicorn on a free port until the block ends; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()  # connections wait in the backlog until uvicorn accepts them
    port = sock.getsockname()[1]
    ready = asyncio.Event()

    @asynccontextmanager
    async def signal_ready(_: FastAPI) -> AsyncIterator[None]:
        ready.set()
        yield

    lifespan = web.router.lifespan_context
    web.router.lifespan_context = _chain(lifespan, signal_ready)
    server = uvicorn.Server(uvicorn.Config(web, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        waiting = asyncio.ensure_future(ready.wait())
        await asyncio.wait({task, waiting}, timeout=TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if not ready.is_set():
            await task  # raises what stopped it
            raise AssertionError("the server stopped at start-up")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, TIMEOUT)
        sock.close()
        web.router.lifespan_context = lifespan


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Server]:
    url = None
    if request.param == "postgres":
        require_service("postgres")
        url = POSTGRES_URL
    async with isolated_database(url, tmp_path) as isolated:
        probe = Probe()
        app = build(isolated, probe)
        web = web_app(app, probe)

        await create_orders_table(isolated)
        async with serve(web) as base, httpx.AsyncClient(base_url=base, timeout=TIMEOUT) as client:
            yield Server(client, app, probe, web, isolated)
        assert (probe.started, probe.stopped) == (1, 1)


def _chain(first: Callable[[Any], Any], then: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @asynccontextmanager
    async def both(web: Any) -> AsyncIterator[Any]:
        async with first(web), then(web) as state:
            yield state

    return both


async def create_orders_table(isolated: IsolatedDatabase) -> None:
    database = isolated.database()
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(orders_table.metadata.create_all)
    finally:
        await database.dispose()


def started(app: App) -> bool:  # a call, so mypy does not narrow `app.is_started`
    return app.is_started


async def in_scope(app: App, work: Callable[[Any], Awaitable[Any]]) -> Any:
    async with app.scope() as scope:
        return await work(scope)


async def stored(server: Server, order_id: str) -> tuple[int, int, int]:
    """(rows, events, pending outbox rows) written for ``order_id``, read through dockyard."""

    async def read(scope: Any) -> tuple[int, int, int]:
        uow = await scope.get(SqlUnitOfWork)
        rows = await uow.connection.execute(
            sa.select(sa.func.count())
            .select_from(orders_table)
            .where(orders_table.c.order_id == order_id)
        )
        events = await (await scope.get(EventStore)).read_stream(f"order-{order_id}")
        return int(rows.scalar_one()), len(events), 0

    rows, events, _ = await in_scope(server.app, read)
    counts = await (await server.app.get(OutboxStore)).counts()
    return rows, events, counts.get(OutboxStatus.PENDING, 0)


# -- the tests ------------------------------------------------------------------------------------


async def test_a_successful_request_commits_rows_events_and_outbox_rows(server: Server) -> None:
    response = await server.client.post("/orders", json={"order_id": "o-1", "quantity": 2})
    assert response.status_code == 201, response.text
    assert response.json() == {"order_id": "o-1"}
    assert await stored(server, "o-1") == (1, 1, 1)
    assert (await server.client.get("/orders/o-1")).json() == {"quantity": 2}


async def test_a_failing_request_leaves_no_row_no_event_no_outbox_row(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"order_id": "o-2", "quantity": 1, "fail_after_writes": True}
    response = await server.client.post("/orders", json=body)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "instance": "/orders",
    }
    assert "hunter2" not in response.text
    assert any(r.name == "dockyard.web" and r.exc_info for r in caplog.records)
    assert await stored(server, "o-2") == (0, 0, 0)


async def test_the_scope_ends_before_the_response_so_a_failing_exit_is_the_answer(
    server: Server,
) -> None:
    response = await server.client.post("/late")
    assert response.status_code == 409, response.text  # not the endpoint's 200
    assert response.json()["title"] == "Conflict"


async def test_errors_are_problem_details(server: Server) -> None:
    client = server.client
    missing = await client.get("/orders/nope")
    assert (missing.status_code, missing.json()) == (
        404,
        {
            "type": "about:blank",
            "title": "Not Found",
            "status": 404,
            "detail": "No Order with id nope.",
            "instance": "/orders/nope",
        },
    )
    assert missing.headers["content-type"] == "application/problem+json"
    conflict = await client.get("/conflict")
    assert (conflict.status_code, conflict.json()["title"]) == (409, "Conflict")
    assert "Hint" not in conflict.json()["detail"]
    rule = await client.post("/orders", json={"order_id": "o-3", "quantity": 0})
    assert (rule.status_code, rule.json()["detail"]) == (400, "cannot order 0 items")
    already = await client.get("/already")
    assert already.status_code == 409
    assert already.json()["title"] == "Order already placed"
    teapot = await client.get("/teapot")
    assert (teapot.status_code, teapot.json()["detail"]) == (418, "short and stout")
    invalid = await client.post("/orders", json={"order_id": "o-4", "quantity": "many"})
    assert invalid.status_code == 422
    assert invalid.headers["content-type"] == "application/problem+json"
    problem = invalid.json()
    assert (problem["title"], problem["status"]) == ("Unprocessable Content", 422)
    assert problem["errors"][0]["loc"] == ["body", "quantity"]
    forbidden = await client.get("/forbidden")
    assert (forbidden.status_code, forbidden.headers["x-why"]) == (403, "owner")
    assert forbidden.json() == {
        "type": "about:blank",
        "title": "Forbidden",
        "status": 403,
        "detail": "Not yours.",
        "instance": "/forbidden",
    }
    unknown = await client.get("/nowhere")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert "detail" not in unknown.json()
    assert await stored(server, "o-3") == (0, 0, 0)


async def test_concurrent_requests_get_separate_scopes_one_per_request(server: Server) -> None:
    first, second = await asyncio.gather(
        server.client.get("/scope", headers={"x-tag": "a"}),
        server.client.get("/scope", headers={"x-tag": "b"}),
    )
    assert first.json() == {"tag": "a", "one_scope": True}
    assert second.json() == {"tag": "b", "one_scope": True}
    assert server.probe.scopes[0] is not server.probe.scopes[1]


async def test_openapi_is_generated_without_dockyard_parameters(server: Server) -> None:
    schema = (await server.client.get("/openapi.json")).json()
    place = schema["paths"]["/orders"]["post"]
    assert "parameters" not in place
    assert place["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OrderIn"
    }
    assert "parameters" not in schema["paths"]["/scope"]["get"]
    status = schema["paths"]["/orders/{order_id}/status"]["get"]
    assert [p["name"] for p in status["parameters"]] == ["order_id", "steps"]
    assert not any("dockyard" in name.lower() for name in schema["components"]["schemas"])


async def test_a_stream_request_is_an_sse_endpoint(server: Server) -> None:
    async with server.client.stream("GET", "/orders/o-5/status?steps=2") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        body = b"".join([chunk async for chunk in response.aiter_bytes()])
    assert body == (
        b'id: 1\nretry: 1500\ndata: {"order_id":"o-5","step":1}\n\n'
        b'id: 2\ndata: {"order_id":"o-5","step":2}\n\n'
    )
    assert server.probe.stream_finished.is_set()


async def test_a_client_disconnect_cancels_the_stream_and_closes_its_scope(server: Server) -> None:
    async with server.client.stream("GET", "/orders/o-6/status") as response:
        lines = response.aiter_lines()
        assert await anext(lines) == "id: 1"
        assert server.probe.stream_opened.is_set()
        assert not server.probe.stream_finished.is_set()
    # leaving the block closes the connection: the server sees the disconnect
    await asyncio.wait_for(server.probe.stream_finished.wait(), TIMEOUT)


async def test_an_idle_stream_sends_keep_alive_comments(server: Server) -> None:
    async with server.client.stream("GET", "/orders/o-7/quiet") as response:
        lines = response.aiter_lines()
        first = [await anext(lines) for _ in range(5)]
        assert first == [
            "id: 1",
            "event: status",
            "retry: 3000",
            'data: {"order_id":"o-7","step":1}',
            "",
        ]
        assert await anext(lines) == ": ping"
    await asyncio.wait_for(server.probe.stream_finished.wait(), TIMEOUT)


async def test_lifespan_starts_the_app_once_and_stops_it(tmp_path: Path) -> None:
    async with isolated_database(None, tmp_path) as isolated:
        probe = Probe()
        app = build(isolated, probe)
        web = web_app(app, probe)
        assert not started(app)
        async with serve(web):
            assert started(app)
            assert (probe.started, probe.stopped) == (1, 0)
        assert not started(app)
        assert (probe.started, probe.stopped) == (1, 1)


async def test_background_services_run_in_the_web_process_when_asked(tmp_path: Path) -> None:
    transport = InMemoryTransport()
    async with isolated_database(None, tmp_path) as isolated:
        probe = Probe()
        app = build(isolated, probe, transport)
        web = web_app(app, probe, background_services=True)
        await create_orders_table(isolated)
        async with (
            serve(web) as base,
            httpx.AsyncClient(base_url=base, timeout=TIMEOUT) as client,
            transport.subscribe("orders", "test") as subscription,
        ):
            placed = await client.post("/orders", json={"order_id": "o-8", "quantity": 1})
            assert placed.status_code == 201
            deliveries = aiter(subscription)
            delivery = await asyncio.wait_for(anext(deliveries), TIMEOUT)  # relayed
            await delivery.ack()
            assert [h.name for h in app.health().services] == ["outbox-relay"]
        assert (probe.started, probe.stopped) == (1, 1)


async def test_an_unexported_provider_is_refused_at_start_up(tmp_path: Path) -> None:
    async with isolated_database(None, tmp_path) as isolated:
        probe = Probe()
        app = build(isolated, probe)
        web = web_app(app, probe)

        @web.get("/private")
        async def private(value: FromDockyard[Private]) -> None: ...

        with pytest.raises(ModuleConfigurationError) as raised:
            async with web.router.lifespan_context(web):
                pass
        assert not started(app)
        [problem] = raised.value.problems
        assert isinstance(problem, NotExportedError)
        assert "Private" in str(problem)
        assert "endpoint `GET /private`" in str(problem)
        assert "Hint" in str(problem)
