"""From a module graph to one Dishka container, checking every boundary on the way.

Every constructor and factory dependency is checked against the module rules before Dishka
sees anything. At run time the boundary holds through Dishka components:

- The default component is the app's facade. It holds context values and aliases for what
  the root module sees, and nothing else: ``scope.get(T)`` cannot reach a module's internals.
- Modules share one internal component (``SHARED_COMPONENT``) while every type in it has a
  single provider. A module that provides, or depends on, a type that several modules provide
  (two modules each with a private ``Settings``, say) gets a component of its own, joined to
  the rest by uncached aliases for the dependencies this builder validated.

One component per module would also isolate dynamic resolution inside a module, but Dishka
adds container aliases per component and scope, which made building many modules several
times slower than plain Dishka; sharing keeps the build near Dishka's own cost (figures:
docs/modules.md, "Why this design"; bench/modules.py measures it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dishka import DEFAULT_COMPONENT, AsyncContainer, Container, Provider, Scope
from dishka.dependency_source import Factory
from dishka.exception_base import DishkaError

from dockyard._type_name import type_name
from dockyard.di._spec import Lifetime, ProviderKind, ProviderSpec
from dockyard.exceptions import (
    DuplicateProviderError,
    InvalidExportError,
    InvalidProviderError,
    MissingProviderError,
    ModuleProblem,
    NotExportedError,
    ScopeMismatchError,
    UnknownExtensionError,
)
from dockyard.messaging._out_of_band import runs_out_of_band
from dockyard.modules._extensions import HOOKS, ChecksGraph
from dockyard.modules._graph import ModuleGraph, ModuleNode
from dockyard.modules._module import DynamicModule, get_metadata

__all__ = ["CompiledModules", "compile_modules"]

_SCOPES = {Lifetime.SINGLETON: Scope.APP, Lifetime.SCOPED: Scope.REQUEST}
_CONTAINER_TYPES = (AsyncContainer, Container)


@dataclass(slots=True)
class _Requirement:
    dependency: Any
    required_by: str
    provided: Any
    lifetime: Lifetime


@dataclass(slots=True)
class _ModuleState:
    node: ModuleNode
    provider: Provider
    requirements: list[_Requirement] = field(default_factory=list)
    many_collected: set[Any] = field(default_factory=set)
    keys: set[Any] = field(default_factory=set)
    """Every type this module registers with Dishka (``many()`` items included)."""
    exported_origin: dict[Any, ModuleNode] = field(default_factory=dict)
    """Exported type → the module that really provides it (re-exports followed)."""


@dataclass(frozen=True, slots=True)
class CompiledModules:
    """Dishka providers ready for ``make_async_container``, and what the root module sees."""

    providers: tuple[Provider, ...]
    root_visible: dict[Any, ModuleNode]
    app_context_types: frozenset[Any]
    context_types: frozenset[Any]
    """Every type a ``contextual(T)`` provider declares, whatever its lifetime."""
    exported_origin: dict[ModuleNode, dict[Any, ModuleNode]]


SHARED_COMPONENT = "dockyard.modules"


def component_of(target: type) -> str:
    return f"{target.__module__}.{target.__qualname__}"


def compile_modules(
    graph: ModuleGraph,
    overrides: Sequence[ProviderSpec] = (),
) -> tuple[CompiledModules | None, list[ModuleProblem]]:
    """Turn the graph into Dishka providers; collect every boundary problem on the way."""
    problems: list[ModuleProblem] = []
    facade = Provider(component=DEFAULT_COMPONENT)
    context_types: dict[Any, Lifetime] = {}
    states: dict[ModuleNode, _ModuleState] = {}
    override_for = {spec.provides: spec for spec in overrides}
    unused_overrides = dict(override_for)

    for node in graph.all_nodes:
        node.component = SHARED_COMPONENT
        node.provided = {}  # compiling again (test overrides) starts from the declarations
        state = _ModuleState(node, Provider(component=SHARED_COMPONENT))
        states[node] = state
        specs = [spec for spec in node.metadata.providers if spec.is_active()]
        # A handler run out of band is provided by the module that lists its stand-in.
        handlers = dict.fromkeys(
            [*node.handlers, *filter(None, map(runs_out_of_band, node.handlers))]
        )
        specs += [ProviderSpec(ProviderKind.FACTORY, h, h, Lifetime.SCOPED) for h in handlers]
        for spec in specs:
            if spec.provides in override_for:
                spec = override_for[spec.provides]  # noqa: PLW2901 - swap in the test double
                unused_overrides.pop(spec.provides, None)
            _add_spec(state, spec, context_types, facade, problems)
        node.providers = tuple(specs)
        _check_extensions(node, problems)
    _check_graph(graph, problems)

    # Overrides for types no module provides land in the root module (e.g. test-only ports).
    root_state = states[graph.root]
    for spec in unused_overrides.values():
        _add_spec(root_state, spec, context_types, facade, problems)

    providers_anywhere: dict[Any, list[ModuleNode]] = {}
    for node in graph.all_nodes:
        for provided in node.provided:
            providers_anywhere.setdefault(provided, []).append(node)

    for node in graph.all_nodes:  # init order: imports are exported before importers look at them
        _resolve_exports(states[node], states, problems)

    _isolate_ambiguous(states)

    globals_ = [node for node in graph.all_nodes if node.is_global]
    root_visible: dict[Any, ModuleNode] = {}
    for node in graph.all_nodes:
        state = states[node]
        visible = _visible(state, states, globals_, problems)
        _check_requirements(state, visible, providers_anywhere, states, problems)
        if node is graph.root:
            root_visible = visible

    for provided, origin in root_visible.items():
        if provided not in context_types:
            facade.alias(provided, provides=provided, component=origin.component, cache=False)
    _refuse_hidden(facade, graph.root, root_visible, providers_anywhere, states, context_types)

    compiled = CompiledModules(
        providers=(*(s.provider for s in states.values()), facade),
        root_visible=root_visible,
        app_context_types=frozenset(
            t for t, lt in context_types.items() if lt is Lifetime.SINGLETON
        ),
        context_types=frozenset(context_types),
        exported_origin={node: s.exported_origin for node, s in states.items()},
    )
    return (None if problems else compiled), problems


def _refuse_hidden(
    facade: Provider,
    root: ModuleNode,
    root_visible: dict[Any, ModuleNode],
    providers_anywhere: dict[Any, list[ModuleNode]],
    states: dict[ModuleNode, _ModuleState],
    context_types: dict[Any, Lifetime],
) -> None:
    """``scope.get(T)`` of a type some module keeps to itself raises ``NotExportedError``
    (naming the module and the export to add), not Dishka's bare ``NoFactoryError``.

    Each such type gets a factory in the facade that raises: nothing costs more on the paths
    that resolve visible types, and nothing that resolved before changes.
    """
    for provided, origins in providers_anywhere.items():
        if provided in root_visible or provided in context_types:
            continue
        owner = origins[0]
        error = NotExportedError(
            root.name,
            provided,
            "`scope.get(...)` on the app",
            owner.name,
            imported=owner in root.imports,
            exported=provided in states[owner].exported_origin,
        )
        facade.provide(_raising(error), provides=provided, scope=Scope.APP, cache=False)


def _raising(error: NotExportedError) -> Any:
    """A factory without parameters (Dishka reads them as dependencies) that raises ``error``."""

    def refuse() -> Any:
        raise error.with_traceback(None)

    return refuse


def _isolate_ambiguous(states: dict[ModuleNode, _ModuleState]) -> None:
    """Give a component of its own to each module touching a type that several provide."""
    owners: dict[Any, int] = {}
    for state in states.values():
        for key in state.keys:
            owners[key] = owners.get(key, 0) + 1
    ambiguous = {key for key, count in owners.items() if count > 1}
    if not ambiguous:
        return
    for state in states.values():
        needs = {req.dependency for req in state.requirements}
        if state.keys & ambiguous or needs & ambiguous:
            state.node.component = component_of(state.node.target)
            state.provider.component = state.node.component


def _add_spec(
    state: _ModuleState,
    spec: ProviderSpec,
    context_types: dict[Any, Lifetime],
    facade: Provider,
    problems: list[ModuleProblem],
) -> None:
    node, provider = state.node, state.provider
    try:
        if spec.kind is ProviderKind.FACTORY:
            factories = _provide(provider, spec.source, spec.provides, spec.lifetime)
            for factory in factories:
                _record(state, factory.provides.type_hint, spec, problems)
                _require(state, factory, spec)
        elif spec.kind is ProviderKind.OBJECT:
            instance = spec.source

            def make_object() -> Any:
                return instance

            provider.provide(make_object, provides=spec.provides, scope=Scope.APP)
            _record(state, spec.provides, spec, problems)
        elif spec.kind is ProviderKind.CONTEXT:
            if spec.provides not in context_types:
                context_types[spec.provides] = spec.lifetime
                facade.from_context(provides=spec.provides, scope=_SCOPES[spec.lifetime])
            provider.alias(
                spec.provides, provides=spec.provides, component=DEFAULT_COMPONENT, cache=False
            )
            _record(state, spec.provides, spec, problems)
        else:
            _add_many(state, spec, problems)
    except (DishkaError, NameError, TypeError, ValueError) as exc:
        problems.append(InvalidProviderError(node.name, spec.source, _explain(exc)))
        if spec.provides is not None:  # keep it declared: one broken factory, one problem
            node.provided.setdefault(spec.provides, spec)


def _add_many(state: _ModuleState, spec: ProviderSpec, problems: list[ModuleProblem]) -> None:
    collection = Sequence[spec.provides]  # type: ignore[name-defined]
    for item in spec.items:
        for factory in _provide(state.provider, item, spec.provides, spec.lifetime):
            _require(state, factory, spec)
    state.keys.add(spec.provides)
    if spec.provides not in state.many_collected:
        state.many_collected.add(spec.provides)
        state.provider.collect(
            spec.provides, provides=collection, scope=_SCOPES[_scope_lifetime(spec.lifetime)]
        )
        _record(state, collection, spec, problems)


def _scope_lifetime(lifetime: Lifetime) -> Lifetime:
    return Lifetime.SCOPED if lifetime is Lifetime.TRANSIENT else lifetime


def _provide(provider: Provider, source: Any, provides: Any, lifetime: Lifetime) -> list[Factory]:
    composite = provider.provide(
        source,
        provides=provides,
        scope=_SCOPES[_scope_lifetime(lifetime)],
        cache=lifetime is not Lifetime.TRANSIENT,
    )
    return [s for s in composite.dependency_sources if isinstance(s, Factory)]


def _explain(exc: BaseException) -> str:
    if isinstance(exc, NameError):
        return (
            f"its type hints name something that is not importable at run time ({exc}). "
            "Dependency injection reads annotations when the app is built: import that type "
            "normally, not under `if TYPE_CHECKING:`."
        )
    return f"Dishka could not read it as a factory: {exc}"


def _record(
    state: _ModuleState, provided: Any, spec: ProviderSpec, problems: list[ModuleProblem]
) -> None:
    node = state.node
    state.keys.add(provided)
    if provided in node.provided:
        problems.append(DuplicateProviderError(node.name, provided, [node.name, node.name]))
        return
    node.provided[provided] = spec


def _require(state: _ModuleState, factory: Factory, spec: ProviderSpec) -> None:
    provided = factory.provides.type_hint
    by = f"`{type_name(provided)}`"
    named = [(by, key) for key in factory.dependencies]
    named += [(f"{by}, parameter `{n}`", key) for n, key in factory.kw_dependencies.items()]
    for required_by, key in named:
        if key.component is not None and key.component != DEFAULT_COMPONENT:
            continue  # an explicit FromComponent: the user opted out of module boundaries
        if key.type_hint in _CONTAINER_TYPES:
            continue
        state.requirements.append(_Requirement(key.type_hint, required_by, provided, spec.lifetime))


def _check_graph(graph: ModuleGraph, problems: list[ModuleProblem]) -> None:
    """What ``ChecksGraph`` extensions find once every module's providers are known."""
    for node in graph.all_nodes:
        for extension in node.extensions:
            if isinstance(extension, ChecksGraph):
                problems.extend(extension.problems(graph))


