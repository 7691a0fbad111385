"""``Projection``: a read model built from events, with one typed method per event type."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, overload

from dockyard._type_name import type_name
from dockyard.eventsourcing._store import RecordedEvent
from dockyard.exceptions import InvalidProjectionError
from dockyard.messaging._handlers import EventHandler
from dockyard.messaging._introspect import generic_args, message_class, parametrized

__all__ = ["Projection", "Target", "handles", "target_of"]

F = TypeVar("F", bound=Callable[..., Awaitable[None]])

_HANDLES_ATTR = "__dockyard_handles__"
_FROM_ANNOTATION: Any = object()


@overload
def handles(event_type: type, /) -> Callable[[F], F]: ...
@overload
def handles(method: F, /) -> F: ...
def handles(target: Any, /) -> Any:
    """Mark a projection method as the one that applies an event type to the read model.

    ``@handles`` alone reads the event type from the annotation of the method's first
    parameter; ``@handles(T)`` names it. The method is ``async def m(self, event)`` or
    ``async def m(self, event, recorded: RecordedEvent)`` when it needs the position, stream or
    metadata (catch-up projections only).
    """
    if isinstance(target, type):
        event_type = target

        def mark(method: F) -> F:
            setattr(method, _HANDLES_ATTR, event_type)
            return method

        return mark
    setattr(target, _HANDLES_ATTR, _FROM_ANNOTATION)
    return target


class Projection:
    """Base for projections: subclass it and mark one ``async`` method per event type.

    Constructor parameters are injected by type from the scope the projection runs in — for a
    SQL read model, the scope's ``dockyard.sql.SqlUnitOfWork``, whose connection also writes the
    checkpoint, so both commit together.

    Example::

        class OrderTotals(Projection):
            name = "order-totals"

            def __init__(self, uow: SqlUnitOfWork) -> None:
                self.uow = uow

            @handles
            async def placed(self, event: OrderPlaced) -> None:
                await self.uow.connection.execute(insert(totals).values(...))

            async def reset(self) -> None:
                await self.uow.connection.execute(delete(totals))
    """

    name: ClassVar[str]
    """The checkpoint's name; keep it stable (defaults to the class name). Changing it makes a
    new projection that starts from the beginning of the log."""

    __handlers__: ClassVar[dict[type, tuple[Callable[..., Awaitable[None]], bool]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: dict[type, tuple[Callable[..., Awaitable[None]], bool]] = {}
        for base in reversed(cls.__mro__[1:]):
            found.update(getattr(base, "__handlers__", {}))
        for attribute, member in vars(cls).items():
            marked = getattr(member, _HANDLES_ATTR, None)
            if marked is None:
                continue
            event_type = _event_type(cls, attribute, member, marked)
            found[event_type] = (member, _wants_recorded(cls, attribute, member))
        cls.__handlers__ = found
        if "name" not in vars(cls):
            cls.name = cls.__name__

    async def flush(self) -> None:
        """Called after each batch of events, before the checkpoint is written (same transaction).

        Buffer rows in the handlers and write them here in one statement to go fast; the
        default does nothing. Inline projections flush after every event.
        """

    async def reset(self) -> None:
        """Clear the read model, for a rebuild; runs in the transaction that zeroes the checkpoint.

        The default raises ``ProjectionResetError``: without it a rebuild would apply every
        event a second time on top of the old rows.
        """
        raise NotImplementedError


def _event_type(cls: type, attribute: str, member: Any, marked: Any) -> type:
    if not inspect.iscoroutinefunction(member):
        raise InvalidProjectionError(
            cls,
            f"marks `{attribute}` with @handles, but it is not an `async def` method",
            f"write `async def {attribute}(self, event: SomeEvent) -> None`",
        )
    if marked is not _FROM_ANNOTATION:
        _refuse_parametrized(cls, marked)
        return typing.cast("type", marked)
    hints = typing.get_type_hints(member)
    parameters = [p for p in inspect.signature(member).parameters if p != "self"]
    hint = hints.get(parameters[0]) if parameters else None
    _refuse_parametrized(cls, hint)
    if not isinstance(hint, type):
        raise InvalidProjectionError(
            cls,
            f"marks `{attribute}` with @handles, but its first parameter has no event class "
            "annotation",
            "annotate it (`event: OrderPlaced`) or name the type: `@handles(OrderPlaced)`",
        )
    return hint


def _refuse_parametrized(cls: type, hint: Any) -> None:
    """A projection applies events by class: ``Notice[UserLeft]`` would take every ``Notice``."""
    generic = parametrized(hint)
    if generic is not None:
        origin = type_name(generic[0])
        raise InvalidProjectionError(
            cls,
            f"handles the parametrized `{origin}[...]`, but a projection applies events by "
            f"class and would take every `{origin}`",
            f"handle `{origin}` and check the payload's type in the method",
        )


def _wants_recorded(cls: type, attribute: str, member: Any) -> bool:
    parameters = [p for p in inspect.signature(member).parameters.values() if p.name != "self"]
    if len(parameters) in (1, 2):
        return len(parameters) == 2
    raise InvalidProjectionError(
        cls,
        f"has a @handles method `{attribute}` taking {len(parameters)} arguments",
        "take `(self, event)` or `(self, event, recorded: RecordedEvent)`",
    )


# -------------------------------------------------------------------------------- targets


Apply = Callable[[Any, RecordedEvent], Awaitable[None]]
"""Applies one recorded event to an instance of the target class."""


@dataclass(frozen=True, slots=True)
class Target:
    """What a catch-up runner drives: a projection or an event handler under a checkpoint name."""

    name: str
    cls: type
    appliers: dict[type, Apply]
    """Event class → how to apply it to an instance."""
    is_projection: bool

    @property
    def event_types(self) -> tuple[type, ...]:
        return tuple(self.appliers)

    def applier(self, event_type: type) -> Apply | None:
        """The applier of ``event_type``, or of its nearest handled base class."""
        found = self.appliers.get(event_type)
        if found is None:
            for base in event_type.__mro__[1:]:
                found = self.appliers.get(base)
                if found is not None:
                    return found
        return found

    @property
    def has_reset(self) -> bool:
        return self.is_projection and self.cls.reset is not Projection.reset  # type: ignore[attr-defined]

    @property
    def display(self) -> str:
        return type_name(self.cls)


def target_of(cls: object, name: str | None = None) -> Target:
    """Describe a ``Projection`` subclass or an ``EventHandler[E]`` class as a runner target.

    Raises:
        InvalidProjectionError: It is neither, or it handles no event type.
    """
    if isinstance(cls, type) and issubclass(cls, Projection):
        if not cls.__handlers__:
            raise InvalidProjectionError(
                cls, "handles no event type", "mark an `async` method with `@handles`"
            )
        return Target(
            name or cls.name,
            cls,
            {
                tp: _projection_applier(method, recorded)
                for tp, (method, recorded) in cls.__handlers__.items()
            },
            is_projection=True,
        )
    if isinstance(cls, type) and issubclass(cls, EventHandler):
        args = generic_args(cls, EventHandler)
        event_type = message_class(args[0]) if args else None
        if args:
            _refuse_parametrized(cls, args[0])
        if event_type is None:
            raise InvalidProjectionError(
                cls,
                "subclasses `EventHandler` without naming an event type",
                f"name it in the base: `class {type_name(cls)}(EventHandler[OrderPlaced])`",
            )
        return Target(
            name or type_name(cls), cls, {event_type: _handler_applier}, is_projection=False
        )
    raise InvalidProjectionError(
        cls,
        "is neither a `Projection` subclass nor an `EventHandler[E]` class",
        "subclass `Projection` and mark methods with `@handles`, or subscribe an "
        "`EventHandler[E]` class",
    )


def _projection_applier(method: Callable[..., Awaitable[None]], recorded: bool) -> Apply:
    if recorded:

        async def apply_recorded(instance: Any, event: RecordedEvent) -> None:
            await method(instance, event.data, event)

        return apply_recorded

    async def apply(instance: Any, event: RecordedEvent) -> None:
        await method(instance, event.data)

    return apply


async def _handler_applier(instance: Any, event: RecordedEvent) -> None:
    await instance.handle(event.data)
