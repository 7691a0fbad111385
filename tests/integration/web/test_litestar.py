"""``dockyard.integrations.litestar`` against a real server (uvicorn) and a real HTTP client."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from litestar import Litestar, Request, get, post
from litestar.params import FromPath, JSONBody
from litestar.response import Stream

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
from dockyard.eventsourcing import NO_STREAM, EventStore
from dockyard.exceptions import AggregateNotFoundError, ConcurrencyError
from dockyard.integrations import RuleViolation
from dockyard.integrations.litestar import DockyardPlugin, FromDockyard, Inject, sse_response
from dockyard.outbox import OutboxModule, OutboxStatus, OutboxStore, route
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.sql import Database, SqlOutboxBackend, SqlUnitOfWork
from dockyard.testing.pytest import isolated_database
from dockyard.transport.memory import InMemoryTransport
from integration.web._server import serving
from services import POSTGRES_URL, require_service

orders = sa.Table(
    "web_orders",
    sa.MetaData(),
    sa.Column("order_id", sa.String(40), primary_key=True),
)


@dataclass(frozen=True, slots=True)
class OrderPlaced(Event):
    order_id: str


@dataclass(frozen=True, slots=True)
class PlaceOrder(Command[str]):
    order_id: str


@dataclass(frozen=True, slots=True)
class GetOrder(Query[str]):
    order_id: str


@dataclass(frozen=True, slots=True)
class CountTo(StreamRequest[int]):
    limit: int | None  # None: forever


class OutOfStock(RuleViolation):
    status = 409
    title = "Out of stock"


class Boom(Exception):
    pass


@dataclass
class Probe:
    """What the test watches from outside: scopes opened and closed, streams closed."""

    opened: list[int] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    streams_closed: asyncio.Event = field(default_factory=asyncio.Event)
    started: int = 0
    stopped: int = 0


PROBE = Probe()
_numbers = itertools.count()


class Marker:
    """A scoped object: one per scope, numbered."""

    def __init__(self) -> None:
        self.number = next(_numbers)


async def marker() -> AsyncGenerator[Marker, None]:
    value = Marker()
    PROBE.opened.append(value.number)
    try:
        yield value
    finally:
        PROBE.closed.append(value.number)


class FailingCommit:
    """A scoped resource whose end fails like a commit the database refuses."""


async def failing_commit() -> AsyncGenerator[FailingCommit, BaseException | None]:
    error = yield FailingCommit()
    if error is None:
        raise ConcurrencyError("Order-1", 1, 2)


@dataclass(frozen=True)
class User:
    name: str


def current_user(request: Request) -> User:  # type: ignore[type-arg] # the context's key
    return User(request.headers.get("x-user", "anonymous"))


class PlaceOrderHandler(CommandHandler[PlaceOrder, str]):
    def __init__(self, uow: SqlUnitOfWork, events: EventStore, publisher: IPublisher) -> None:
        self.uow, self.events, self.publisher = uow, events, publisher

    async def handle(self, request: PlaceOrder, /) -> str:
        if request.order_id == "none-left":
            raise OutOfStock("No stock left for this order.")
        await self.uow.connection.execute(sa.insert(orders).values(order_id=request.order_id))
        await self.events.append(
            f"Order-{request.order_id}", [OrderPlaced(request.order_id)], NO_STREAM
        )
        await self.publisher.publish(OrderPlaced(request.order_id))  # routed: an outbox row
        return request.order_id


class GetOrderHandler(QueryHandler[GetOrder, str]):
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self.uow = uow

    async def handle(self, request: GetOrder, /) -> str:
        query = sa.select(orders.c.order_id).where(orders.c.order_id == request.order_id)
        found = (await self.uow.connection.execute(query)).scalar_one_or_none()
        if found is None:
            raise AggregateNotFoundError("Order", request.order_id, f"Order-{request.order_id}")
        return str(found)


class CountToHandler(StreamHandler[CountTo, int]):
    def __init__(self, marker: Marker) -> None:
        self.marker = marker

    async def handle(self, request: CountTo, /) -> AsyncIterator[int]:
        try:
            for number in itertools.count(1):
                if request.limit is not None and number > request.limit:
                    return
                yield number
                await asyncio.sleep(0.01)
        finally:
            PROBE.streams_closed.set()


@post("/orders", dependencies={"sender": Inject(ISender)})
async def place_order(data: JSONBody[PlaceOrder], sender: FromDockyard[ISender]) -> dict[str, str]:
    return {"order_id": await sender.send(data)}


@post("/orders/then-fail", dependencies={"sender": Inject(ISender)})
async def place_then_fail(data: JSONBody[PlaceOrder], sender: FromDockyard[ISender]) -> None:
    await sender.send(data)  # written in the request's unit of work...
    raise Boom("secret internals")  # ...which this rolls back


@get("/orders/{order_id:str}", dependencies={"sender": Inject(ISender)})
async def get_order(order_id: FromPath[str], sender: FromDockyard[ISender]) -> dict[str, str]:
    return {"order_id": await sender.send(GetOrder(order_id))}


@get("/conflict")
async def conflict() -> None:
    raise ConcurrencyError("Order-1", 1, 2)


@get("/scopes", dependencies={"first": Inject(Marker), "second": Inject(Marker)})
async def scopes(first: FromDockyard[Marker], second: FromDockyard[Marker]) -> dict[str, int]:
    await asyncio.sleep(0.05)  # the requests overlap
    return {"first": first.number, "second": second.number}


@get("/commit-fails", dependencies={"resource": Inject(FailingCommit)})
async def commit_fails(resource: FromDockyard[FailingCommit]) -> str:
    return "never sent"


@get("/me", dependencies={"user": Inject(User)})
async def me(user: FromDockyard[User]) -> dict[str, str]:
    return {"name": user.name}


@get("/count/{limit:int}")
async def count(request: Request[Any, Any, Any], limit: FromPath[int]) -> Stream:
    return sse_response(request, CountTo(limit if limit > 0 else None), retry=500)


def _dockyard_app(isolated: Any) -> App:
    @module(
        handlers=[
            PlaceOrderHandler,
            GetOrderHandler,
            CountToHandler,
            route(OrderPlaced).to("orders"),
        ],
        providers=[
            scoped(Marker, marker),
            contextual(Request),
            scoped(User, current_user),
            scoped(FailingCommit, failing_commit),
        ],
        imports=[
            isolated.sql_module(serializer=Serializer(TypeRegistry([OrderPlaced]))),
            OutboxModule.register(
                transport=InMemoryTransport(), backend=SqlOutboxBackend(), run_relay=False
            ),
        ],
    )
    class Shop: ...

    async def tables(app: App) -> AsyncIterator[None]:
        PROBE.started += 1
        database = await app.get(Database)
        async with database.engine.begin() as connection:
            await connection.run_sync(orders.metadata.create_all)
        yield
        PROBE.stopped += 1

    from contextlib import asynccontextmanager

    return App.build(Shop, lifespan=[asynccontextmanager(tables)])


@dataclass
class Served:
    app: App
    client: httpx.AsyncClient


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def served(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Served]:
    global PROBE  # noqa: PLW0603 -- one probe per test
    PROBE = Probe()
    url = None
    if request.param == "postgres":
        require_service("postgres")
        url = POSTGRES_URL
    async with isolated_database(url, tmp_path) as isolated:
        app = _dockyard_app(isolated)
        web = Litestar(
            route_handlers=[
                place_order,
                place_then_fail,
                get_order,
                conflict,
                scopes,
                me,
                count,
                commit_fails,
            ],
            plugins=[DockyardPlugin(app)],
        )
        async with serving(web) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
            assert app.is_started
            yield Served(app, client)
        assert (PROBE.started, PROBE.stopped, app.is_started) == (1, 1, False)


async def _stored(app: App) -> tuple[list[str], int, int]:
    async with app.scope() as scope:
        uow = await scope.get(SqlUnitOfWork)
        rows = (await uow.connection.execute(sa.select(orders.c.order_id))).scalars().all()
        events = await (await scope.get(EventStore)).read_all()
    pending = (await (await app.get(OutboxStore)).counts())[OutboxStatus.PENDING]
    return sorted(rows), len(events), pending


# The app is started and stopped by uvicorn's lifespan around these requests.
async def test_a_request_commits_its_row_event_and_outbox_row(served: Served) -> None:
    response = await served.client.post("/orders", json={"order_id": "o-1"})
    assert response.status_code == 201, response.text
    assert response.json() == {"order_id": "o-1"}
    assert await _stored(served.app) == (["o-1"], 1, 1)
    assert (PROBE.started, PROBE.stopped) == (1, 0)  # once, for every request


async def test_a_failing_endpoint_leaves_no_row_no_event_no_outbox_row(served: Served) -> None:
    response = await served.client.post("/orders/then-fail", json={"order_id": "o-2"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "instance": "/orders/then-fail",
    }
    assert "secret" not in response.text
    assert await _stored(served.app) == ([], 0, 0)


async def test_errors_become_problem_details(served: Served) -> None:
    missing = await served.client.get("/orders/nope")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "No Order with id nope."
    conflict = await served.client.get("/conflict")
    assert (conflict.status_code, conflict.json()["title"]) == (409, "Conflict")
    rule = await served.client.post("/orders", json={"order_id": "none-left"})
    assert rule.status_code == 409
    assert rule.json() == {
        "type": "about:blank",
        "title": "Out of stock",
        "status": 409,
        "detail": "No stock left for this order.",
        "instance": "/orders",
    }
    invalid = await served.client.post("/orders", json={"order_id": 42})
    assert invalid.status_code == 422
    assert invalid.headers["content-type"] == "application/problem+json"
    assert invalid.json()["errors"]
    failed_commit = await served.client.get("/commit-fails")  # the scope ends before the
    assert (failed_commit.status_code, failed_commit.json()["title"]) == (409, "Conflict")  # 2xx
    unknown = await served.client.get("/no-such-route")
    assert (unknown.status_code, unknown.json()["status"]) == (404, 404)
    assert await _stored(served.app) == ([], 0, 0)


async def test_concurrent_requests_get_separate_scopes(served: Served) -> None:
    responses = await asyncio.gather(*(served.client.get("/scopes") for _ in range(8)))
    pairs = [(r.json()["first"], r.json()["second"]) for r in responses]
    assert all(first == second for first, second in pairs)  # one scope per request
    assert len({first for first, _ in pairs}) == 8  # and not shared between requests
    assert sorted(PROBE.closed) == sorted(PROBE.opened)  # every scope closed


async def test_request_data_reaches_providers_through_the_scope_context(served: Served) -> None:
    response = await served.client.get("/me", headers={"x-user": "ada"})
    assert response.json() == {"name": "ada"}


async def test_openapi_is_generated_without_the_injected_parameters(served: Served) -> None:
    response = await served.client.get("/schema/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert {"/orders", "/orders/{order_id}", "/scopes", "/me"} <= set(schema["paths"])
    parameters = [
        parameter["name"]
        for path in schema["paths"].values()
        for operation in path.values()
        for parameter in operation.get("parameters", [])
    ]
    assert parameters == ["order_id", "limit"]  # path parameters only


async def test_a_stream_request_becomes_server_sent_events(served: Served) -> None:
    async with served.client.stream("GET", "/count/3") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = (await response.aread()).decode()
    events = [block for block in body.split("\n\n") if block]
    assert events == [
        "id: 1\nretry: 500\ndata: 1",
        "id: 2\ndata: 2",
        "id: 3\ndata: 3",
    ]
    assert PROBE.streams_closed.is_set()


async def test_a_client_disconnect_cancels_the_stream_and_closes_its_scope(
    served: Served,
) -> None:
    received: list[str] = []
    async with served.client.stream("GET", "/count/0") as response:  # forever
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                received.append(line.removeprefix("data: "))
            if len(received) == 3:
                break  # leaving the block closes the connection
    assert [json.loads(item) for item in received] == [1, 2, 3]
    async with asyncio.timeout(10):
        await PROBE.streams_closed.wait()
        while len(PROBE.closed) < len(PROBE.opened) or not PROBE.opened:  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # the scope's finalizer ran in the server's task
    assert PROBE.closed == PROBE.opened


async def test_background_services_run_in_the_web_process_when_asked(tmp_path: Path) -> None:
    global PROBE  # noqa: PLW0603 -- one probe per test
    PROBE = Probe()
    transport = InMemoryTransport()
    async with isolated_database(None, tmp_path) as isolated:

        @module(
            handlers=[PlaceOrderHandler, route(OrderPlaced).to("orders")],
            imports=[
                isolated.sql_module(serializer=Serializer(TypeRegistry([OrderPlaced]))),
                OutboxModule.register(transport=transport, backend=SqlOutboxBackend()),
            ],
        )
        class Shop: ...

        async def tables(app: App) -> AsyncIterator[None]:
            async with (await app.get(Database)).engine.begin() as connection:
                await connection.run_sync(orders.metadata.create_all)
            yield

        app = App.build(Shop, lifespan=[asynccontextmanager(tables)])
        web = Litestar([place_order], plugins=[DockyardPlugin(app, background_services=True)])
        sigterm = signal.getsignal(signal.SIGTERM)
        async with serving(web) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
            assert signal.getsignal(signal.SIGTERM) is sigterm  # the server's, not the worker's
            response = await client.post("/orders", json={"order_id": "o-9"})
            assert response.status_code == 201, response.text
            store = await app.get(OutboxStore)
            async with asyncio.timeout(20):  # the relay, running in this process, sends it
                while (await store.counts())[OutboxStatus.PENDING]:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
        assert [h.state.value for h in app.health().services] == ["stopped"]  # with the server
