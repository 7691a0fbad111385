"""Object-style aggregates: raise events, apply them by type, track the version."""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Self, TypeVar, overload

from dockyard.exceptions import MissingApplierError

__all__ = ["Aggregate", "applies"]

F = TypeVar("F", bound=Callable[..., None])

_APPLIES_ATTR = "__dockyard_applies__"


@overload
def applies(event_type: type, /) -> Callable[[F], F]: ...
@overload
def applies(method: F, /) -> F: ...
def applies(target: Any, /) -> Any:
    """Mark an aggregate method as the one that applies an event type to its state.

    ``@applies`` alone reads the event type from the method's annotation; ``@applies(T)`` names
    it. Appliers only change state: no I/O, no checks (those belong in the command methods).
    """
    if isinstance(target, type):
        event_type = target

        def mark(method: F) -> F:
            setattr(method, _APPLIES_ATTR, event_type)
            return method

        return mark
    setattr(target, _APPLIES_ATTR, None)  # resolved from the annotation in __init_subclass__
    return target


class Aggregate:
    """Base for object-style event-sourced aggregates.

    Command methods check invariants and call :meth:`raise_event`; methods marked
    :func:`applies` change state. ``version`` counts the events already stored, so the
    repository appends new events with ``expected_version=version``.

    Example::

        class Order(Aggregate):
            def __init__(self, aggregate_id: str) -> None:
                super().__init__(aggregate_id)
                self.status = "new"

            def place(self) -> None:
                self.raise_event(OrderPlaced(order_id=self.id))

            @applies
            def _placed(self, event: OrderPlaced) -> None:
                self.status = "placed"
    """

    __appliers__: ClassVar[dict[type, Callable[[Any, Any], None]]] = {}
    stream_type: ClassVar[str]
    """The stream name prefix: streams are ``"{stream_type}-{id}"``; defaults to the class name."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        appliers: dict[type, Callable[[Any, Any], None]] = {}
        for base in reversed(cls.__mro__[1:]):
            appliers.update(getattr(base, "__appliers__", {}))
        for name, member in vars(cls).items():
            if not hasattr(member, _APPLIES_ATTR):
                continue
            event_type = getattr(member, _APPLIES_ATTR) or _annotated_event_type(cls, name, member)
            appliers[event_type] = member
        cls.__appliers__ = appliers
        if "stream_type" not in vars(cls):
            cls.stream_type = cls.__name__

    def __init__(self, aggregate_id: str) -> None:
        self.id = aggregate_id
        self.version = 0
        self._pending: list[object] = []

    @property
    def stream_id(self) -> str:
        return f"{self.stream_type}-{self.id}"

    @property
    def pending_events(self) -> Sequence[object]:
        """Events raised since the last load or save, in order."""
        return tuple(self._pending)

    def raise_event(self, event: object) -> None:
        """Apply ``event`` now and keep it to be stored by the next save."""
        self._apply(event)
        self._pending.append(event)

    def _apply(self, event: object) -> None:
        applier = self.__appliers__.get(type(event))
        if applier is None:
            applier = self._applier_for_subclass(type(event))
        applier(self, event)

    def _applier_for_subclass(self, event_type: type) -> Callable[[Any, Any], None]:
        for base in event_type.__mro__[1:]:
            applier = self.__appliers__.get(base)
            if applier is not None:
                return applier
        raise MissingApplierError(type(self), event_type)

    @classmethod
    def replay(cls, aggregate_id: str, events: Iterable[object], *, version: int = 0) -> Self:
        """Rebuild an aggregate from stored events (``version`` is where a snapshot ended)."""
        aggregate = cls.__new__(cls)
        aggregate.id = aggregate_id
        aggregate.version = version
        aggregate._pending = []  # noqa: SLF001 - building an instance of this class
        aggregate._initialize()  # noqa: SLF001 - same
        return aggregate.replay_more(events)

    def replay_more(self, events: Iterable[object]) -> Self:
        appliers = self.__appliers__
        count = 0
        for event in events:
            applier = appliers.get(type(event))
            if applier is None:
                applier = self._applier_for_subclass(type(event))
            applier(self, event)
            count += 1
        self.version += count
        return self

    def _initialize(self) -> None:
        """Set the initial state when rebuilt by :meth:`replay` (``__init__`` is not called).

        The default calls ``__init__(self.id)`` while keeping the version; override it when
        ``__init__`` takes more than the id.
        """
        version, pending = self.version, self._pending
        type(self).__init__(self, self.id)
        self.version, self._pending = version, pending

    def mark_saved(self) -> list[object]:
        """Forget the pending events after a save; return them."""
        saved, self._pending = self._pending, []
        self.version += len(saved)
        return saved


def _annotated_event_type(cls: type, name: str, method: Callable[..., None]) -> type:
    module = __import__(cls.__module__, fromlist=["__name__"])
    hints = typing.get_type_hints(method, globalns=vars(module), localns=dict(vars(cls)))
    hints.pop("return", None)
    params = list(hints.values())
    if len(params) != 1 or not isinstance(params[0], type):
        msg = (
            f"`{cls.__qualname__}.{name}` is marked @applies but its event type is unclear: "
            "annotate its one parameter with the event class, or write @applies(EventType)."
        )
        raise TypeError(msg)
    return params[0]
