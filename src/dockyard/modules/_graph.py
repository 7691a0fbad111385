"""The module graph: discovery from the root, dynamic registrations, cycles, init order."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dockyard._type_name import type_name
from dockyard.di._spec import ProviderSpec
from dockyard.exceptions import (
    ConflictingDynamicModuleError,
    ImportCycleError,
    ModuleProblem,
    NotAModuleError,
)
from dockyard.modules._extensions import OffersDefaults
from dockyard.modules._module import (
    Defaults,
    DynamicModule,
    ModuleLike,
    ModuleMetadata,
    get_metadata,
)

__all__ = ["ModuleGraph", "ModuleNode", "build_graph", "builtin_node"]


@dataclass(eq=False, slots=True)
class ModuleNode:
    """One module of a built app, as data (for tools such as a CLI that draws the graph)."""

    target: type
    metadata: ModuleMetadata
    imports: tuple[ModuleNode, ...] = ()
    providers: tuple[ProviderSpec, ...] = ()
    """The providers that are active (their ``when=`` held at build time)."""
    provided: dict[Any, ProviderSpec] = field(default_factory=dict)
    """Type → the spec that provides it inside this module."""
    exported: frozenset[Any] = frozenset()
    """Every type importers see, re-exports included."""
    component: str = ""
    """The Dishka component holding this module's factories."""

    @property
    def name(self) -> str:
        return type_name(self.target)

    @property
    def is_global(self) -> bool:
        return self.metadata.is_global

    @property
    def handlers(self) -> tuple[type, ...]:
        return self.metadata.handlers

    @property
    def extensions(self) -> tuple[object, ...]:
        return self.metadata.extensions

    def __repr__(self) -> str:
        return f"<ModuleNode {self.name}>"


@dataclass(frozen=True, slots=True)
class ModuleGraph:
    """Every module reachable from the root, in init order (imports before importers)."""

    root: ModuleNode
    nodes: tuple[ModuleNode, ...]
    builtins: tuple[ModuleNode, ...] = ()
    """Global modules the framework adds to every app (e.g. messaging). They are compiled with
    the others but are not listed in ``nodes``, which holds the user's modules only."""

    @property
    def all_nodes(self) -> tuple[ModuleNode, ...]:
        """Built-in modules first, then ``nodes``: what the container is compiled from."""
        return self.builtins + self.nodes

    def __iter__(self) -> Iterator[ModuleNode]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def get(self, target: type) -> ModuleNode:
        for node in self.nodes:
            if node.target is target:
                return node
        raise KeyError(target)


def builtin_node(target: type) -> ModuleNode:
    """A node for a framework module that imports nothing (see ``ModuleGraph.builtins``)."""
    metadata = get_metadata(target)
    if metadata is None or metadata.imports:
        msg = f"{target!r} must be a @module that imports nothing"
        raise TypeError(msg)
    return ModuleNode(target=target, metadata=metadata)


def _target(ref: object) -> object:
    return ref.module if isinstance(ref, DynamicModule) else ref


def _walk(  # noqa: PLR0912 - one pass over every reference, kept in one place
    root: ModuleLike, problems: list[ModuleProblem]
) -> tuple[dict[type, DynamicModule], dict[type, ModuleMetadata], dict[type, list[type]]]:
    """Pass 1: every module reachable from ``root``, its registration and its imports."""
    registrations: dict[type, DynamicModule] = {}
    base: dict[type, ModuleMetadata] = {}
    edges: dict[type, list[type]] = {}
    seen_refs: set[int] = set()

    # Pass 1: walk every reference (plain class or dynamic module) once; registrations that
    # depend on the rest of the app (`resolve`) wait until everything else is known.
    stack: list[tuple[object, str | None]] = [(root, None)]
    waiting: list[tuple[DynamicModule, str | None]] = []
    while stack or waiting:
        if not stack:
            defaults = _defaults(base, registrations)
            for waiting_ref, referrer in waiting:
                try:
                    stack.append((_resolved(waiting_ref, defaults), referrer))
                except ModuleProblem as problem:
                    problems.append(problem)
            waiting.clear()
            continue
        ref, referrer = stack.pop()
        if id(ref) in seen_refs:
            continue
        if isinstance(ref, DynamicModule) and ref.resolve is not None:
            seen_refs.add(id(ref))
            waiting.append((ref, referrer))
            continue
        target = _target(ref)
        metadata = get_metadata(target)
        if metadata is None:
            problems.append(NotAModuleError(target, referrer))
            seen_refs.add(id(ref))
            continue
        assert isinstance(target, type)
        seen_refs.add(id(ref))
        imports: tuple[ModuleLike, ...] = ()
        if target not in base:
            base[target] = metadata
            edges[target] = []
            imports += metadata.imports
        if isinstance(ref, DynamicModule):
            previous = registrations.get(target)
            if previous is None:
                registrations[target] = ref
                imports += ref.imports
            elif not previous.same_registration(ref):
                problems.append(ConflictingDynamicModuleError(type_name(target)))
        for imported in imports:
            imported_target = _target(imported)
            if isinstance(imported_target, type) and get_metadata(imported_target) is not None:
                edges[target].append(imported_target)
            stack.append((imported, type_name(target)))
    return registrations, base, edges