def _check_extensions(node: ModuleNode, problems: list[ModuleProblem]) -> None:
    hooks = [h.__name__ for h in HOOKS]
    problems.extend(
        UnknownExtensionError(node.name, extension, hooks)
        for extension in node.extensions
        if not isinstance(extension, HOOKS)
    )


def _resolve_exports(
    state: _ModuleState,
    states: dict[ModuleNode, _ModuleState],
    problems: list[ModuleProblem],
) -> None:
    node = state.node
    imported_exports: dict[Any, ModuleNode] = {}
    for imported in node.imports:
        imported_exports.update(states[imported].exported_origin)
    by_target = {imported.target: imported for imported in node.imports}
    for export in node.metadata.exports:
        target = export.module if isinstance(export, DynamicModule) else export
        if get_metadata(target) is not None:
            reexported = by_target.get(target)
            if reexported is None:
                problems.append(InvalidExportError(node.name, target))
            else:
                state.exported_origin.update(states[reexported].exported_origin)
        elif export in node.provided:
            state.exported_origin[export] = node
        elif export in imported_exports:
            state.exported_origin[export] = imported_exports[export]
        else:
            problems.append(InvalidExportError(node.name, export))
    node.exported = frozenset(state.exported_origin)


def _visible(
    state: _ModuleState,
    states: dict[ModuleNode, _ModuleState],
    globals_: Iterable[ModuleNode],
    problems: list[ModuleProblem],
) -> dict[Any, ModuleNode]:
    node = state.node
    visible: dict[Any, ModuleNode] = dict.fromkeys(node.provided, node)
    sources = [*node.imports, *(g for g in globals_ if g is not node and g not in node.imports)]
    reported: set[Any] = set()
    for source in sources:
        for exported, origin in states[source].exported_origin.items():
            seen = visible.get(exported)
            if seen is None:
                visible[exported] = origin
            elif seen is not origin and exported not in reported:
                reported.add(exported)
                problems.append(
                    DuplicateProviderError(node.name, exported, [seen.name, origin.name])
                )
    return visible


