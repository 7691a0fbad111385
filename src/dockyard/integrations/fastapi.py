"""FastAPI (and Starlette underneath): one call wires an ``App`` into a FastAPI application.

``setup_dockyard(web, app)`` starts and stops the app with the web app's lifespan, answers
errors with RFC 9457 problem details, and lets endpoints take ``FromDockyard[T]``: ``T``
resolved in the request's dockyard scope, one scope (one unit of work) per request, committed
when the endpoint returns and rolled back when it raises. ``sse_response`` streams a
``StreamRequest`` as server-sent events. See ``docs/web.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar, get_args, get_origin

from dockyard._type_name import type_name
from dockyard.exceptions import (
    IntegrationNotSetUpError,
    MissingExtraError,
)
from dockyard.integrations._web import (
    PROBLEM_JSON,
    Located,
    ProblemMapping,
    check_injections,
    close_scope,
    dressed_as,
    evaluated_signature,
    injecting_function,
    last_event_id_of,
    not_for_websockets,
    raise_unwrapped,
    resolver,
    serving,
    status_problem,
    stream_frames,
    validation_problem,
)
from dockyard.messaging import StreamRequest
from dockyard.messaging._bus import resolve_in

try:
    import fastapi
    import fastapi.routing as fastapi_routing
    from dishka import AsyncContainer
    from dishka.exceptions import ExitError
    from fastapi import Depends, FastAPI, Request
    from fastapi.encoders import jsonable_encoder
    from fastapi.exceptions import FastAPIError, RequestValidationError
    from fastapi.params import Depends as DependsMarker
    from fastapi.responses import JSONResponse, Response, StreamingResponse
    from fastapi.routing import APIRoute, APIWebSocketRoute
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.types import Receive, Scope, Send
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise MissingExtraError("dockyard.integrations.fastapi", "fastapi", "fastapi") from exc

if TYPE_CHECKING:  # an entry point never imports the app at run time (import direction)
    from fastapi.dependencies.models import Dependant

    from dockyard.app import App

__all__ = [
    "DockyardRoute",
    "EventSourceResponse",
    "FromDockyard",
    "inject",
    "last_event_id",
    "setup_dockyard",
    "sse_response",
]

T = TypeVar("T")
P = ParamSpec("P")

_STATE_KEY = "dockyard_app"


def setup_dockyard(
    web: FastAPI,
    app: App,
    *,
    problems: ProblemMapping | None = None,
    background_services: bool = False,
) -> None:
    """Attach ``app`` to ``web``: lifespan, request scopes, problem details.

    Args:
        web: The FastAPI application.
        app: The dockyard app its endpoints use.
        problems: How errors become problem details (default: ``ProblemMapping()``); extend
            it with ``.add(...)`` before this call.
        background_services: Also run the app's background services (outbox relays,
            projections, consumers) in the web process. Off by default: run them with
            ``dockyard worker``, which scales and restarts apart from the web servers.

    At start-up (before the app starts) every ``FromDockyard[T]`` of every route is checked
    against what the root module can see; all problems are raised at once as a
    ``ModuleConfigurationError``.
    """
    mapping = problems if problems is not None else ProblemMapping()
    setattr(web.state, _STATE_KEY, app)
    web.router.lifespan_context = _lifespan(
        web, app, web.router.lifespan_context, background_services=background_services
    )

    async def on_error(request: Request, exc: Exception) -> Response:
        status, body = mapping.problem(exc, instance=request.url.path)
        return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)

    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        status, body = validation_problem(jsonable_encoder(exc.errors()), instance=request.url.path)
        return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code < 400 or exc.status_code in (204, 304):  # no body to give
            return Response(status_code=exc.status_code, headers=exc.headers)
        status, body = status_problem(exc.status_code, detail=exc.detail, instance=request.url.path)
        return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=exc.headers)

    # Mapped types are answered by Starlette's ExceptionMiddleware; the rest (the `Exception`
    # key) by its ServerErrorMiddleware, which answers and then re-raises for the server.
    for exc_type in mapping.exception_types():
        if issubclass(exc_type, Exception):  # Starlette routes only Exceptions to handlers
            web.add_exception_handler(exc_type, on_error)
    web.add_exception_handler(Exception, on_error)
    web.add_exception_handler(RequestValidationError, on_invalid)
    web.add_exception_handler(HTTPException, on_http)  # FastAPI's subclasses it


def _lifespan(
    web: FastAPI,
    app: App,
    inner: Callable[[Any], contextlib.AbstractAsyncContextManager[Any]],
    *,
    background_services: bool,
) -> Callable[[Any], contextlib.AbstractAsyncContextManager[Any]]:
    @asynccontextmanager
    async def lifespan(asgi_app: Any) -> AsyncIterator[Any]:
        _check_injections(web, app)
        async with (
            serving(app, background_services=background_services),
            inner(asgi_app) as state,
        ):
            yield state

    return lifespan


# -- one scope per request -----------------------------------------------------------------------
#
# Two ways to end the request's scope when the endpoint returns, before the response is sent:
#
# * Fast (FastAPI 0.121 up to 1.0, checked below): ``FromDockyard[T]`` is one plain dependency
#   that opens the scope the first time a request asks, keeps it in the ASGI scope for the
#   request's other injections, and pushes its exit onto the exit stack FastAPI closes when
#   the endpoint returns (``fastapi_function_astack``, where its own ``Depends(scope=
#   "function")`` exits go; FastAPI's, not a public API). A FastAPI dependency costs ~12 µs,
#   a yield dependency ~35 µs more (docs/web.md#performance).
# * Public: a yield dependency ``Depends(scope="function")`` holding the scope, and
#   ``FromDockyard[T]`` a dependency on it: the same guarantees, ~20 µs more per request.

_SCOPE_KEY = "dockyard.scope"  # the request's AsyncContainer, in the ASGI scope
_FUNCTION_STACK = "fastapi_function_astack"


def _has_function_stack() -> bool:
    """Whether this FastAPI keeps its function-scoped exit stack where the fast path looks."""
    try:
        major, minor = (int(part) for part in fastapi.__version__.split(".")[:2])
        source = inspect.getsource(fastapi_routing.request_response)
    except (ValueError, OSError, TypeError):  # an odd version string, no source installed
        return False
    return (0, 121) <= (major, minor) < (1, 0) and f'"{_FUNCTION_STACK}"' in source


_FAST = _has_function_stack()


async def _request_scope(request: Request) -> AsyncIterator[AsyncContainer]:
    """The public path's scope dependency: its exit commits, or rolls back on the error."""
    try:
        app = _app_of(request, lambda: f"`FromDockyard[...]` of {_route_of(request)}")
        async with app.scope({Request: request}) as scope:
            request.scope[_SCOPE_KEY] = scope  # for an endpoint under `inject` to share
            try:
                yield scope
            finally:
                del request.scope[_SCOPE_KEY]  # scope → context → Request → ASGI scope: a cycle
    except ExitError as exc:
        raise_unwrapped(exc)


