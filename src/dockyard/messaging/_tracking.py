"""Which message types need context tracking, decided once when the app is built.

Tracking costs every message an envelope and a ``ContextVar`` set and reset
(docs/design/dispatch.md), so a message type is tracked only when something on its dispatch
path — a handler or a behavior — can reach, through the Dishka providers the app already has:

- a class that reads the envelope (``MessageContext``, ``Outbox``: marked with
  ``__dockyard_reads_envelope__``);
- something that dispatches (``ISender``, ``IPublisher``, ``IMessageBus``): a message sent or
  published there carries this one as its cause, and may be routed to the outbox;
- something we cannot see through: a container (it resolves anything), a dependency typed
  ``Any``, ``object`` or a type variable, or one no provider we know of provides.

And only when something in the app reads the envelope at all: in an app where nothing does,
causation ids cannot be observed, however far messages go.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar, get_origin

from dishka import AsyncContainer, Container, Provider
from dishka.entities.key import DependencyKey

from dockyard.messaging._bus import Dispatcher, MessageBus
from dockyard.messaging._interfaces import IMessageBus, IPublisher, ISender
from dockyard.messaging._plan import BehaviorRef, HandlerRef

__all__ = ["ContextReach"]

_READS_ENVELOPE = "__dockyard_reads_envelope__"

_DISPATCHES: frozenset[Any] = frozenset({ISender, IPublisher, IMessageBus, MessageBus, Dispatcher})
_OPAQUE: frozenset[Any] = frozenset({AsyncContainer, Container, Any, object})
_HOLDS_DISPATCH = (MessageBus, Dispatcher, AsyncContainer, Container)
"""What a shared behavior instance may hold that sends, publishes or resolves anything."""


def _reads_envelope(dependency: Any) -> bool:
    return bool(getattr(dependency, _READS_ENVELOPE, False))


def _seed(dependency: Any) -> bool:
    """Reaches the context by itself: reads it, dispatches, or hides what it does."""
    return (
        dependency in _OPAQUE
        or dependency in _DISPATCHES
        or isinstance(dependency, TypeVar)
        or _reads_envelope(dependency)
    )


class ContextReach:
    """The app's provider graph, by type (components merged: that can only add paths, so it
    errs towards tracking), and which of its types reach the message context."""

    __slots__ = ("_reaching", "_sources", "read_anywhere")

    def __init__(self, providers: Iterable[Provider]) -> None:
        sources: dict[Any, list[Any]] = {}
        """Each provided type and what building it depends on (all its sources together)."""
        self.read_anywhere = False
        """Whether anything depends on a class that reads the envelope."""

        def add(provides: DependencyKey, keys: Iterable[DependencyKey]) -> None:
            deps = sources.setdefault(provides.type_hint, [])
            for key in keys:
                if key.type_hint is not provides.type_hint:  # an alias across components
                    deps.append(key.type_hint)
                    self.read_anywhere = self.read_anywhere or _reads_envelope(key.type_hint)

        for provider in providers:
            for factory in provider.factories:
                add(factory.provides, (*factory.dependencies, *factory.kw_dependencies.values()))
            for decorator in provider.decorators:
                inner = decorator.factory
                add(decorator.provides, (*inner.dependencies, *inner.kw_dependencies.values()))
            for alias in provider.aliases:
                add(alias.provides, (alias.source,))
            for union in provider.factory_union_mode:  # collect(T): Sequence[T] needs every T
                add(union.provides, (union.source,))
            for variable in provider.context_vars:
                add(variable.provides, ())
        self._sources = sources
        self._reaching = self._propagate(sources)

    @staticmethod
    def _propagate(sources: dict[Any, list[Any]]) -> set[Any]:
        """Every type that reaches a seed, walking dependencies backwards from the seeds."""
        by_origin: dict[Any, list[Any]] = {}
        for provided in sources:
            origin = get_origin(provided)
            if origin is not None:
                by_origin.setdefault(origin, []).append(provided)
        dependents: dict[Any, set[Any]] = {}
        reaching: set[Any] = set()
        for provided, deps in sources.items():
            if _seed(provided):
                reaching.add(provided)
            for dep in deps:
                dependents.setdefault(dep, set()).add(provided)
                if dep in sources:
                    continue
                # A generic dependency (Repo[User]) built by a generic factory (Repo[T]).
                candidates = by_origin.get(get_origin(dep) or dep, [])
                for candidate in candidates:
                    dependents.setdefault(candidate, set()).add(dep)
                if _seed(dep) or not candidates:
                    reaching.add(dep)  # nothing we know builds it: we cannot see through it
        pending = list(reaching)
        while pending:
            for dependent in dependents.get(pending.pop(), ()):
                if dependent not in reaching:
                    reaching.add(dependent)
                    pending.append(dependent)
        return reaching

    def reaches(self, dependency: Any) -> bool:
        """Whether building ``dependency`` can reach the message context."""
        if dependency in self._reaching:
            return True
        return dependency not in self._sources  # unknown: track rather than guess

    def behavior_reaches(self, ref: BehaviorRef) -> bool:
        """A behavior class by its dependencies; a shared instance (built before the app, so
        it has no scoped dependencies) by what it holds."""
        if ref.instance is None:
            return self.reaches(ref.key)
        instance = ref.instance
        if _reads_envelope(type(instance)):
            return True
        held = list(getattr(instance, "__dict__", {}).values())
        for cls in type(instance).__mro__:
            slots = getattr(cls, "__slots__", ())
            names = (slots,) if isinstance(slots, str) else slots
            held.extend(getattr(instance, name, None) for name in names)
        return any(_reads_envelope(type(v)) or isinstance(v, _HOLDS_DISPATCH) for v in held)

    def path_reaches(
        self, handlers: Iterable[HandlerRef], behaviors: Iterable[BehaviorRef]
    ) -> bool:
        """Whether any of a message's handlers or behaviors can reach the context."""
        if not self.read_anywhere:
            return False
        return any(self.reaches(ref.handler) for ref in handlers) or any(
            self.behavior_reaches(ref) for ref in behaviors
        )
