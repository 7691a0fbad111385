"""``WebIntegrationContract``: what every web integration (FastAPI, Litestar) must do.

As the transports share ``TransportContract``, the web integrations share these checks, run
against a real server (uvicorn on a free port, in the test's loop, so a test can look at what
the app stored) on SQLite and PostgreSQL. A subclass supplies the framework's side: the same
routes written in its idiom (``web_app``), its ``Request`` type, where it serves OpenAPI and how
its lifespan is entered without a server. The routes:

    POST /orders               {order_id, quantity}: a row, an event and an outbox row; 201
    POST /orders/then-fail     writes as /orders does, then raises: nothing is kept; 500
    GET  /orders/{order_id}    the order, or a 404 problem
    GET  /conflict             ConcurrencyError: 409
    GET  /teapot               an error the test's ProblemMapping maps to 418, detail=str
    GET  /forbidden            the framework's HTTPException(403, "Not yours.", x-why header)
    GET  /commit-fails         injects FailingCommit, whose scope exit fails: 409, not 200
    GET  /scopes               injects Marker twice; waits until `Probe.expected` are in flight
    GET  /me                   injects User, made from the Request in the scope's context
    GET  /count/{limit}        SSE: 1..limit (retry 1500, no pings), then the stream ends
    GET  /count/{limit}/then-wait  SSE: 1..limit, then waits for ever (ping 0.05, event "count")
    GET  /count/{limit}/resumable  SSE: after the `Last-Event-ID` (0 without one) to limit, each
                               event's id its number (id_of)
    GET  /private              (only with `private_route`) injects an unexported provider
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import sqlalchemy as sa

from dockyard import (
    App,
    Command,
    CommandHandler,
    Event,
    IPublisher,
    Query,
    QueryHandler,
    StreamHandler,
    StreamRequest,
    contextual,
    module,
    scoped,
)
from dockyard.di import Lifetime
from dockyard.eventsourcing import NO_STREAM, EventStore
from dockyard.exceptions import (
    AggregateNotFoundError,
    ConcurrencyError,
    MissingProviderError,
    ModuleConfigurationError,
    NotExportedError,
)
from dockyard.integrations import ProblemMapping, RuleViolation
from dockyard.outbox import OutboxModule, OutboxStatus, OutboxStore, route
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.sql import Database, SqlOutboxBackend, SqlUnitOfWork
from dockyard.testing.pytest import IsolatedDatabase, isolated_database
from dockyard.transport.memory import InMemoryTransport
from integration.web._server import TIMEOUT, serving
from services import POSTGRES_URL, require_service

orders = sa.Table(
    "web_orders",
    sa.MetaData(),
    sa.Column("order_id", sa.String(40), primary_key=True),
    sa.Column("quantity", sa.Integer, nullable=False),
)


# -- the dockyard app behind every framework's routes -------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderPlaced(Event):
    order_id: str


@dataclass(frozen=True, slots=True)
class OrderIn:
    """The body of ``POST /orders``."""

    order_id: str
    quantity: int = 1


@dataclass(frozen=True, slots=True)
class PlaceOrder(Command[str]):
    order_id: str
    quantity: int


@dataclass(frozen=True, slots=True)
class GetOrder(Query[str]):
    order_id: str


@dataclass(frozen=True, slots=True)
class CountTo(StreamRequest[int]):
    limit: int
    then_wait: bool = False  # after the last number, wait until the client leaves
    after: int = 0  # resume after this number (a reconnecting client's Last-Event-ID)


class OutOfStock(RuleViolation):  # 400, the default
    pass


class AlreadyPlaced(RuleViolation):
    status = 409
    title = "Order already placed"


class SecretError(Exception):
    pass


class Teapot(Exception):
    pass


@dataclass
class Probe:
    """What a test watches from outside: lifespans, scopes opened and closed, streams."""

    started: int = 0
    stopped: int = 0
    opened: list[int] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    streams_closed: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 1
    in_flight: int = 0
    all_in_flight: asyncio.Event = field(default_factory=asyncio.Event)

    async def overlap(self) -> None:
        """Return once ``expected`` requests are in here together."""
        self.in_flight += 1
        if self.in_flight >= self.expected:
            self.all_in_flight.set()
        await asyncio.wait_for(self.all_in_flight.wait(), TIMEOUT)


_numbers = itertools.count()


class Marker:
    """A scoped object, numbered; the probe sees its scope open and close."""

    def __init__(self, number: int) -> None:
        self.number = number


async def marker(probe: Probe) -> AsyncGenerator[Marker, None]:
    value = Marker(next(_numbers))
    probe.opened.append(value.number)
    try:
        yield value
    finally:
        probe.closed.append(value.number)


class FailingCommit:
    """A scoped resource whose end fails as a commit the database refuses would."""


async def failing_commit() -> AsyncGenerator[FailingCommit, BaseException | None]:
    error = yield FailingCommit()
    if error is None:
        raise ConcurrencyError("Order-1", 1, 2)


@dataclass(frozen=True)
class User:
    name: str


class Private:
    """Provided by ``Internals`` and not exported: no endpoint may get it."""


@module(providers=[scoped(Private)])
class Internals: ...


class PlaceOrderHandler(CommandHandler[PlaceOrder, str]):
    def __init__(self, uow: SqlUnitOfWork, events: EventStore, publisher: IPublisher) -> None:
        self.uow, self.events, self.publisher = uow, events, publisher

    async def handle(self, command: PlaceOrder, /) -> str:
        if command.quantity <= 0:
            raise OutOfStock(f"cannot order {command.quantity} items")
        if command.order_id == "taken":
            raise AlreadyPlaced("Order taken was placed yesterday.")
        await self.uow.connection.execute(
            sa.insert(orders).values(order_id=command.order_id, quantity=command.quantity)
        )
        placed = OrderPlaced(command.order_id)
        await self.events.append(f"Order-{command.order_id}", [placed], NO_STREAM)
        await self.publisher.publish(placed)  # routed: an outbox row
        return command.order_id


class GetOrderHandler(QueryHandler[GetOrder, str]):
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self.uow = uow

    async def handle(self, query: GetOrder, /) -> str:
        select = sa.select(orders.c.order_id).where(orders.c.order_id == query.order_id)
        found = (await self.uow.connection.execute(select)).scalar_one_or_none()
        if found is None:
            raise AggregateNotFoundError("Order", query.order_id, f"Order-{query.order_id}")
        return str(found)


class CountToHandler(StreamHandler[CountTo, int]):
    def __init__(self, marker: Marker, probe: Probe) -> None:
        self.marker, self.probe = marker, probe  # the marker: the stream's scope has a finalizer

    async def handle(self, request: CountTo, /) -> AsyncIterator[int]:
        try:
            for number in range(request.after + 1, request.limit + 1):
                yield number
            if request.then_wait:
                await asyncio.Event().wait()
        finally:
            self.probe.streams_closed.set()


def build_app(
    isolated: IsolatedDatabase,
    probe: Probe,
    request_type: type,
    current_user: Callable[..., User],
    transport: InMemoryTransport | None = None,
) -> App:
    """The app under test; ``current_user`` takes the framework's ``request_type``."""

    @module(
        providers=[
            contextual(Probe, lifetime=Lifetime.SINGLETON),
            contextual(request_type),
            scoped(Marker, marker),
            scoped(FailingCommit, failing_commit),
            scoped(User, current_user),
        ],
        handlers=[PlaceOrderHandler, GetOrderHandler, CountToHandler],
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
    class Shop: ...

    @asynccontextmanager
    async def counted(app: App) -> AsyncIterator[None]:
        probe.started += 1
        async with (await app.get(Database)).engine.begin() as connection:
            await connection.run_sync(orders.metadata.create_all)
        yield
        probe.stopped += 1

    return App.build(Shop, context={Probe: probe}, lifespan=[counted])


def problems() -> ProblemMapping:
    return ProblemMapping().add(Teapot, 418, title="I'm a teapot", detail=str)


# -- the contract -------------------------------------------------------------------------------


@dataclass
class Served:
    app: App
    client: httpx.AsyncClient
    probe: Probe


async def stored(app: App) -> tuple[list[str], int, int]:
    """(order rows, events, pending outbox rows), read through dockyard's public API."""
    async with app.scope() as scope:
        uow = await scope.get(SqlUnitOfWork)
        rows = (await uow.connection.execute(sa.select(orders.c.order_id))).scalars().all()
        events = await (await scope.get(EventStore)).read_all()
    pending = (await (await app.get(OutboxStore)).counts()).get(OutboxStatus.PENDING, 0)
    return sorted(rows), len(events), pending


async def sse_lines(response: httpx.Response, count: int) -> list[str]:
    lines = response.aiter_lines()
    return [await asyncio.wait_for(anext(lines), TIMEOUT) for _ in range(count)]


def started(app: App) -> bool:  # a call, so mypy does not narrow `app.is_started`
    return app.is_started


class WebIntegrationContract:
    """Subclass it as ``Test…``, set the class attributes and implement ``web_app`` and
    ``lifespan``."""

    request_type: ClassVar[type]
    """The framework's request class (in the scope's context, for ``contextual``)."""
    openapi_path: ClassVar[str]
    """Where the framework serves its OpenAPI document."""
    endpoint_word: ClassVar[str]
    """How the integration's start-up errors name a route: "endpoint" or "handler"."""

    @staticmethod
    def current_user(request: Any) -> User:
        """Abstract: ``User(request.headers.get("x-user", "anonymous"))``, annotated with the
        framework's request class (Dishka reads the annotation)."""
        raise NotImplementedError

    def web_app(
        self,
        app: App,
        probe: Probe,
        *,
        background_services: bool = False,
        private_route: bool = False,
    ) -> Any:
        """Abstract: the framework's app with the routes above, wired to ``app`` with
        ``problems()``."""
        raise NotImplementedError

    def lifespan(self, web: Any) -> AbstractAsyncContextManager[Any]:
        """Abstract: the framework's lifespan, entered without a server."""
        raise NotImplementedError

    def build(self, isolated: IsolatedDatabase, probe: Probe, **options: Any) -> App:
        return build_app(isolated, probe, self.request_type, type(self).current_user, **options)

    @pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
    async def served(self, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Served]:
        url = None
        if request.param == "postgres":
            require_service("postgres")
            url = POSTGRES_URL
        async with isolated_database(url, tmp_path) as isolated:
            probe = Probe()
            app = self.build(isolated, probe)
            web = self.web_app(app, probe)
            async with serving(web) as base, httpx.AsyncClient(base_url=base, timeout=TIMEOUT) as c:
                yield Served(app, c, probe)
            assert (probe.started, probe.stopped, started(app)) == (1, 1, False)

    # -- the transaction boundary ------------------------------------------------------------

    async def test_a_request_commits_its_row_event_and_outbox_row(self, served: Served) -> None:
        response = await served.client.post("/orders", json={"order_id": "o-1", "quantity": 2})
        assert response.status_code == 201, response.text
        assert response.json() == {"order_id": "o-1"}
        assert await stored(served.app) == (["o-1"], 1, 1)
        assert (await served.client.get("/orders/o-1")).json() == {"order_id": "o-1"}
        assert (served.probe.started, served.probe.stopped) == (1, 0)  # once, for every request

    async def test_a_failing_endpoint_leaves_no_row_no_event_no_outbox_row(
        self, served: Served, caplog: pytest.LogCaptureFixture
    ) -> None:
        response = await served.client.post("/orders/then-fail", json={"order_id": "o-2"})
        assert response.status_code == 500
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json() == {
            "type": "about:blank",
            "title": "Internal Server Error",
            "status": 500,
            "instance": "/orders/then-fail",
        }
        assert "hunter2" not in response.text  # said nothing of the error...
        assert any(r.name == "dockyard.web" and r.exc_info for r in caplog.records)  # ...logged
        assert await stored(served.app) == ([], 0, 0)

    async def test_a_scope_whose_exit_fails_answers_with_that_error_not_2xx(
        self, served: Served
    ) -> None:
        response = await served.client.get("/commit-fails")  # the scope ends before the
        assert response.status_code == 409, response.text  # response is sent
        assert response.json()["title"] == "Conflict"

    # -- scopes and injection ------------------------------------------------------------------

    async def test_concurrent_requests_get_separate_scopes(self, served: Served) -> None:
        served.probe.expected = 4  # all four are in the endpoint at once
        responses = await asyncio.gather(*(served.client.get("/scopes") for _ in range(4)))
        pairs = [(r.json()["first"], r.json()["second"]) for r in responses]
        assert all(first == second for first, second in pairs)  # one scope per request
        assert len({first for first, _ in pairs}) == 4  # not shared between requests
        assert sorted(served.probe.closed) == sorted(served.probe.opened)  # every one closed

    async def test_request_data_reaches_providers_through_the_scope_context(
        self, served: Served
    ) -> None:
        response = await served.client.get("/me", headers={"x-user": "ada"})
        assert response.json() == {"name": "ada"}

    async def test_injection_honours_module_visibility_checked_at_start_up(
        self, tmp_path: Path
    ) -> None:
        async with isolated_database(None, tmp_path) as isolated:
            probe = Probe()
            app = self.build(isolated, probe)
            web = self.web_app(app, probe, private_route=True)
            with pytest.raises((ModuleConfigurationError, ExceptionGroup)) as raised:
                async with self.lifespan(web):
                    pass
            assert not started(app)
        error = raised.value
        if isinstance(error, ExceptionGroup):  # a framework's task group may wrap it
            [error] = error.exceptions
        assert isinstance(error, ModuleConfigurationError)
        [problem] = error.problems
        assert isinstance(problem, NotExportedError)
        message = str(problem)
        assert f"`Private` (for {self.endpoint_word} `GET /private`)" in message
        assert "provided by `Internals`" in message
        assert "Hint" in message
        assert not isinstance(problem, MissingProviderError)

    # -- errors ------------------------------------------------------------------------------

    async def test_errors_are_rfc_9457_problem_details(self, served: Served) -> None:
        client = served.client
        missing = await client.get("/orders/nope")
        assert missing.headers["content-type"] == "application/problem+json"
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
        conflict = await client.get("/conflict")
        assert (conflict.status_code, conflict.json()["title"]) == (409, "Conflict")
        assert "Hint" not in conflict.json()["detail"]
        rule = await client.post("/orders", json={"order_id": "o-3", "quantity": 0})
        assert (rule.status_code, rule.json()["title"]) == (400, "Rule violated")
        assert rule.json()["detail"] == "cannot order 0 items"
        already = await client.post("/orders", json={"order_id": "taken"})
        assert already.json() == {
            "type": "about:blank",
            "title": "Order already placed",
            "status": 409,
            "detail": "Order taken was placed yesterday.",
            "instance": "/orders",
        }
        teapot = await client.get("/teapot")
        assert (teapot.status_code, teapot.json()["detail"]) == (418, "short and stout")
        invalid = await client.post("/orders", json={"order_id": "o-4", "quantity": "many"})
        assert invalid.status_code == 422
        assert invalid.headers["content-type"] == "application/problem+json"
        problem = invalid.json()
        assert (problem["title"], problem["status"]) == ("Unprocessable Content", 422)
        assert problem["errors"]
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
        assert unknown.json()["status"] == 404
        assert await stored(served.app) == ([], 0, 0)

    # -- OpenAPI -------------------------------------------------------------------------------

    async def test_openapi_is_generated_without_the_injected_parameters(
        self, served: Served
    ) -> None:
        response = await served.client.get(self.openapi_path)
        assert response.status_code == 200
        schema = response.json()
        assert {"/orders", "/orders/{order_id}", "/scopes", "/me"} <= set(schema["paths"])
        parameters = {
            parameter["name"]
            for path in schema["paths"].values()
            for operation in path.values()
            for parameter in operation.get("parameters", [])
        }
        assert parameters == {"order_id", "limit"}  # path parameters only
        body = schema["paths"]["/orders"]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"]["$ref"].endswith("OrderIn")
        names = " ".join(schema.get("components", {}).get("schemas", {})).lower()
        assert "dockyard" not in names
        assert "container" not in names

    # -- server-sent events ------------------------------------------------------------------

    async def test_a_stream_request_becomes_server_sent_events(self, served: Served) -> None:
        async with served.client.stream("GET", "/count/2") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            body = await response.aread()
        assert body == b"id: 1\nretry: 1500\ndata: 1\n\nid: 2\ndata: 2\n\n"
        assert served.probe.streams_closed.is_set()

    async def test_a_reconnecting_client_resumes_after_its_last_event_id(
        self, served: Served
    ) -> None:
        async with served.client.stream("GET", "/count/3/resumable") as response:
            first = await response.aread()
        assert first == b"id: 1\nretry: 3000\ndata: 1\n\nid: 2\ndata: 2\n\nid: 3\ndata: 3\n\n"
        # What an EventSource sends when it reconnects after event 2.
        headers = {"Last-Event-ID": "2"}
        async with served.client.stream("GET", "/count/3/resumable", headers=headers) as response:
            again = await response.aread()
        assert again == b"id: 3\nretry: 3000\ndata: 3\n\n"

    async def test_an_idle_stream_sends_keep_alive_comments(self, served: Served) -> None:
        async with served.client.stream("GET", "/count/1/then-wait") as response:
            first = await sse_lines(response, 6)
        assert first == ["id: 1", "event: count", "retry: 3000", "data: 1", "", ": ping"]

    async def test_a_client_disconnect_cancels_the_stream_and_closes_its_scope(
        self, served: Served
    ) -> None:
        async with served.client.stream("GET", "/count/1/then-wait") as response:
            assert (await sse_lines(response, 4))[3] == "data: 1"
            assert not served.probe.streams_closed.is_set()
        # leaving the block closes the connection: the server sees the client go
        probe = served.probe
        async with asyncio.timeout(TIMEOUT):
            await probe.streams_closed.wait()  # the handler's `finally` ran...
            while not probe.opened or len(probe.closed) < len(probe.opened):  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # ...and the scope's finalizer, in the server's task
        assert probe.closed == probe.opened

    # -- lifespan ------------------------------------------------------------------------------

    async def test_the_lifespan_starts_the_app_once_and_stops_it_once(self, tmp_path: Path) -> None:
        async with isolated_database(None, tmp_path) as isolated:
            probe = Probe()
            app = self.build(isolated, probe)
            web = self.web_app(app, probe)
            assert not started(app)
            async with serving(web) as base, httpx.AsyncClient(base_url=base) as client:
                await asyncio.gather(*(client.get("/me") for _ in range(3)))
                assert started(app)
                assert (probe.started, probe.stopped) == (1, 0)
            assert not started(app)
            assert (probe.started, probe.stopped) == (1, 1)

    async def test_background_services_run_in_the_web_process_when_asked(
        self, tmp_path: Path
    ) -> None:
        transport = InMemoryTransport()
        async with isolated_database(None, tmp_path) as isolated:
            probe = Probe()
            app = self.build(isolated, probe, transport=transport)
            web = self.web_app(app, probe, background_services=True)
            sigterm = signal.getsignal(signal.SIGTERM)
            async with (
                serving(web) as base,
                httpx.AsyncClient(base_url=base, timeout=TIMEOUT) as client,
                transport.subscribe("orders", "test") as subscription,
            ):
                assert signal.getsignal(signal.SIGTERM) is sigterm  # the server's, not a worker's
                placed = await client.post("/orders", json={"order_id": "o-9"})
                assert placed.status_code == 201, placed.text
                delivery = await asyncio.wait_for(anext(aiter(subscription)), TIMEOUT)  # relayed
                assert json.loads(delivery.message.payload) == {"order_id": "o-9"}
                await delivery.ack()
                assert [h.name for h in app.health().services] == ["outbox-relay"]
            assert [h.state.value for h in app.health().services] == ["stopped"]  # with the server
            assert (probe.started, probe.stopped) == (1, 1)
