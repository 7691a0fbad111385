"""What every web integration shares: problem details, SSE framing, the app's lifespan.

Framework-neutral on purpose: ``dockyard.integrations.fastapi`` and ``.litestar`` turn the
``(status, body)`` pairs and the bytes made here into their own response types, so both answer
the same error with the same body, frame a stream the same way, and start and stop the app
(``serving``) the same way.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NoReturn, TypeAlias, TypeVar

from dishka import AsyncContainer
from dishka.exceptions import ExitError

from dockyard._type_name import type_name
from dockyard.exceptions import (
    AggregateNotFoundError,
    ConcurrencyError,
    MissingProviderError,
    ModuleConfigurationError,
    ModuleProblem,
    NotExportedError,
)
from dockyard.messaging import ISender, StreamRequest
from dockyard.messaging._bus import resolve_in
from dockyard.messaging._dishka import has_finalizers
from dockyard.modules._supervisor import Supervisor, describe
from dockyard.serialization import default_codec_for

if TYPE_CHECKING:  # an entry point never imports the app at run time (import direction)
    from dockyard.app import App

__all__ = [
    "PROBLEM_JSON",
    "ProblemMapping",
    "RuleViolation",
    "running_services",
    "serving",
    "sse_comment",
    "sse_event",
    "sse_stream",
    "status_problem",
    "validation_problem",
]

logger = logging.getLogger("dockyard.web")

E = TypeVar("E", bound=BaseException)
T = TypeVar("T")

PROBLEM_JSON = "application/problem+json"
"""The media type of an RFC 9457 problem details body."""

# A problem details body: JSON-ready values (the RFC's members plus extension members).
Problem = dict[str, Any]


class RuleViolation(Exception):  # noqa: N818 -- a domain outcome users name, not an "Error"
    """A business rule said no: subclass it in your domain; its message goes to the client.

    The class attributes say how it is answered over HTTP (400 unless a subclass says
    otherwise, e.g. ``status = 409`` for a conflict with the current state)::

        class OrderAlreadyShipped(RuleViolation):
            status = 409
            title = "Order already shipped"

    Unlike dockyard's own errors (developer messages with hints, never sent to clients), the
    message of a rule violation is written for the caller and is the problem's ``detail``.
    """

    status: ClassVar[int] = 400
    title: ClassVar[str] = "Rule violated"
    type: ClassVar[str] = "about:blank"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)  # like a builtin's message: the one arg, and the str()

    @property
    def detail(self) -> str:
        """The message for the caller: the problem's ``detail``."""
        return str(self.args[0])


@dataclass(frozen=True, slots=True)
class _Entry(Generic[E]):
    status: int
    title: str
    type: str
    detail: Callable[[E], str | None] | None

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 599:
            raise ValueError(f"a problem's status is a 4xx or 5xx code, not {self.status}")


def _not_found(exc: AggregateNotFoundError) -> str:
    return f"No {exc.aggregate_type} with id {exc.aggregate_id}."


def _conflict(_: ConcurrencyError) -> str:
    return "The resource was changed by another request: reload it and try again."