def _check_requirements(
    state: _ModuleState,
    visible: dict[Any, ModuleNode],
    providers_anywhere: dict[Any, list[ModuleNode]],
    states: dict[ModuleNode, _ModuleState],
    problems: list[ModuleProblem],
) -> None:
    node = state.node
    aliased: set[Any] = set()
    for req in state.requirements:
        origin = visible.get(req.dependency)
        if origin is None:
            candidates = providers_anywhere.get(req.dependency)
            if not candidates:
                problems.append(MissingProviderError(node.name, req.dependency, req.required_by))
                continue
            owner = candidates[0]
            problems.append(
                NotExportedError(
                    node.name,
                    req.dependency,
                    req.required_by,
                    owner.name,
                    imported=owner in node.imports,
                    exported=req.dependency in states[owner].exported_origin,
                )
            )
            continue
        dep_spec = origin.provided[req.dependency]
        if req.lifetime.rank < dep_spec.lifetime.rank:
            problems.append(
                ScopeMismatchError(
                    node.name,
                    req.provided,
                    req.lifetime.value,
                    req.dependency,
                    origin.name,
                    dep_spec.lifetime.value,
                )
            )
        if origin.component != node.component and req.dependency not in aliased:
            aliased.add(req.dependency)
            state.provider.alias(
                req.dependency, provides=req.dependency, component=origin.component, cache=False
            )
