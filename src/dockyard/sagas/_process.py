"""Process managers declared as data: which messages start, continue and time out an instance.

A process manager reacts to messages from many services, each naming the instance it belongs
to by a key (a message attribute, a function of the message, or the envelope's correlation
id); a ``ProcessHandler`` changes the instance's typed state and may complete it. See
docs/design/sagas.md, "Process managers".
"""

from __future__ import annotations

import abc
import enum
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Literal, TypeVar

from dockyard.messaging._envelope import Envelope

__all__ = [
    "Process",
    "ProcessHandler",
    "ProcessManager",
    "ProcessRoute",
    "RouteKind",
    "handles",
    "on_timeout",
    "starts",
]

M = TypeVar("M")
S = TypeVar("S")

Key = str | Callable[[Any], str] | None
"""An attribute name, a function of the message, or ``None``: the envelope's correlation id."""


class Process(Generic[S]):
    """The instance a ``ProcessHandler`` works on: change ``state``, ``complete()`` it, set or
    cancel its timeout. Everything is written with the scope's transaction, or not at all."""

    __slots__ = ("_cancel", "_requested", "completed", "created", "key", "name", "state")

    def __init__(self, name: str, key: str, state: S, *, created: bool) -> None:
        self.name = name
        self.key = key
        self.state: S = state
        """The typed state; mutate it or assign a new value."""
        self.created = created
        """``True`` when this message created the instance (a start message)."""
        self.completed = False
        self._requested: tuple[object, float] | None = None
        self._cancel = False

    def complete(self) -> None:
        """Finish the instance: its pending timeout is cancelled, later messages are ignored."""
        self.completed = True

    def set_timeout(
        self,
        message: object,
        /,
        *,
        after: timedelta | float | None = None,
        at: datetime | float | None = None,
    ) -> None:
        """Deliver ``message`` (a type this process manager takes with ``on_timeout``) to the
        instance when due, unless it completes first; replaces a pending timeout.

        It is a scheduled outbox message for the process manager's ``timeout_destination``,
        written with the instance's new state.

        Args:
            message: The timeout message; its key must name this instance.
            after: Due after this delay (a ``timedelta`` or seconds).
            at: Due at this time (an aware ``datetime`` or epoch seconds).
        """
        if (after is None) == (at is None):
            msg = "Process.set_timeout takes after= or at=, exactly one"
            raise ValueError(msg)
        if isinstance(at, datetime):
            if at.tzinfo is None:
                msg = f"Process.set_timeout(at={at!r}) needs a timezone-aware datetime"
                raise ValueError(msg)
            due = at.timestamp()
        elif at is not None:
            due = float(at)
        else:
            delay = after.total_seconds() if isinstance(after, timedelta) else float(after or 0)
            due = time.time() + delay
        self._requested = (message, due)
        self._cancel = False

    def cancel_timeout(self) -> None:
        """Cancel the pending timeout (and one set earlier in this handler)."""
        self._requested = None
        self._cancel = True


class ProcessHandler(abc.ABC, Generic[M, S]):
    """Handles one message type for a process manager. Constructor parameters are injected.

    Example:
        ```text
        class OnPaymentReceived(ProcessHandler[PaymentReceived, Fulfilment]):
            async def handle(self, message: PaymentReceived, process: Process[Fulfilment]):
                process.state.paid = True
                if process.state.shipped:
                    process.complete()
        ```
    """

    __slots__ = ()

    @abc.abstractmethod
    async def handle(self, message: M, process: Process[S], /) -> None:
        """React to ``message``: change ``process.state``, complete it, set a timeout."""


class RouteKind(enum.StrEnum):
    START = "start"
    """Creates the instance when its key has none; otherwise handled like ``HANDLE``."""
    HANDLE = "handle"
    """Needs an active instance (a missing one: ignored or dead-lettered, as configured)."""
    TIMEOUT = "timeout"
    """Applied only if it is the instance's pending timeout; otherwise ignored."""


@dataclass(frozen=True, slots=True)
class ProcessRoute:
    """One message type a process manager takes, the handler it runs, and how its key is read."""

    message: type
    handler: type[ProcessHandler[Any, Any]]
    kind: RouteKind
    key: Key = None

    def key_of(self, message: object, envelope: Envelope | None) -> str:
        """The key of the instance ``message`` belongs to."""
        key = self.key
        if key is None:
            if envelope is None:
                msg = f"{self.message.__qualname__} has no envelope to take a correlation id from"
                raise LookupError(msg)
            return envelope.correlation_id
        if isinstance(key, str):
            return str(getattr(message, key))
        return str(key(message))


def starts(
    message: type[M], handler: type[ProcessHandler[M, Any]], *, key: Key = None
) -> ProcessRoute:
    """``message`` creates an instance for its key (and continues an existing one)."""
    return ProcessRoute(message, handler, RouteKind.START, key)


def handles(
    message: type[M], handler: type[ProcessHandler[M, Any]], *, key: Key = None
) -> ProcessRoute:
    """``message`` continues the active instance of its key."""
    return ProcessRoute(message, handler, RouteKind.HANDLE, key)


def on_timeout(
    message: type[M], handler: type[ProcessHandler[M, Any]], *, key: Key = None
) -> ProcessRoute:
    """``message`` is this process manager's timeout (``Process.set_timeout``): it runs
    ``handler`` only if it is the instance's pending timeout when it arrives."""
    return ProcessRoute(message, handler, RouteKind.TIMEOUT, key)


