"""Litestar as a door into a dockyard app: lifespan, a scope per request, injection, problems, SSE.

``Litestar(plugins=[DockyardPlugin(app)])`` starts the dockyard ``App`` with Litestar's
lifespan and stops it at shutdown. A handler asks for what the app's root module can see with
``Inject(T)`` in its ``dependencies`` and a ``FromDockyard[T]`` parameter, Litestar's idiom::

    @post("/orders", dependencies={"sender": Inject(ISender)})
    async def place(data: JSONBody[PlaceOrder], sender: FromDockyard[ISender]) -> str:
        return await sender.send(data)

Every ``Inject`` of one request resolves in one dockyard scope: one unit of work, committed
after the handler returned (before the response is sent) and rolled back when it raised.
Under ``@inject`` (below the route decorator) the handler's ``FromDockyard[T]`` parameters need
no ``Inject``: the wrapper opens the request's scope around the handler and resolves them, at
the cost of no Litestar dependency.
Errors become RFC 9457 problem details through a :class:`ProblemMapping`; ``sse_response``
turns a ``StreamRequest`` into server-sent events. See ``docs/web-litestar.md``.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from http import HTTPStatus
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    ParamSpec,
    TypeAlias,
    TypeVar,
    get_args,
    get_origin,
)

from dishka import AsyncContainer
from dishka.exceptions import ExitError

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
    dressed_as,
    evaluated_signature,
    injecting_function,
    last_event_id_of,
    not_for_websockets,
    raise_unwrapped,
    serving,
    stream_frames,
    validation_problem,
)
from dockyard.messaging import StreamRequest
from dockyard.messaging._bus import resolve_in

try:
    from litestar import Litestar, Request, Response
    from litestar.concurrency import sync_to_thread
    from litestar.config.app import AppConfig
    from litestar.connection import ASGIConnection
    from litestar.di import NamedDependency, Provide
    from litestar.exceptions import (
        HTTPException,
        ImproperlyConfiguredException,
        ValidationException,
    )
    from litestar.handlers import HTTPRouteHandler
    from litestar.params import SkipValidation
    from litestar.plugins import InitPluginProtocol, ReceiveRoutePlugin
    from litestar.response import Stream
    from litestar.routes import BaseRoute, HTTPRoute
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingExtraError("dockyard.integrations.litestar", "Litestar", "litestar") from exc

if TYPE_CHECKING:  # an entry point never imports the app at run time (import direction)
    from dockyard.app import App

__all__ = [
    "SCOPE_DEPENDENCY",
    "DockyardPlugin",
    "FromDockyard",
    "Inject",
    "inject",
    "last_event_id",
    "sse_response",
]

T = TypeVar("T")
P = ParamSpec("P")

SCOPE_DEPENDENCY = "dockyard_scope"
"""The name of the dependency holding the request's dockyard scope (an ``AsyncContainer``)."""

_STATE_KEY = "dockyard_app"
_SCOPE_KEY = "dockyard.scope"  # the scope `dockyard_scope` opened, in the ASGI scope, for `inject`


class _FromDockyardMarker:
    """Tells ``inject`` a ``FromDockyard[T]`` parameter from any other ``NamedDependency``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "FromDockyard"


FromDockyard: TypeAlias = Annotated[NamedDependency[SkipValidation[T]], _FromDockyardMarker()]
"""``T`` from the request's dockyard scope in a handler: ``sender: FromDockyard[ISender]``.