class ProblemMapping:
    """Which exception becomes which RFC 9457 problem; extend it with :meth:`add`.

    The most specific class wins (the exception's MRO is walked). Out of the box:
    ``AggregateNotFoundError`` → 404, ``ConcurrencyError`` → 409, a :class:`RuleViolation`
    → its class's ``status`` (400 by default) with its message as ``detail``. Anything else is
    a 500 whose body says nothing of the error; it is logged with its traceback on the
    ``dockyard.web`` logger.
    """

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[type[BaseException], _Entry[Any]] = {}
        self.add(AggregateNotFoundError, 404, title="Not Found", detail=_not_found)
        self.add(ConcurrencyError, 409, title="Conflict", detail=_conflict)

    def add(
        self,
        exc_type: type[E],
        status: int,
        *,
        title: str | None = None,
        type: str = "about:blank",  # noqa: A002 -- the RFC's member name
        detail: Callable[[E], str | None] | None = None,
    ) -> ProblemMapping:
        """Answer ``exc_type`` (and its subclasses) with ``status``; returns the mapping.

        Args:
            exc_type: The exception class.
            status: A 4xx or 5xx HTTP status.
            title: The problem's title (default: the status's phrase, e.g. "Not Found").
            type: A URI naming the problem type (RFC 9457 §3.1.1).
            detail: Makes the ``detail`` text from the exception; none by default, so an
                error's message (which may name internals) never reaches a client unasked.
                ``detail=str`` sends the message.
        """
        self._entries[exc_type] = _Entry(status, title or HTTPStatus(status).phrase, type, detail)
        return self

    def exception_types(self) -> tuple[type[BaseException], ...]:
        """The classes answered with a mapped problem, for frameworks that route by class."""
        return (*self._entries, RuleViolation)

    def problem(self, exc: BaseException, *, instance: str | None = None) -> tuple[int, Problem]:
        """The status and problem details body answering ``exc``.

        Args:
            exc: The exception an endpoint raised.
            instance: A URI for this occurrence (the request's path, typically).
        """
        for cls in type(exc).__mro__:
            entry = self._entries.get(cls)
            if entry is not None:
                detail = entry.detail(exc) if entry.detail is not None else None
                return entry.status, _body(entry.status, entry.title, entry.type, detail, instance)
            if cls is RuleViolation:  # after any entry for a subclass; reads the subclass's
                assert isinstance(exc, RuleViolation)  # own status and title
                return exc.status, _body(exc.status, exc.title, exc.type, exc.detail, instance)
        logger.error("unhandled error answered with 500", exc_info=exc)
        return 500, _body(500, HTTPStatus(500).phrase, "about:blank", None, instance)


def validation_problem(
    errors: Sequence[object], *, instance: str | None = None
) -> tuple[int, Problem]:
    """422 for a request that failed validation, with the framework's errors as ``errors``.

    ``errors`` must be JSON-ready (FastAPI's ``RequestValidationError.errors()`` made so by
    its ``jsonable_encoder``, Litestar's ``ValidationException.extra``).
    """
    # RFC 9110's name (Python before 3.13 says "Unprocessable Entity")
    body = _body(422, "Unprocessable Content", "about:blank", "The request is not valid.", instance)
    body["errors"] = list(errors)
    return 422, body


def status_problem(
    status: int, *, detail: str | None = None, instance: str | None = None
) -> tuple[int, Problem]:
    """A problem for a status the framework chose (its own HTTP exceptions, an unknown route).

    A ``detail`` that only repeats the status's phrase (frameworks fill it in so) is dropped.
    """
    title = _title(status)
    detail = None if detail == title else detail
    return status, _body(status, title, "about:blank", detail, instance)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:  # a status Python does not name
        return "Error"


def _body(status: int, title: str, type_: str, detail: str | None, instance: str | None) -> Problem:
    body: Problem = {"type": type_, "title": title, "status": status}
    if detail is not None:
        body["detail"] = detail
    if instance is not None:
        body["instance"] = instance
    return body


# -- lifespan ------------------------------------------------------------------------------------


@asynccontextmanager
async def serving(
    app: App, *, background_services: bool = False, grace: float = 30.0
) -> AsyncIterator[None]:
    """The app's life inside a server's lifespan: started once, stopped once.

    An app already started by its owner is left to them (neither started nor stopped here).
    With ``background_services``, the app's relays, projections and consumers run beside the
    server (``running_services``). The server's signal handling is left alone: the server's
    shutdown stops them.
    """
    owns = not app.is_started
    if owns:
        await app.start()
    error: BaseException | None = None
    try:
        if not background_services:
            yield
            return
        async with running_services(app, grace):
            yield
    except BaseException as exc:
        error = exc
        raise
    finally:
        if owns:
            await app.stop(error)


