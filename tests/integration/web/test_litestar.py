"""``dockyard.integrations.litestar`` passes ``WebIntegrationContract`` (``_contract.py``)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath, JSONBody
from litestar.response import Stream
from litestar.testing import AsyncTestClient

from dockyard import App, ISender
from dockyard.exceptions import ConcurrencyError, IntegrationNotSetUpError
from dockyard.integrations.litestar import (
    DockyardPlugin,
    FromDockyard,
    Inject,
    last_event_id,
    sse_response,
)
from integration.web import _contract as contract

SENDER = {"sender": Inject(ISender)}


@post("/orders", dependencies=SENDER)
async def place(data: JSONBody[contract.OrderIn], sender: FromDockyard[ISender]) -> dict[str, str]:
    return {"order_id": await sender.send(contract.PlaceOrder(data.order_id, data.quantity))}


@post("/orders/then-fail", dependencies=SENDER)
async def place_then_fail(data: JSONBody[contract.OrderIn], sender: FromDockyard[ISender]) -> None:
    # written in the request's unit of work, which the error rolls back
    await sender.send(contract.PlaceOrder(data.order_id, data.quantity))
    raise contract.SecretError("database password is hunter2")


@get("/orders/{order_id:str}", dependencies=SENDER)
async def get_order(order_id: FromPath[str], sender: FromDockyard[ISender]) -> dict[str, str]:
    return {"order_id": await sender.send(contract.GetOrder(order_id))}


@get("/conflict")
async def conflict() -> None:
    raise ConcurrencyError("Order-1", 1, 2)


@get("/teapot")
async def teapot() -> None:
    raise contract.Teapot("short and stout")


@get("/forbidden")
async def forbidden() -> None:
    raise HTTPException(status_code=403, detail="Not yours.", headers={"x-why": "owner"})


@get("/commit-fails", dependencies={"resource": Inject(contract.FailingCommit)})
async def commit_fails(resource: FromDockyard[contract.FailingCommit]) -> str:
    return "never sent"


@get("/me", dependencies={"user": Inject(contract.User)})
async def me(user: FromDockyard[contract.User]) -> dict[str, str]:
    return {"name": user.name}


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


@get("/private", dependencies={"value": Inject(contract.Private)})
async def private(value: FromDockyard[contract.Private]) -> None: ...


class TestLitestar(contract.WebIntegrationContract):
    request_type = Request
    openapi_path = "/schema/openapi.json"
    endpoint_word = "handler"

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
        markers = {"first": Inject(contract.Marker), "second": Inject(contract.Marker)}

        @get("/scopes", dependencies=markers)
        async def scopes(
            first: FromDockyard[contract.Marker], second: FromDockyard[contract.Marker]
        ) -> dict[str, int]:
            await probe.overlap()
            return {"first": first.number, "second": second.number}

        handlers = [
            place,
            place_then_fail,
            get_order,
            conflict,
            teapot,
            forbidden,
            commit_fails,
            scopes,
            me,
            count,
            count_then_wait,
            count_resumable,
        ]
        if private_route:
            handlers.append(private)
        problems = contract.problems()
        plugin = DockyardPlugin(app, problems=problems, background_services=background_services)
        return Litestar(handlers, plugins=[plugin])


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