Filled by the ``Inject(T)`` of its name in the handler's ``dependencies``, or, in a handler
under :func:`inject`, by the wrapper (no ``Inject`` needed). Litestar's ``NamedDependency``, with
validation skipped: what the container gives is already of the declared type, and ports such
as ``ISender`` are protocols Litestar cannot check.
"""


class DockyardPlugin(InitPluginProtocol, ReceiveRoutePlugin):
    """Attach a dockyard :class:`~dockyard.App` to a Litestar app.

    * **Lifespan**: ``async with app`` around Litestar's lifespan, so the app starts once
      before the first request and stops once at shutdown.
    * **Scope per request**: the ``dockyard_scope`` dependency opens ``app.scope()`` (with the
      ``litestar.Request`` in its context, for ``contextual(Request)`` providers) the first
      time an ``Inject`` of the request needs it; Litestar closes it after the handler
      returned, before the response is sent: the unit of work commits then, or rolls back if
      the handler raised. A handler under :func:`inject` gets a ``before_request`` hook
      that hands its wrapper the request (in front of the handler's own hook, if any).
    * **Errors**: every exception answered as ``application/problem+json`` through
      ``problems`` (validation errors as 422, Litestar's own HTTP errors with their status).

    Args:
        app: The dockyard app.
        background_services: Also run the app's background services (outbox relays,
            projections, consumers) in this process, as ``dockyard worker`` would. Off by
            default: a web process serves requests, a worker process runs services.
        problems: Which exception becomes which problem; ``ProblemMapping()`` by default.
    """

    __slots__ = ("app", "background_services", "problems")

    def __init__(
        self,
        app: App,
        *,
        background_services: bool = False,
        problems: ProblemMapping | None = None,
    ) -> None:
        self.app = app
        self.background_services = background_services
        self.problems = problems if problems is not None else ProblemMapping()

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Add the lifespan, the scope dependency and the problem handlers to ``app_config``."""
        app_config.lifespan.append(self._lifespan)
        app_config.state[_STATE_KEY] = self.app
        app_config.dependencies[SCOPE_DEPENDENCY] = Provide(self._scope)
        handlers: dict[Any, Any] = {
            Exception: self._problem,
            HTTPException: _http_problem,
            ValidationException: _validation_problem,
        }
        app_config.exception_handlers = {**handlers, **app_config.exception_handlers}
        return app_config

    def receive_route(self, route: BaseRoute) -> None:
        """Give each handler of ``route`` under :func:`inject` the hook handing it the request.

        Raises:
            ImproperlyConfiguredException: A websocket handler is under ``inject``, which
                opens a scope per HTTP request only.
        """
        if not isinstance(route, HTTPRoute):
            other = getattr(route, "route_handler", None)  # a websocket or ASGI route's one
            if getattr(getattr(other, "fn", None), "__dockyard_dependencies__", None) is not None:
                raise _not_for_websockets(other.fn, route.path)  # type: ignore[union-attr]
            return
        for handler in route.route_handlers:
            fn = handler.fn
            bound_to = getattr(fn, _BOUND_TO, None)  # on a wrapper without `request` only
            if bound_to is None:
                continue
            fills = handler.parsed_fn_signature.parameters  # a controller's `self` is not one
            if not fills and Request not in self.app.context_types:
                # Nothing to hand over (no parameter Litestar fills: no dependency opened a
                # scope; no provider reads the request): Litestar's copy of the handler, in
                # this app only, gets the wrapper made for this plugin's app.
                bound = bound_to(self.app)
                if isinstance(fn, types.MethodType):
                    bound = types.MethodType(bound, fn.__self__)
                handler(bound)
            else:
                handler.before_request = _handing_request(self.app, _before_request_of(handler))

    @asynccontextmanager
    async def _lifespan(self, web: Litestar) -> AsyncIterator[None]:
        _check_injections(web, self.app)
        async with serving(self.app, background_services=self.background_services):
            yield

    async def _scope(self, request: Request[Any, Any, Any]) -> AsyncGenerator[AsyncContainer, None]:
        try:
            async with self.app.scope({Request: request}) as scope:
                request.scope[_SCOPE_KEY] = scope  # type: ignore[literal-required] # for `inject`
                try:
                    yield scope  # Litestar throws the handler's exception in here: it rolls back
                finally:  # scope → context → Request → ASGI scope: no cycle left for the GC
                    del request.scope[_SCOPE_KEY]  # type: ignore[misc]
        except ExitError as exc:  # Dishka groups what the scope's finalizers raised
            raise_unwrapped(exc)

    def _problem(self, request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        status, body = self.problems.problem(exc, instance=request.url.path)
        return _response(status, body)


def Inject(dependency: type[T] | Any) -> Provide:  # noqa: N802 -- reads as a marker, like Provide
    """A Litestar dependency resolving ``dependency`` in the request's dockyard scope.

    Put it in ``dependencies={"name": Inject(T)}`` on a handler, controller, router or the
    app; the handler takes ``name: FromDockyard[T]``. What can be injected is what the app's
    root module sees: ``ISender``, ``IPublisher`` and every provider exported to it. It is
    not a request parameter: OpenAPI does not list it.
    """

    async def resolve(dockyard_scope: FromDockyard[AsyncContainer]) -> Any:
        return await resolve_in(dockyard_scope, dependency)

    resolve.__dockyard_dependency__ = dependency  # type: ignore[attr-defined]
    return Provide(resolve)


# -- the handler's own scope: `inject` ----------------------------------------------------------
#
# Litestar charges ~13 µs for the generator dependency holding the request's scope and ~10 µs
# for each `Provide` (docs/web.md#performance). Under `inject` the handler's `FromDockyard[T]`
# parameters are no dependencies: the wrapper's `__signature__` lacks them (so neither
# Litestar's kwargs model nor OpenAPI sees them); it opens the request's scope around the
# handler and resolves them in it, as a hand-written handler would. The request reaches the
# wrapper through a `before_request` hook the plugin puts on the handler (`receive_route`),
# not through a `request` parameter: a handler with no parameter left skips Litestar's kwargs
# model and signature parsing altogether (~3 µs a request, docs/design/web-integrations.md).


def inject(handler: Callable[P, T]) -> Callable[P, T]:
    """Resolve the handler's ``FromDockyard[T]`` parameters itself, without Litestar dependencies.

    Goes under the route decorator (``@post(...)`` above ``@inject``); the parameters need no
    ``Inject(T)`` in ``dependencies`` (one there is left unused). The wrapper opens the
    request's dockyard scope (the ``litestar.Request`` in its context) around the handler,
    resolves the parameters in it and closes it when the handler returns: the unit of work
    commits then, before the response is built, and rolls back when the handler raises (the
    exception then goes on to the problem handlers); an exit with anything to await (a commit)
    is shielded from anyio cancellation (not from a plain asyncio ``task.cancel()``). If a
    dependency of the handler
    took an ``Inject``, and so opened the request's scope already, the parameters are resolved
    in that one, which Litestar closes. The wrapper takes the request from the handler's own
    ``request`` parameter if it has one, else from a ``before_request`` hook that
    :class:`DockyardPlugin` adds to the handler when it is registered (it calls the
    handler's, router's or app's own ``before_request`` hook, if there is one, and a
    response that hook returns is answered as Litestar would). A synchronous handler runs in
    Litestar's worker thread (``sync_to_thread``; do not pass ``sync_to_thread`` to the route
    decorator).

    A handler without ``FromDockyard`` parameters, a generator function, or one whose
    annotations cannot be evaluated where it is defined is returned unchanged (its
    ``FromDockyard`` parameters stay named dependencies, filled by their ``Inject``).
    """
    wrapped = getattr(handler, "__dockyard_dependencies__", None) is not None
    streams = inspect.isasyncgenfunction(handler) or inspect.isgeneratorfunction(handler)
    if wrapped or streams:
        return handler
    signature = evaluated_signature(handler)
    injected = {
        name: dependency
        for name, parameter in signature.parameters.items()
        if (dependency := _dockyard_dependency(parameter.annotation)) is not _MISSING
    }
    if not injected:
        return handler
    kept = [p for name, p in signature.parameters.items() if name not in injected]
    handed = all(p.name != _REQUEST for p in kept)  # by the plugin's hook, not by Litestar
    injections = tuple(injected.items())
    call: Callable[..., Any] = (
        handler
        if inspect.iscoroutinefunction(handler)
        else functools.partial(sync_to_thread, handler)
    )

    def locate(kwargs: dict[str, Any]) -> Located:
        if handed:
            hand = _handed.get()
            if hand is None:  # no plugin put the hook on this handler
                raise _not_set_up_for(handler, injected)
            _handed.set(None)  # taken: nothing of this request outlives it here
            request, app = hand
        else:
            request = kwargs[_REQUEST]
            app = _app_of(request, injected)
        shared = request.scope.get(_SCOPE_KEY)
        if shared is not None:
            return shared, None, None  # type: ignore[return-value]
        return None, app, {Request: request}

    def dressed(function: Callable[..., Any]) -> Callable[..., Any]:
        return dressed_as(function, handler, signature, kept, injected)

    def bound_to(app: App) -> Callable[..., Any]:
        located: Located = (None, app, None)
        return dressed(injecting_function(lambda _: located, injections, call))

    injecting = dressed(injecting_function(locate, injections, call))
    if handed:  # the request comes by the plugin's hook, or is not needed
        setattr(injecting, _BOUND_TO, bound_to)
    return injecting


_REQUEST = "request"  # the name Litestar fills with the connection (a reserved kwarg)
# on a wrapper without `request` (it takes the request from the plugin's hook):
# `bound_to(app)` makes the same wrapper for one app only, needing no request
_BOUND_TO = "__dockyard_bound_to__"

# The request of the handler about to run and the plugin's app, set by the handler's
# `before_request` hook and taken by its `inject` wrapper. Litestar awaits the hook and then
# the handler in the same task, and a server runs each request in a task of its own (a copy of
# the context), so a request never sees another's; the wrapper clears it once taken.
_handed: ContextVar[tuple[Request[Any, Any, Any], App] | None] = ContextVar(
    "dockyard_request", default=None
)

_BeforeRequest: TypeAlias = Callable[[Request[Any, Any, Any]], Any]


def _before_request_of(handler: HTTPRouteHandler) -> _BeforeRequest | None:
    """The ``before_request`` hook Litestar would run for ``handler``: its nearest layer's."""
    hooks = [layer.before_request for layer in handler.ownership_layers if layer.before_request]
    return hooks[-1] if hooks else None


def _handing_request(app: App, then: _BeforeRequest | None) -> _BeforeRequest:
    """A ``before_request`` hook handing the request and ``app`` to the ``inject`` wrapper,
    then calling ``then``."""
    if then is None:

        async def hand(request: Request[Any, Any, Any]) -> None:
            _handed.set((request, app))

        return hand

    async def hand_then(request: Request[Any, Any, Any]) -> Any:
        _handed.set((request, app))
        try:
            answered = await then(request)  # Litestar's hooks are async (ensure_async_callable)
        except BaseException:
            _handed.set(None)
            raise
        if answered:  # Litestar answers with it and never calls the handler
            _handed.set(None)
        return answered

    return hand_then


def _not_for_websockets(handler: Callable[..., Any], path: str) -> ImproperlyConfiguredException:
    return ImproperlyConfiguredException(not_for_websockets("handler", handler, path))


def _not_set_up_for(handler: Callable[..., Any], injected: Mapping[str, Any]) -> Exception:
    types = ", ".join(f"`FromDockyard[{type_name(d)}]`" for d in injected.values())
    return IntegrationNotSetUpError(
        "Litestar",
        f"{types} of handler function `{handler.__module__}.{handler.__qualname__}`",
        "Litestar(..., plugins=[DockyardPlugin(app)])",
        "dockyard.integrations.litestar",
    )


def _dockyard_dependency(annotation: Any) -> Any:
    """``T`` for a ``FromDockyard[T]`` annotation, else ``_MISSING``."""
    if get_origin(annotation) is not Annotated:
        return _MISSING
    if any(isinstance(marker, _FromDockyardMarker) for marker in annotation.__metadata__):
        return get_args(annotation)[0]
    return _MISSING


def _app_of(request: Request[Any, Any, Any], injected: Mapping[str, Any]) -> App:
    """The app of the plugin, for a handler under ``inject`` with the ``injected`` types."""
    app: App | None = request.app.state.get(_STATE_KEY)
    if app is None:
        types = ", ".join(f"`FromDockyard[{type_name(d)}]`" for d in injected.values())
        raise _not_set_up(request, types)
    return app


def _not_set_up(
    connection: ASGIConnection[Any, Any, Any, Any], needed: str
) -> IntegrationNotSetUpError:
    handler = connection.scope.get("route_handler")
    methods = " ".join(sorted(getattr(handler, "http_methods", ()) or ()))
    path = connection.scope.get("path_template", connection.url.path)
    return IntegrationNotSetUpError(
        "Litestar",
        f"{needed} of handler `{methods} {path}`",
        "Litestar(..., plugins=[DockyardPlugin(app)])",
        "dockyard.integrations.litestar",
    )


def sse_response(
    connection: ASGIConnection[Any, Any, Any, Any],
    stream: StreamRequest[Any],
    /,
    *,
    retry: int | None = 3000,
    ping: float | None = 15.0,
    event: str | None = None,
    id_of: Callable[[Any], str] | None = None,
) -> Stream:
    """Answer with the items of ``stream`` as server-sent events: one line in a handler.

    The stream runs in a dockyard scope of its own (with the ``litestar.Request`` in its
    context), open as long as the client listens: when the client goes away, Litestar cancels
    the response, the stream handler's ``finally`` runs and the scope closes. Each item is one
    event: its JSON (dockyard's codec for its type: msgspec, or pydantic for pydantic models)
    as ``data``, an ``id`` counting from 1, and ``retry`` on the first; a comment goes out
    after ``ping`` idle seconds to keep proxies from closing the connection.

    Args:
        connection: The handler's request (a ``request: Request`` parameter).
        stream: The stream request to answer.
        retry: Milliseconds a client waits before reconnecting; ``None`` sends none.
        ping: Idle seconds between keep-alive comments; ``None`` sends none.
        event: The ``event`` name of every event (``None``: the default, ``message``).
        id_of: Each event's ``id`` from its item (a position, a version), so a client that
            reconnects sends it back as ``Last-Event-ID`` (``last_event_id(...)``) and the
            stream request can resume after it; ``None`` numbers the events from 1.
    """
    app: App | None = connection.app.state.get(_STATE_KEY)
    if app is None:
        raise _not_set_up(connection, "the `sse_response`")
    return Stream(
        stream_frames(
            app, {Request: connection}, stream, retry=retry, ping=ping, event=event, id_of=id_of
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _check_injections(web: Litestar, app: App) -> None:
    """Every ``Inject(T)`` of every handler, and every ``FromDockyard[T]`` of a handler under
    ``inject``, names a ``T`` the root module sees."""
    check_injections(
        app,
        (
            (f"handler `{' '.join(sorted(handler.http_methods))} {route.path}`", dependency)
            for route in web.routes
            for handler in getattr(route, "route_handlers", ())
            for dependency in _injected(handler)
        ),
    )


def _injected(handler: HTTPRouteHandler) -> Iterator[Any]:
    yield from getattr(handler.fn, "__dockyard_dependencies__", ())
    for provide in handler.resolve_dependencies().values():
        dependency = getattr(provide.dependency, "__dockyard_dependency__", _MISSING)
        if dependency is not _MISSING:
            yield dependency


_MISSING = object()


def _http_problem(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    body: dict[str, Any] = {"type": "about:blank", "title": _phrase(exc.status_code)}
    body["status"] = exc.status_code
    if exc.detail and exc.detail != body["title"]:
        body["detail"] = exc.detail
    body["instance"] = request.url.path
    return _response(exc.status_code, body, headers=exc.headers)


def _validation_problem(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    extra = exc.extra if isinstance(exc.extra, list) else [exc.extra] if exc.extra else []
    status, body = validation_problem(extra, instance=request.url.path)
    return _response(status, body)


def _response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response[Any]:
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def last_event_id(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The ``Last-Event-ID`` header of a reconnecting ``EventSource``: the ``id`` of the last
    event it received (give events meaningful ids with ``sse_response(..., id_of=...)``), or
    ``None`` on a first connection. Put it in the stream request, so its handler resumes after
    it::

        after = int(last_event_id(connection) or 0)
        return sse_response(connection, WatchOrders(after=after), id_of=lambda o: str(o.position))
    """
    return last_event_id_of(connection.headers)