@asynccontextmanager
async def running_services(app: App, grace: float = 30.0) -> AsyncIterator[None]:
    """The started app's background services (relays, projections, consumers), each under a
    supervisor as in ``dockyard worker`` (restarted through outages; ``app.health()`` reports
    them), given ``grace`` seconds to finish at the end."""
    stop = asyncio.Event()
    supervisors = [Supervisor(service) for service in app.background_services()]
    app._supervisors = supervisors  # noqa: SLF001 -- what `app.health()` reports
    tasks = [asyncio.create_task(s.run(stop), name=s.name) for s in supervisors]
    try:
        yield
    finally:
        stop.set()
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        for task in tasks:
            task.cancel()
        for supervisor, result in zip(
            supervisors, await asyncio.gather(*tasks, return_exceptions=True), strict=True
        ):
            if isinstance(result, Exception):
                logger.error("background service %s: %s", supervisor.name, describe(result))


# -- server-sent events ------------------------------------------------------------------------


def sse_event(
    data: bytes | str,
    *,
    id: str | None = None,  # noqa: A002 -- the field's name in the SSE format
    event: str | None = None,
    retry: int | None = None,
) -> bytes:
    """One server-sent event, framed: ``id``, ``event``, ``retry`` and ``data`` lines, a blank line.

    Data with line breaks becomes several ``data:`` lines (the client joins them back).

    Raises:
        ValueError: ``id`` or ``event`` holds a line break (or ``id`` a NUL), or ``retry``
            is negative: each would corrupt the stream.
    """
    lines: list[bytes] = []
    if id is not None:
        if "\n" in id or "\r" in id or "\0" in id:
            raise ValueError(f"an SSE id cannot hold a line break or NUL: {id!r}")
        lines.append(b"id: " + id.encode())
    if event is not None:
        if "\n" in event or "\r" in event:
            raise ValueError(f"an SSE event name cannot hold a line break: {event!r}")
        lines.append(b"event: " + event.encode())
    if retry is not None:
        if retry < 0:
            raise ValueError(f"an SSE retry is a number of milliseconds ≥ 0, not {retry}")
        lines.append(b"retry: %d" % retry)
    raw = data.encode() if isinstance(data, str) else data
    lines.extend(b"data: " + line for line in raw.replace(b"\r\n", b"\n").split(b"\n"))
    return b"\n".join(lines) + b"\n\n"


def sse_comment(text: str = "") -> bytes:
    """An SSE comment line (clients ignore it): a keep-alive ping through idle proxies."""
    if "\n" in text or "\r" in text:
        raise ValueError(f"an SSE comment cannot hold a line break: {text!r}")
    return b":" + (b" " + text.encode() if text else b"") + b"\n\n"


async def sse_stream(
    items: AsyncIterator[T],
    encode: Callable[[T], bytes | str],
    *,
    retry: int | None = None,
    ping: float | None = 15.0,
    event: str | None = None,
    id_of: Callable[[T], str] | None = None,
) -> AsyncGenerator[bytes, None]:
    """Frame each item of ``items`` as an event, with a ping after ``ping`` idle seconds.

    Event ids are ``id_of(item)``, or count up from 1 without it (the first event also
    carries ``retry``). When the consumer of
    this iterator stops (the client went away: the framework cancels it or closes it), the
    pending read of ``items`` is cancelled and ``items`` is closed, so the stream handler's
    ``finally`` runs and its scope closes before this returns.
    """
    number = 0
    pending: asyncio.Task[T] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(items))
            done, _ = await asyncio.wait({pending}, timeout=ping)
            if not done:
                yield sse_comment("ping")
                continue
            finished, pending = pending, None
            try:
                item = finished.result()
            except StopAsyncIteration:
                return
            number += 1
            yield sse_event(
                encode(item),
                id=id_of(item) if id_of is not None else str(number),
                event=event,
                retry=retry if number == 1 else None,
            )
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()


# -- injection ----------------------------------------------------------------------------------