def build_graph(root: ModuleLike) -> tuple[ModuleGraph | None, list[ModuleProblem]]:
    """Discover every module from ``root``; report missing decorators, conflicts and cycles."""
    problems: list[ModuleProblem] = []
    registrations, base, edges = _walk(root, problems)

    root_target = _target(root)
    if root_target not in base:
        return None, problems
    assert isinstance(root_target, type)

    order, cycles = _order(root_target, edges)
    problems.extend(ImportCycleError(cycle) for cycle in cycles)

    nodes: dict[type, ModuleNode] = {}
    for target in order:
        if target not in base:  # a registration that could not resolve (its problem is listed)
            continue
        metadata = base[target]
        if target in registrations:
            metadata = metadata.merged(registrations[target])
        nodes[target] = ModuleNode(target=target, metadata=metadata)
    for target, node in nodes.items():
        node.imports = tuple(dict.fromkeys(nodes[t] for t in edges[target] if t in nodes))
    graph = ModuleGraph(root=nodes[root_target], nodes=tuple(nodes[t] for t in order if t in nodes))
    return graph, problems


def _defaults(
    base: dict[type, ModuleMetadata], registrations: dict[type, DynamicModule]
) -> Defaults:
    """What the modules found so far offer (``OffersDefaults``), first offer first."""
    offers = [
        extension
        for target, metadata in base.items()
        for extension in (
            *metadata.extensions,
            *(registrations[target].extensions if target in registrations else ()),
        )
        if isinstance(extension, OffersDefaults)
    ]

    def defaults(kind: type) -> object | None:
        for offer in offers:
            found = offer.default_for(kind)
            if found is not None:
                return found
        return None

    return defaults


def _resolved(ref: DynamicModule, defaults: Defaults) -> DynamicModule:
    assert ref.resolve is not None
    resolved = ref.resolve(defaults)
    if resolved.resolve is not None:
        msg = f"{type_name(ref.module)}: a resolved registration must not resolve again"
        raise TypeError(msg)
    return resolved


def _order(root: type, edges: dict[type, list[type]]) -> tuple[list[type], list[list[str]]]:
    """Post-order DFS (imports first) and every distinct import cycle, without recursion."""
    order: list[type] = []
    cycles: list[list[str]] = []
    seen_cycles: set[frozenset[type]] = set()
    state: dict[type, int] = {}  # 1 = on the current path, 2 = done
    path: list[type] = []
    stack: list[tuple[type, Iterator[type]]] = [(root, iter(edges.get(root, ())))]
    state[root] = 1
    path.append(root)
    while stack:
        node, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            path.pop()
            state[node] = 2
            order.append(node)
            continue
        child_state = state.get(child, 0)
        if child_state == 0:
            state[child] = 1
            path.append(child)
            stack.append((child, iter(edges.get(child, ()))))
        elif child_state == 1:
            loop = path[path.index(child) :]
            key = frozenset(loop)
            if key not in seen_cycles:
                seen_cycles.add(key)
                cycles.append([type_name(m) for m in [*loop, child]])
    return order, cycles