@dataclass(frozen=True, slots=True, eq=False)
class ProcessManager(Generic[S]):
    """A process manager: a stable ``name``, typed ``state`` and the messages it takes.

    Example:
        ```text
        fulfilment = ProcessManager(
            "fulfilment",
            version=1,
            state=Fulfilment,
            handlers=[
                starts(OrderPlaced, OnOrderPlaced, key="order_id"),
                handles(PaymentReceived, OnPaymentReceived, key="order_id"),
                on_timeout(PaymentOverdue, OnPaymentOverdue, key="order_id"),
            ],
            timeout_destination="fulfilment-timeouts",
        )
        ```

    Attributes:
        name: Stored with every instance: never rename it.
        version: Of the definition, stored with each instance.
        state: The state's class, encoded by the app's ``Serializer`` (upcasters apply).
        handlers: ``starts``, ``handles`` and ``on_timeout`` routes, one per message type.
        initial: Makes the state of a new instance (by default ``state()``).
        missing: A (non-start) message for an instance that does not exist: ``"ignore"``
            (a log line) or ``"dead_letter"`` (raises ``ProcessNotFoundError``, which a
            consumer makes a dead letter).
        timeout_destination: Where timeouts are published (the app must consume it).
        source: ``"messages"``: fed by whatever publishes its message types (``IPublisher``,
            a consumer). ``"event_store"``: fed by a catch-up subscription on the event log
            (``process_projection(...)`` in ``ProjectionsModule.register(projections=...)``),
            each event applied once, with the checkpoint; only its timeouts come as messages.
        compatible_with: Older versions whose instances this definition's handlers can go on
            with. A message for an instance of any other version is not applied: it raises
            ``ProcessVersionError`` (a dead letter from a consumer).
    """

    name: str
    _: KW_ONLY
    version: int
    state: type[S]
    handlers: Sequence[ProcessRoute] = field(default=())
    initial: Callable[[], S] | None = None
    missing: Literal["ignore", "dead_letter"] = "ignore"
    timeout_destination: str | None = None
    source: Literal["messages", "event_store"] = "messages"
    compatible_with: Iterable[int] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "compatible_with", tuple(self.compatible_with))

    def accepts(self, version: int) -> bool:
        """Whether an instance started under ``version`` can go on with this definition."""
        return version == self.version or version in tuple(self.compatible_with)

    def new_state(self) -> S:
        return self.initial() if self.initial is not None else self.state()

    def route(self, message_type: type) -> ProcessRoute:
        return next(r for r in self.handlers if r.message is message_type)

    def problems(self) -> list[str]:
        """Everything that keeps this definition from running as declared."""
        # Definitions are data a type checker may not have seen: check what they hold.
        name: object = self.name
        version: object = self.version
        state: object = self.state
        missing: object = self.missing
        handlers: Sequence[object] = self.handlers
        where = f"Process manager `{name}`"
        found: list[str] = []
        if not isinstance(name, str) or not name:
            found.append(f"{where}: its name must be a non-empty string")
        if not isinstance(version, int) or version < 1:
            found.append(f"{where}: its version must be a positive int, got {version!r}")
        if version in tuple(self.compatible_with):
            found.append(f"{where} lists its own version {version} in `compatible_with`")
        if not isinstance(state, type):
            found.append(f"{where}: its state must be a class, got {state!r}")
        if missing not in {"ignore", "dead_letter"}:
            found.append(f"{where}: missing= must be 'ignore' or 'dead_letter'")
        source: object = self.source
        if source not in {"messages", "event_store"}:
            found.append(f"{where}: source= must be 'messages' or 'event_store'")
        seen: set[type] = set()
        routes: list[ProcessRoute] = []
        for route in handlers:
            if not isinstance(route, ProcessRoute):
                found.append(
                    f"{where}: `{route!r}` is not a route (use starts, handles, on_timeout)"
                )
                continue
            routes.append(route)
            found += _route_problems(where, route, seen)
            if (
                source == "event_store"
                and route.key is None
                and route.kind is not RouteKind.TIMEOUT
            ):
                found.append(
                    f"{where}, {route.kind} {route.message.__qualname__}: an event read from "
                    "the event store has no envelope; give key= (an attribute or a function)"
                )
        if not any(r.kind is RouteKind.START for r in routes):
            found.append(f"{where}: no start message (declare one with starts(...))")
        if any(r.kind is RouteKind.TIMEOUT for r in routes) and not self.timeout_destination:
            found.append(
                f"{where}: it takes timeouts but has no timeout_destination "
                "(where the outbox publishes them, and this app consumes them)"
            )
        return found

    def diagram(self) -> str:
        """A Mermaid state diagram: what starts, continues, times out and completes it."""
        lines = ["stateDiagram-v2", '    state "active" as active']
        for route in self.handlers:
            name = route.message.__qualname__
            if route.kind is RouteKind.START:
                lines.append(f"    [*] --> active : {name}")
            elif route.kind is RouteKind.TIMEOUT:
                lines.append(f"    active --> active : {name} (timeout)")
            else:
                lines.append(f"    active --> active : {name}")
        lines.append("    active --> [*] : complete()")
        return "\n".join(lines)


def _route_problems(where: str, route: ProcessRoute, seen: set[type]) -> list[str]:
    handler: object = route.handler
    key: object = route.key
    label = f"{where}, {route.kind} {getattr(route.message, '__qualname__', route.message)}"
    found: list[str] = []
    if route.message in seen:
        found.append(f"{label}: the message type is routed twice")
    seen.add(route.message)
    if not (isinstance(handler, type) and issubclass(handler, ProcessHandler)):
        found.append(f"{label}: the handler `{handler!r}` is not a ProcessHandler")
    if key is not None and not (isinstance(key, str) or callable(key)):
        found.append(f"{label}: key= must be an attribute name or a function")
    return found