async def close_scope(
    scope: AsyncContainer,
    exc_type: type[BaseException] | None,
    exc: BaseException | None,
    traceback: TracebackType | None,
) -> None:
    """End a request's scope: commit, or roll back on ``exc``; what its finalizers raised is
    raised as :func:`raise_unwrapped` says.

    Shielded from cancellation (anyio's, as FastAPI shields its yield dependencies' exits), so
    a cancelled request still ends its unit of work and gives its connection back. A scope
    with no finalizer to run awaits nothing while it closes, and nothing can interrupt it:
    then no shield is set up (an anyio ``CancelScope`` cost 5–12 µs a request, a tenth of a
    minimal one; docs/web.md, "Performance").
    """
    try:
        if not has_finalizers(scope):
            await scope.__aexit__(exc_type, exc, traceback)
            return
        from anyio import CancelScope  # every web framework and FastStream depend on anyio

        with CancelScope(shield=True):
            await scope.__aexit__(exc_type, exc, traceback)
    except ExitError as error:
        raise_unwrapped(error)


Located: TypeAlias = "tuple[AsyncContainer | None, App | None, dict[Any, Any] | None]"
"""Where a route-level wrapper resolves, per request: ``(shared, None, None)`` in the
request's scope a framework dependency opened already (the framework closes it), or
``(None, app, context)`` in a new scope of ``app`` with ``context``."""


def injecting_function(
    locate: Callable[[dict[str, Any]], Located],
    injections: Sequence[tuple[str, Any]],
    call: Callable[..., Awaitable[Any]],
) -> Callable[..., Coroutine[Any, Any, Any]]:
    """The coroutine function a route-level wrapper (``inject``) runs per request.

    ``locate(kwargs)`` (the framework's keyword arguments; it may take the request out of
    them) says where :data:`Located`. The wrapper resolves ``injections`` (parameter name,
    type) into ``kwargs`` there and awaits ``call(*bound, **kwargs)`` (``bound``: a
    controller's ``self``). A scope it opened closes when ``call`` returns (the unit of work
    commits) or raises (it rolls back), by :func:`close_scope`. One coroutine layer between the
    framework and ``call``: this function is the wrapper.
    """

    async def injecting(*bound: Any, **kwargs: Any) -> Any:
        shared, app, context = locate(kwargs)
        function = functools.partial(call, *bound) if bound else call
        if shared is not None:
            for name, dependency in injections:
                kwargs[name] = await resolve_in(shared, dependency)
            return await function(**kwargs)
        assert app is not None
        scope = app.scope(context)
        await scope.__aenter__()
        try:
            for name, dependency in injections:
                kwargs[name] = await resolve_in(scope, dependency)
            result = await function(**kwargs)
        except BaseException as exc:
            await close_scope(scope, type(exc), exc, exc.__traceback__)
            raise
        await close_scope(scope, None, None, None)
        return result

    return injecting


def dressed_as(
    wrapper: Callable[..., Any],
    wrapped: Callable[..., Any],
    signature: inspect.Signature,
    kept: Sequence[inspect.Parameter],
    injected: Mapping[str, Any],
) -> Callable[..., Any]:
    """``wrapper`` made to look like ``wrapped`` to the framework: its name and docstring,
    its signature and annotations without the ``injected`` parameters (what the framework
    fills and documents), and ``__dockyard_dependencies__`` (the injected types, for the
    start-up check)."""
    functools.update_wrapper(wrapper, wrapped)
    wrapper.__signature__ = signature.replace(parameters=kept)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {
        name: annotation
        for name, annotation in getattr(wrapped, "__annotations__", {}).items()
        if name not in injected
    }
    wrapper.__dockyard_dependencies__ = tuple(injected.values())  # type: ignore[attr-defined]
    return wrapper


def not_for_websockets(kind: str, function: Callable[..., Any], path: str | None) -> str:
    """What the frameworks' errors say of ``@inject`` on a websocket ``kind`` (``handler``,
    ``endpoint``): the wrapper opens a scope per HTTP request only."""
    where = f"`{function.__module__}.{function.__qualname__}`" + (f" of `{path}`" if path else "")
    return (
        f"`@inject` is on the websocket {kind} {where}: it wraps HTTP {kind}s only (a scope "
        f"per request). Hint: remove it, and open a scope in the {kind} with "
        "`async with app.scope() as scope` where the socket needs one."
    )