async def _open_scope(request: Request) -> AsyncContainer:
    """The fast path: the request's scope, opened by the first injection that needs it."""
    app = _app_of(request, lambda: f"`FromDockyard[...]` of {_route_of(request)}")
    scope = app.scope({Request: request})
    stack = request.scope.get(_FUNCTION_STACK)
    if not isinstance(stack, AsyncExitStack):  # _has_function_stack() said it would be there
        raise RuntimeError(  # noqa: TRY004 # pragma: no cover - a FastAPI the probe misjudged
            f"FastAPI {fastapi.__version__} has no `{_FUNCTION_STACK}` in the request: "
            "please report it to dockyard with your FastAPI version"
        )

    async def close(
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        del request.scope[_SCOPE_KEY]  # scope → context → Request → ASGI scope: a cycle
        await close_scope(scope, exc_type, exc, traceback)  # shielded if it awaits anything
        return False

    stack.push_async_exit(close)
    request.scope[_SCOPE_KEY] = scope
    return scope


# "function": exited when the endpoint returns, before the response is sent, so a failing
# commit is the client's error response and not a 200 for a write that did not happen.
_SCOPE = Annotated[AsyncContainer, Depends(_request_scope, scope="function")]


@functools.cache
def _resolver(dependency: Any, fast: bool) -> Callable[..., Any]:
    if not fast:
        return resolver(dependency, _SCOPE)

    async def resolve(request: Request) -> Any:
        scope = request.scope.get(_SCOPE_KEY)
        if scope is None:
            scope = await _open_scope(request)
        return await resolve_in(scope, dependency)

    resolve.__name__ = f"resolve_{type_name(dependency)}"
    resolve.__dockyard_dependency__ = dependency  # type: ignore[attr-defined]
    return resolve


def _app_of(request: Request, needed: Callable[[], str]) -> App:
    app: App | None = getattr(request.app.state, _STATE_KEY, None)
    if app is None:
        raise IntegrationNotSetUpError(
            "FastAPI", needed(), "setup_dockyard(web, app)", "dockyard.integrations.fastapi"
        )
    return app


def _route_of(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    return f"endpoint `{' '.join(sorted(getattr(route, 'methods', None) or ()))} {path}`"


if TYPE_CHECKING:
    FromDockyard = Annotated[T, "dockyard"]
else:

    class FromDockyard:
        """``FromDockyard[T]``: ``T`` from the request's dockyard scope, in an endpoint's signature.

        It is a FastAPI dependency: it adds nothing to the OpenAPI schema, works in
        dependencies of your own, and every one of them in a request shares one scope.
        """

        __slots__ = ()

        def __class_getitem__(cls, dependency: Any) -> Any:
            return Annotated[dependency, Depends(_resolver(dependency, _FAST))]


# -- the endpoint's own scope: `inject` and `DockyardRoute` ---------------------------------------
#
# FastAPI charges ~12 µs for any dependency (a `solve_dependencies` pass per request). Under
# `inject`, the endpoint's `FromDockyard[T]` parameters are no dependencies at all: the wrapper
# hides them from FastAPI (its `__signature__` lacks them, so neither the dependency solver nor
# OpenAPI sees them), takes the `Request` instead, opens the request's scope around the
# endpoint and resolves them in it — the work a hand-written endpoint does, and its cost.


def inject(endpoint: Callable[P, T]) -> Callable[P, T]:
    """Resolve the endpoint's ``FromDockyard[T]`` parameters itself, without FastAPI dependencies.

    ``DockyardRoute`` applies it to every endpoint of a router; as a decorator it goes under the
    route's (``@web.post(...)`` above ``@inject``). The wrapper opens the request's dockyard
    scope (the ``Request`` in its context) around the endpoint, resolves the parameters in it,
    and closes it when the endpoint returns — the unit of work commits then, before the
    response is built, and rolls back when the endpoint raises; an exit with anything to await
    (a commit) is shielded from cancellation. If a dependency of the endpoint took
    ``FromDockyard`` and so opened the request's scope already, the parameters are resolved in
    that one, which FastAPI closes.
    The schema (OpenAPI) is the endpoint's, without those parameters.

    An endpoint without ``FromDockyard`` parameters, or a generator endpoint (a stream outlives
    the endpoint's call, so its injections stay FastAPI dependencies), is returned unchanged.
    """
    wrapped = getattr(endpoint, "__dockyard_dependencies__", None) is not None
    streams = inspect.isasyncgenfunction(endpoint) or inspect.isgeneratorfunction(endpoint)
    if wrapped or streams:  # wrapped: FastAPI < 0.16x re-adds an included router's routes
        return endpoint
    signature = evaluated_signature(endpoint)
    injected = {
        name: dependency
        for name, parameter in signature.parameters.items()
        if (dependency := _dockyard_dependency(parameter.annotation)) is not _MISSING
    }
    if not injected:
        return endpoint
    kept = [p for name, p in signature.parameters.items() if name not in injected]
    request_name = next((p.name for p in kept if _is_request(p.annotation)), None)
    pops_request = request_name is None
    if request_name is None:  # FastAPI fills one Request parameter: the endpoint's, or this
        request_name = _REQUEST_PARAMETER.name
        where = next((i for i, p in enumerate(kept) if p.kind is p.VAR_KEYWORD), len(kept))
        kept.insert(where, _REQUEST_PARAMETER)
    injections = tuple(injected.items())

    def needed() -> str:
        types = ", ".join(f"`FromDockyard[{type_name(d)}]`" for d in injected.values())
        return f"{types} of endpoint `{endpoint.__qualname__}`"

    call: Callable[..., Any] = (
        endpoint
        if inspect.iscoroutinefunction(endpoint)
        else functools.partial(run_in_threadpool, endpoint)
    )

    def locate(kwargs: dict[str, Any]) -> Located:
        request: Request | None = (
            kwargs.pop(request_name, None) if pops_request else kwargs[request_name]
        )
        if request is None:  # FastAPI fills no `Request` for a websocket endpoint
            raise _not_for_websockets(endpoint, None)
        shared = request.scope.get(_SCOPE_KEY)
        if shared is not None:
            return shared, None, None
        return None, _app_of(request, needed), {Request: request}

    injecting = injecting_function(locate, injections, call)
    return dressed_as(injecting, endpoint, signature, kept, injected)


class DockyardRoute(APIRoute):
    """An ``APIRoute`` whose endpoint is wrapped by :func:`inject`: its ``FromDockyard[T]``
    parameters cost no FastAPI dependency. ``APIRouter(route_class=DockyardRoute)``, or
    ``web.router.route_class = DockyardRoute`` before the routes are declared."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, inject(endpoint), **kwargs)


_REQUEST_PARAMETER = inspect.Parameter(
    "dockyard_request__", inspect.Parameter.KEYWORD_ONLY, annotation=Request
)


def _dockyard_dependency(annotation: Any) -> Any:
    """``T`` for a ``FromDockyard[T]`` annotation, else ``_MISSING``."""
    if get_origin(annotation) is not Annotated:
        return _MISSING
    for marker in get_args(annotation)[1:]:
        if isinstance(marker, DependsMarker):
            return getattr(marker.dependency, "__dockyard_dependency__", _MISSING)
    return _MISSING


def _is_request(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, Request)


def _check_injections(web: FastAPI, app: App) -> None:
    routes = list(_routes(web.routes, ""))
    for prefix, route in routes:  # `inject` opens a scope per HTTP request only
        if isinstance(route, APIWebSocketRoute) and hasattr(
            route.endpoint, "__dockyard_dependencies__"
        ):
            raise _not_for_websockets(route.endpoint, prefix + route.path)
    check_injections(
        app,
        (
            (f"endpoint `{' '.join(sorted(route.methods or ()))} {prefix}{route.path}`", dependency)
            for prefix, route in routes
            if isinstance(route, APIRoute)
            for dependency in (
                *getattr(route.endpoint, "__dockyard_dependencies__", ()),
                *_injected(route.dependant),
            )
        ),
    )


def _routes(routes: Iterable[Any], prefix: str) -> Iterator[tuple[str, Any]]:
    """Every route with its path's prefix, in routers included too (FastAPI ≥ 0.16x keeps an
    included router whole, behind an ``original_router``, rather than copying its routes)."""
    for route in routes:
        yield prefix, route
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            inner = prefix + getattr(context, "prefix", "")
            yield from _routes(getattr(included, "routes", ()), inner)


def _not_for_websockets(endpoint: Callable[..., Any], path: str | None) -> FastAPIError:
    return FastAPIError(not_for_websockets("endpoint", endpoint, path))


def _injected(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        dependency = getattr(sub.call, "__dockyard_dependency__", _MISSING)
        if dependency is not _MISSING:
            yield dependency
        yield from _injected(sub)


_MISSING = object()


# -- server-sent events -------------------------------------------------------------------------


class EventSourceResponse(StreamingResponse):
    """A ``text/event-stream`` response over SSE frames, ended when the client goes away.

    The frames are closed when the response ends for any reason (the stream ended, the client
    disconnected, the server shuts down), so whatever produced them runs its ``finally``.
    """

    def __init__(self, frames: AsyncGenerator[bytes, None], *, status_code: int = 200) -> None:
        super().__init__(
            frames,
            status_code=status_code,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            media_type="text/event-stream",
        )
        self._frames = frames

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: ARG002
        async with aclosing(self._frames):
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            pump = asyncio.ensure_future(self._pump(send))
            watch = asyncio.ensure_future(_disconnected(receive))
            try:
                await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (pump, watch):
                    task.cancel()
                await asyncio.gather(pump, watch, return_exceptions=True)
            error = None if pump.cancelled() else pump.exception()
            if error is not None and not isinstance(error, OSError):  # OSError: client gone
                raise error

    async def _pump(self, send: Send) -> None:
        async for frame in self._frames:
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def sse_response(
    request: Request,
    stream: StreamRequest[Any],
    *,
    retry: int | None = 3000,
    ping: float | None = 15.0,
    event: str | None = None,
    id_of: Callable[[Any], str] | None = None,
) -> EventSourceResponse:
    """Stream the answer to ``stream`` as server-sent events, in a scope of its own.

    Each item the stream handler yields is one event: its JSON (dockyard's codec for its
    type: msgspec, or pydantic for pydantic models) as ``data``, an ``id`` counting from 1,
    and ``retry`` (milliseconds) on the first. A comment is sent after ``ping`` idle seconds
    to keep proxies from closing the connection. When the client disconnects, the stream is
    cancelled (the handler's ``finally`` runs) and its scope closed.

    Args:
        request: The endpoint's request (its app, and the scope's ``Request`` context).
        stream: The stream request to answer.
        retry: Milliseconds a client waits before reconnecting; ``None`` sends none.
        ping: Idle seconds between keep-alive comments; ``None`` sends none.
        event: The ``event`` name of every event (``None``: the default, ``message``).
        id_of: Each event's ``id`` from its item (a position, a version), so a client that
            reconnects sends it back as ``Last-Event-ID`` (``last_event_id(...)``) and the
            stream request can resume after it; ``None`` numbers the events from 1.
    """
    app = _app_of(request, lambda: f"the `sse_response` of {_route_of(request)}")
    return EventSourceResponse(
        stream_frames(
            app, {Request: request}, stream, retry=retry, ping=ping, event=event, id_of=id_of
        )
    )


def last_event_id(request: Request) -> str | None:
    """The ``Last-Event-ID`` header of a reconnecting ``EventSource``: the ``id`` of the last
    event it received (give events meaningful ids with ``sse_response(..., id_of=...)``), or
    ``None`` on a first connection. Put it in the stream request, so its handler resumes after
    it::

        after = int(last_event_id(request) or 0)
        return sse_response(request, WatchOrders(after=after), id_of=lambda o: str(o.position))
    """
    return last_event_id_of(request.headers)
