"""From the module graph to dispatch plans, checking every handler and behavior on the way."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from dishka import DEFAULT_COMPONENT, AsyncContainer, Container, Provider, Scope
from dishka.exception_base import DishkaError

from dockyard._type_name import type_name
from dockyard.exceptions import (
    AmbiguousHandlerError,
    DuplicateHandlerError,
    GenericMessageTypeError,
    InvalidBehaviorError,
    InvalidProviderError,
    MissingMessageTypeError,
    MissingProviderError,
    ModuleProblem,
)
from dockyard.messaging._behavior import PipelineBehavior
from dockyard.messaging._bus import Dispatcher
from dockyard.messaging._envelope import MessageContext
from dockyard.messaging._introspect import (
    HandlerKind,
    generic_args,
    handler_kind,
    message_class,
    parameter_fields,
    parametrized,
)
from dockyard.messaging._out_of_band import handler_name, runs_out_of_band
from dockyard.messaging._plan import (
    BehaviorRef,
    ChainPlan,
    EventPlan,
    HandlerRef,
    RequestPlan,
    StreamPlan,
)
from dockyard.messaging._registry import HandlerInfo, MessageInfo, MessageRegistry
from dockyard.messaging._settings import EventDelivery, MessagingSettings
from dockyard.messaging._tracking import ContextReach
from dockyard.modules._graph import ModuleGraph

__all__ = ["CompiledMessaging", "compile_messaging"]

_CONTAINER_TYPES = (AsyncContainer, Container)


@dataclass(frozen=True, slots=True)
class CompiledMessaging:
    dispatcher: Dispatcher
    registry: MessageRegistry
    providers: tuple[Provider, ...]
    """Extra Dishka providers: behavior classes, built per scope in the default component."""
    context: MessageContext


def compile_messaging(
    graph: ModuleGraph,
    settings: MessagingSettings,
    *,
    root_visible: Mapping[Any, object] | None,
    providers: Sequence[Provider],
) -> tuple[CompiledMessaging, list[ModuleProblem]]:
    """Read every handler's message type, check duplicates and behaviors, compile the plans.

    Args:
        graph: The app's modules (components already assigned by ``compile_modules``).
        settings: Behaviors, event delivery and context tracking.
        root_visible: What the root module sees, to check behavior dependencies; ``None`` when
            the modules themselves failed to compile (those checks wait for a clean build).
        providers: The modules' Dishka providers, walked to decide which message types
            need context tracking (``_tracking``).
    """
    problems: list[ModuleProblem] = []
    behaviors = _Behaviors(graph.root.name, root_visible, problems)
    refs, detached = _collect_handlers(graph, problems)
    for ref in (*refs, *detached):
        ref.behaviors = behaviors.refs(
            settings.handler_behaviors.get(ref.handler, ()), f"handler_behaviors[{ref.name}]"
        )
    global_ = behaviors.refs(settings.behaviors, "MessagingSettings.behaviors")
    per_message = {
        tp: behaviors.refs(entries, f"message_behaviors[{type_name(tp)}]")
        for tp, entries in settings.message_behaviors.items()
    }

    def around(message_type: type) -> tuple[BehaviorRef, ...]:
        chosen = [b for b in global_ if issubclass(message_type, b.applies_to)]
        for cls in reversed(message_type.__mro__):  # bases outermost
            chosen.extend(per_message.get(cls, ()))
        return tuple(chosen)

    by_type: dict[HandlerKind, dict[type, list[HandlerRef]]] = {k: {} for k in HandlerKind}
    for ref in refs:
        by_type[ref.kind].setdefault(ref.message_type, []).append(ref)

    forced = settings.track_context
    reach = ContextReach([*providers, behaviors.provider])

    def tracked(handlers: Iterable[HandlerRef], *pipelines: Iterable[BehaviorRef]) -> bool:
        if forced is not None:
            return forced
        return reach.path_reaches(handlers, (b for pipeline in pipelines for b in pipeline))

    requests: dict[type, RequestPlan | ChainPlan] = {}
    streams: dict[type, StreamPlan] = {}
    answered: dict[type, list[HandlerRef]] = {}
    for kind in (HandlerKind.REQUEST, HandlerKind.STREAM, HandlerKind.CHAIN):
        for tp, found in by_type[kind].items():
            answered.setdefault(tp, []).extend(found)
    for tp, found in answered.items():
        kinds = {ref.kind for ref in found}
        if len(kinds) > 1 or (HandlerKind.CHAIN not in kinds and len(found) > 1):
            problems.append(DuplicateHandlerError(tp, [(r.name, r.module) for r in found]))
            continue
        first = found[0]
        if first.kind is HandlerKind.CHAIN:
            outer = around(tp)
            links = tuple(found)
            on = tracked(links, outer, *(link.behaviors for link in links))
            requests[tp] = ChainPlan(tp, links, outer, tracked=on)
        elif first.kind is HandlerKind.STREAM:
            pipeline = around(tp) + first.behaviors
            streams[tp] = StreamPlan(tp, first, pipeline, tracked=tracked([first], pipeline))
        else:
            pipeline = around(tp) + first.behaviors
            requests[tp] = RequestPlan(tp, first, pipeline, tracked=tracked([first], pipeline))

    inherited = _plan_subclasses(requests, streams, set(answered), around, tracked, problems)

    event_handlers = by_type[HandlerKind.EVENT]

    def event_plan(
        event_type: type, actual: Mapping[str, type] | None = None, *, every: bool = False
    ) -> EventPlan:
        """The plan for ``event_type``; handlers of a parametrized type (``Notice[UserLeft]``)
        only if the event's ``actual`` parameter field types match (all of them, ``every``,
        for the registry)."""
        handlers = tuple(
            ref
            for cls in event_type.__mro__
            for ref in event_handlers.get(cls, ())
            if every or ref.message_args is None or (actual is not None and ref.takes(actual))
        )
        outer = around(event_type)
        pipelines = tuple(outer + ref.behaviors for ref in handlers)
        return EventPlan(
            event_type,
            handlers,
            pipelines,
            _delivery(settings, event_type),
            tracked=bool(handlers) and tracked(handlers, *pipelines),
        )

    events = {tp: event_plan(tp) for tp in event_handlers}
    # Each handler run out of band has a plan of its own, for the consumer that receives
    # it; always tracked: the consumer's envelope carries the message's ids.
    out_of_band = {
        handler_name(ref.handler): EventPlan(
            ref.message_type,
            (ref,),
            (around(ref.message_type) + ref.behaviors,),
            EventDelivery(),
            tracked=True,
        )
        for ref in detached
    }
    tracking = reach.read_anywhere if forced is None else forced
    dispatcher = Dispatcher(
        requests=requests,
        streams=streams,
        events=events,
        event_plan_factory=event_plan,
        inherited_plan_factory=inherited,
        parameter_fields=_parameter_fields(event_handlers),
        tracking=tracking,
        out_of_band=out_of_band,
    )
    every = {tp: event_plan(tp, every=True) for tp in event_handlers}
    registry = _registry(requests, streams, every, by_type)
    compiled = CompiledMessaging(
        dispatcher=dispatcher,
        registry=registry,
        providers=(behaviors.provider,),
        context=MessageContext(tracking=tracking),
    )
    return compiled, problems


def _inherited(
    requests: Mapping[type, RequestPlan | ChainPlan],
    streams: Mapping[type, StreamPlan],
    answered: frozenset[type],
    around: Callable[[type], tuple[BehaviorRef, ...]],
    tracked: Callable[..., bool],
    message_type: type,
) -> RequestPlan | ChainPlan | StreamPlan | None:
    """The plan for a request class with no handler of its own: the handler of its most
    specific handled base, with the behaviors chosen for ``message_type``; ``None`` if no
    base has one.

    Raises:
        AmbiguousHandlerError: Two handled bases, neither a subclass of the other (multiple
            inheritance): no base is the most specific, and the MRO's order is not a choice
            the user made.
    """
    handled = [cls for cls in message_type.__mro__[1:] if cls in answered]
    if not handled:
        return None
    nearest = [c for c in handled if not any(o is not c and issubclass(o, c) for o in handled)]
    if len(nearest) > 1:
        candidates = [(cls, _handled_by(requests.get(cls) or streams[cls])) for cls in nearest]
        raise AmbiguousHandlerError(message_type, candidates)
    base = requests.get(nearest[0]) or streams[nearest[0]]
    outer = around(message_type)
    if isinstance(base, ChainPlan):
        on = tracked(base.links, outer, *(link.behaviors for link in base.links))
        return ChainPlan(message_type, base.links, outer, tracked=on)
    pipeline = outer + base.handler.behaviors
    on = tracked([base.handler], pipeline)
    if isinstance(base, StreamPlan):
        return StreamPlan(message_type, base.handler, pipeline, tracked=on)
    return RequestPlan(message_type, base.handler, pipeline, tracked=on)


def _handled_by(plan: RequestPlan | ChainPlan | StreamPlan) -> str:
    refs = plan.links if isinstance(plan, ChainPlan) else (plan.handler,)
    return " → ".join(f"`{ref.name}` (module `{ref.module}`)" for ref in refs)


def _plan_subclasses(
    requests: dict[type, RequestPlan | ChainPlan],
    streams: dict[type, StreamPlan],
    answered: set[type],
    around: Callable[[type], tuple[BehaviorRef, ...]],
    tracked: Callable[..., bool],
    problems: list[ModuleProblem],
) -> Callable[[type], RequestPlan | ChainPlan | StreamPlan | None]:
    """Give the subclasses of handled requests known now their plan now: a send looks up
    its class in one dict, as for a type with its own handler. A subclass whose handled
    bases tie is a problem of the build (``AmbiguousHandlerError``). Returns the factory for
    subclasses defined later (``_inherited``: it raises that error on their first send)."""
    planned = frozenset((*requests, *streams))  # types with a handler of their own
    inherited = partial(_inherited, requests, streams, planned, around, tracked)
    subclasses = {sub for tp in (*requests, *streams) for sub in _subclasses(tp)}
    for sub in sorted(subclasses - answered, key=type_name):
        try:
            plan = inherited(sub)
        except AmbiguousHandlerError as problem:
            problems.append(problem)
            continue
        if isinstance(plan, StreamPlan):
            streams[sub] = plan
        elif plan is not None:
            requests[sub] = plan
    return inherited


def _subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    stack = [cls]
    while stack:
        subs: list[type] = stack.pop().__subclasses__()
        for sub in subs:
            if sub not in found:
                found.add(sub)
                stack.append(sub)
    return found


def _collect_handlers(
    graph: ModuleGraph, problems: list[ModuleProblem]
) -> tuple[list[HandlerRef], list[HandlerRef]]:
    """The handlers of every module, and apart, those run out of band (``_out_of_band``)."""
    refs: list[HandlerRef] = []
    detached: list[HandlerRef] = []
    for node in graph.nodes:
        declared: tuple[object, ...] = node.handlers  # anything may be listed at run time
        runs = [(h, True) for h in map(runs_out_of_band, declared) if h is not None]
        for handler, out_of_band in [*((h, False) for h in declared), *runs]:
            found = handler_kind(handler) if isinstance(handler, type) else None
            if found is None:
                problems.append(MissingMessageTypeError(node.name, handler, None))
                continue
            assert isinstance(handler, type)
            kind, base = found
            args = generic_args(handler, base)
            message_type = message_class(args[0]) if args else None
            if message_type is None:
                problems.append(MissingMessageTypeError(node.name, handler, base.__name__))
                continue
            ref = HandlerRef(handler, node.name, node.component, kind, message_type)
            message = args[0] if args else None
            generic = parametrized(message) if kind is HandlerKind.EVENT else None
            if generic is not None:
                problem = _parametrized(ref, message, *generic)
                if problem is not None:
                    problems.append(problem)
                    continue
            if out_of_band:
                detached.append(ref)
            else:
                refs.append(ref)
    return refs, detached


def _parametrized(
    ref: HandlerRef, message: Any, origin: type, args: tuple[Any, ...]
) -> GenericMessageTypeError | None:
    """Give ``ref`` the classes its ``Notice[...]`` names; a problem if they can't be checked.

    The dispatch tells ``Notice[UserLeft]`` from ``Notice[UserJoined]`` by the types of the
    fields typed with the parameters (``Dispatcher.event_plan_of``), so each parameter needs
    such a field and each argument must be a class (``Any`` or a type variable takes any).
    """
    fields = parameter_fields(origin)
    missing = [
        getattr(p, "__name__", str(p))
        for p, f in zip(getattr(origin, "__parameters__", ()), fields, strict=True)
        if f is None
    ]
    if missing:
        names = ", ".join(f"`{name}`" for name in missing)
        reason = f"no field of `{type_name(origin)}` is typed with {names}"
        return GenericMessageTypeError(ref.module, ref.handler, message, reason)
    wanted: list[type] = []
    for arg in args:
        if arg is Any or isinstance(arg, TypeVar):
            wanted.append(object)
        elif isinstance(arg, type):
            wanted.append(arg)
        else:
            reason = f"`{arg}` is not a class an event's field can be checked against"
            return GenericMessageTypeError(ref.module, ref.handler, message, reason)
    ref.message_args = tuple(wanted)
    ref.message_fields = tuple(f for f in fields if f is not None)
    return None


def _parameter_fields(
    event_handlers: Mapping[type, list[HandlerRef]],
) -> Callable[[type], tuple[str, ...]] | None:
    """For the dispatcher: the fields whose types choose among an event class's handlers of
    parametrized types; ``None`` when no handler names one (dispatch by class only)."""
    if all(ref.message_args is None for found in event_handlers.values() for ref in found):
        return None

    def fields(event_type: type) -> tuple[str, ...]:
        return tuple(
            dict.fromkeys(
                field
                for cls in event_type.__mro__
                for ref in event_handlers.get(cls, ())
                for field in ref.message_fields
            )
        )

    return fields


def _delivery(settings: MessagingSettings, event_type: type) -> EventDelivery:
    for cls in event_type.__mro__:
        delivery = settings.event_delivery_for.get(cls)
        if delivery is not None:
            return delivery
    return settings.event_delivery


class _Behaviors:
    """Turns behavior entries into refs; provides each behavior class once, per scope."""

    def __init__(
        self,
        root: str,
        root_visible: Mapping[Any, object] | None,
        problems: list[ModuleProblem],
    ) -> None:
        self.root = root
        self.root_visible = root_visible
        self.problems = problems
        self.provider = Provider(component=DEFAULT_COMPONENT)
        self._by_class: dict[type, BehaviorRef] = {}
        self._by_instance: dict[int, BehaviorRef] = {}

    def refs(self, entries: Iterable[Any], where: str) -> tuple[BehaviorRef, ...]:
        refs = []
        for entry in entries:
            ref = self._ref(entry, where)
            if ref is not None:
                refs.append(ref)
        return tuple(refs)

    def _ref(self, entry: Any, where: str) -> BehaviorRef | None:
        if isinstance(entry, type) and issubclass(entry, PipelineBehavior):
            ref = self._by_class.get(entry)
            if ref is None:
                ref = self._by_class[entry] = BehaviorRef(
                    None, entry, type_name(entry), _applies_to(entry)
                )
                self._provide(entry)
            return ref
        if isinstance(entry, PipelineBehavior):
            ref = self._by_instance.get(id(entry))
            if ref is None:
                cls = type(entry)
                ref = self._by_instance[id(entry)] = BehaviorRef(
                    entry, None, type_name(cls), _applies_to(cls)
                )
            return ref
        self.problems.append(InvalidBehaviorError(entry, where))
        return None

    def _provide(self, cls: type) -> None:
        if self.root_visible is not None and cls in self.root_visible:
            return  # the app provides it itself; use that provider
        try:
            composite = self.provider.provide(cls, scope=Scope.REQUEST)
        except (DishkaError, NameError, TypeError, ValueError) as exc:
            self.problems.append(InvalidProviderError(None, cls, f"as a behavior: {exc}"))
            return
        if self.root_visible is None:
            return
        for source in composite.dependency_sources:
            keys = (*source.dependencies, *source.kw_dependencies.values())  # type: ignore[union-attr]
            for key in keys:
                dep = key.type_hint
                if dep in _CONTAINER_TYPES or dep in self.root_visible:
                    continue
                required_by = f"behavior `{type_name(cls)}`"
                self.problems.append(MissingProviderError(self.root, dep, required_by))


def _applies_to(cls: type) -> type:
    args = generic_args(cls, PipelineBehavior)
    found = message_class(args[0]) if args else None
    return found if found is not None else object


def _registry(
    requests: Mapping[type, RequestPlan | ChainPlan],
    streams: Mapping[type, StreamPlan],
    events: Mapping[type, EventPlan],
    by_type: Mapping[HandlerKind, Mapping[type, list[HandlerRef]]],
) -> MessageRegistry:
    messages: list[MessageInfo] = []
    for tp, plan in requests.items():
        if isinstance(plan, ChainPlan):
            outer = tuple(b.name for b in plan.pipeline)
            infos = tuple(
                HandlerInfo(r.handler, r.module, outer + tuple(b.name for b in r.behaviors))
                for r in plan.links
            )
            messages.append(MessageInfo(tp, "chain", infos, tracked=plan.tracked))
        else:
            info = HandlerInfo(
                plan.handler.handler, plan.handler.module, tuple(b.name for b in plan.pipeline)
            )
            messages.append(MessageInfo(tp, "request", (info,), tracked=plan.tracked))
    for tp, stream in streams.items():
        info = HandlerInfo(
            stream.handler.handler, stream.handler.module, tuple(b.name for b in stream.pipeline)
        )
        messages.append(MessageInfo(tp, "stream", (info,), tracked=stream.tracked))
    for tp, own in by_type[HandlerKind.EVENT].items():
        plan_ = events[tp]
        pipelines = dict(zip(plan_.handlers, plan_.pipelines, strict=True))
        infos = tuple(
            HandlerInfo(r.handler, r.module, tuple(b.name for b in pipelines[r])) for r in own
        )
        messages.append(MessageInfo(tp, "event", infos, tracked=plan_.tracked))
    return MessageRegistry(tuple(messages))