def evaluated_signature(function: Callable[..., Any]) -> inspect.Signature:
    """``function``'s signature with its annotations evaluated, as the frameworks read them; left
    as strings where one cannot be (the framework reports those, or resolves them in a namespace
    of its own: then its ``FromDockyard`` parameters stay dependencies)."""
    try:
        return inspect.signature(function, eval_str=True)
    except NameError:
        return inspect.signature(function)


def raise_unwrapped(exc: ExitError) -> NoReturn:
    """Dishka groups what a scope's finalizers raised; one (a failed commit) is raised alone,
    answered as if the endpoint had raised it (its 409, not a 500)."""
    if len(exc.exceptions) == 1:
        raise exc.exceptions[0] from exc
    raise exc


def resolver(dependency: Any, scope: Any) -> Callable[..., Any]:
    """The function a framework calls for ``FromDockyard[dependency]``: it takes the request's
    (or message's) dockyard scope, one parameter annotated ``scope`` (the framework's marker of
    its scope dependency), and resolves ``dependency`` in it. It carries the dependency as
    ``__dockyard_dependency__`` for ``check_injections``."""

    async def resolve(scope: AsyncContainer) -> Any:
        return await resolve_in(scope, dependency)

    resolve.__annotations__ = {"scope": scope, "return": Any}
    resolve.__name__ = f"resolve_{type_name(dependency)}"
    resolve.__dockyard_dependency__ = dependency  # type: ignore[attr-defined]
    return resolve


def check_injections(app: App, injected: Iterable[tuple[str, Any]]) -> None:
    """Every ``(where, T)`` an integration found in its routes names a ``T`` the root module
    sees; all problems at once, before the app starts (as ``App.build`` reports the modules'
    own).

    Raises:
        ModuleConfigurationError: What is missing or not exported, naming each endpoint.
    """
    visible = set(app._compiled.root_visible) | set(app._context)  # noqa: SLF001 -- same package
    problems: list[ModuleProblem] = []
    root = app.graph.root
    for where, dependency in injected:
        if dependency in visible:
            continue
        providers = [n for n in app.graph.all_nodes if dependency in n.provided]
        if not providers:
            problems.append(MissingProviderError(root.name, dependency, where))
            continue
        owner = providers[0]
        problems.append(
            NotExportedError(
                root.name,
                dependency,
                where,
                owner.name,
                imported=owner in _reachable(root),
                exported=dependency in owner.exported,
            )
        )
    if problems:
        raise ModuleConfigurationError(problems)


def _reachable(root: Any) -> set[Any]:
    seen: set[Any] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(node.imports)
    return seen


async def stream_frames(
    app: App,
    context: dict[Any, Any],
    stream: StreamRequest[Any],
    *,
    retry: int | None,
    ping: float | None,
    event: str | None,
    id_of: Callable[[Any], str] | None = None,
) -> AsyncGenerator[bytes, None]:
    """The SSE frames of ``stream``, sent in a scope of its own (``context`` holds the web
    framework's request); closing the generator (a client that left) closes the scope."""
    async with app.scope(context) as scope:
        sender = await resolve_in(scope, ISender)
        frames = sse_stream(
            sender.stream(stream), _encode, retry=retry, ping=ping, event=event, id_of=id_of
        )
        async with aclosing(frames):
            async for frame in frames:
                yield frame


def _encode(item: object) -> bytes:
    return default_codec_for(type(item)).encode(item)


def last_event_id_of(headers: Mapping[str, str]) -> str | None:
    """The ``Last-Event-ID`` a reconnecting ``EventSource`` sends (the ``id`` of the last event
    it got), or ``None`` on a first connection."""
    value = headers.get("last-event-id")
    return value if value else None
