"""The views of an app as drawings: its modules, its message flow, a saga, a chain."""

from __future__ import annotations

import typing
from typing import Literal, get_args

from dockyard import _drawing
from dockyard._drawing import Drawing, Edge, Node, Shape
from dockyard.app import App
from dockyard.diagrams._description import (
    AppDescription,
    MessageDescription,
    ModuleDescription,
    describe,
)
from dockyard.exceptions import ChainNotFoundError, SagaNotRegisteredError
from dockyard.sagas import _diagram as saga_diagram
from dockyard.sagas._module import sagas_of

if typing.TYPE_CHECKING:
    from typing import Any

    from dockyard.sagas import Saga

__all__ = ["VIEWS", "View", "chains", "dot", "drawing", "mermaid"]

View = Literal["modules", "messages", "saga", "chain"]
"""``modules``: the import graph with exports. ``messages``: which module handles which
message type, and what the outbox sends where. ``saga``: one saga's steps. ``chain``: one
chain of responsibility, link by link."""

VIEWS: tuple[View, ...] = get_args(View)

_LINE = 44  # characters of exported names per line of a module's box
_SHAPES: dict[str, Shape] = {"stream": "rounded", "event": "hexagon"}


def mermaid(app: App, view: View = "modules", name: str | None = None) -> str:
    """The ``view`` of ``app`` as Mermaid text: a ``flowchart``, or for a saga the
    ``stateDiagram-v2`` that ``Saga.diagram()`` draws.

    Args:
        app: A built app (it is not started).
        view: ``"modules"``, ``"messages"``, ``"saga"`` or ``"chain"``.
        name: The saga's name, or the request type the chain answers (its class name).

    Raises:
        SagaNotRegisteredError: No saga of that name in the app.
        ChainNotFoundError: No chain answers that request type.
        ValueError: An unknown view, or a name missing (saga, chain) or extra (the others).
    """
    if view == "saga":
        return saga_diagram.mermaid(_saga(app, _needs_name(view, name)))
    return _drawing.flowchart(drawing(app, view, name))


def dot(app: App, view: View = "modules", name: str | None = None) -> str:
    """The same as :func:`mermaid`, as a Graphviz ``digraph`` (``dot -Tsvg`` draws it)."""
    return _drawing.dot(drawing(app, view, name))


def drawing(app: App, view: View, name: str | None = None) -> Drawing:
    """The boxes and arrows of ``view`` (see :func:`mermaid`), before any text is written."""
    if view not in VIEWS:
        msg = f"unknown view {view!r}: choose one of {', '.join(VIEWS)}"
        raise ValueError(msg)
    if view == "saga":
        return saga_diagram.drawing(_saga(app, _needs_name(view, name)))
    if view == "chain":
        return _chain(describe(app), _needs_name(view, name))
    if name is not None:
        msg = f"the {view} view takes no name (got {name!r})"
        raise ValueError(msg)
    description = describe(app)
    return _modules(description) if view == "modules" else _messages(description)


def chains(description: AppDescription) -> tuple[MessageDescription, ...]:
    """The request types answered by a chain of ``ChainHandler``s."""
    return tuple(message for message in description.messages if message.kind == "chain")


def _needs_name(view: str, name: str | None) -> str:
    if name is None:
        what = "saga's name" if view == "saga" else "request type the chain answers"
        msg = f"the {view} view needs a name: the {what}"
        raise ValueError(msg)
    return name


def _saga(app: App, name: str) -> Saga[Any]:
    registered = sagas_of(app)
    for saga in registered:
        if saga.name == name:
            return saga
    raise SagaNotRegisteredError(name, [saga.name for saga in registered])


def _wrapped(head: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """``head: a, b, c`` over as many lines as it takes to keep each short."""
    lines: list[str] = []
    current = f"{head}:"
    for position, item in enumerate(names):
        piece = item + ("," if position < len(names) - 1 else "")
        if current and len(current) + 1 + len(piece) > _LINE:
            lines.append(current)
            current = ""
        current += f" {piece}" if current else piece
    return (*lines, current)


def _module_lines(module: ModuleDescription) -> tuple[str, ...]:
    title = module.name + (" (global)" if module.is_global else "")
    return (title, *(_wrapped("exports", module.exports) if module.exports else ()))


def _modules(description: AppDescription) -> Drawing:
    """Root first; an arrow from each module to each module it imports; global modules
    (seen by every module without an import) drawn dashed."""
    listed = tuple(reversed(description.modules))
    ids = {module.name: f"m{number}" for number, module in enumerate(listed)}
    nodes = tuple(
        Node(ids[module.name], _module_lines(module), "box", dashed=module.is_global)
        for module in listed
    )
    edges = tuple(
        Edge(ids[module.name], ids[imported]) for module in listed for imported in module.imports
    )
    return Drawing(description.root, "TB", nodes, edges)


def _messages(description: AppDescription) -> Drawing:
    """Message types on the left; an arrow to the module of each handler (labelled with the
    handler), or to the destination the outbox sends it to; each endpoint the consumers
    receive from, into the app (its root module)."""
    nodes: list[Node] = []
    edges: list[Edge] = []
    modules: dict[str, str] = {}
    destinations: dict[str, str] = {}

    def module_id(name: str) -> str:
        if name not in modules:
            modules[name] = f"mod{len(modules)}"
        return modules[name]

    def destination_id(name: str) -> str:
        if name not in destinations:
            destinations[name] = f"dst{len(destinations)}"
        return destinations[name]

    for number, message in enumerate(description.messages):
        message_id = f"msg{number}"
        shape = _SHAPES.get(message.kind, "stadium")
        nodes.append(Node(message_id, (message.name, message.kind), shape))
        for link, handler in enumerate(message.handlers, 1):
            if handler.route is not None:
                target = destination_id(handler.route.destination)
                edges.append(Edge(message_id, target, "outbox"))
                continue
            label = f"{link}. {handler.handler}" if message.kind == "chain" else handler.handler
            edges.append(Edge(message_id, module_id(handler.module), label))
    for endpoint in description.endpoints:
        source = destination_id(endpoint.destination)
        edges.append(
            Edge(source, module_id(description.root), f"consumer {endpoint.group}", dashed=True)
        )
    nodes += [Node(node_id, (name,), "box") for name, node_id in modules.items()]
    nodes += [Node(node_id, (name,), "parallelogram") for name, node_id in destinations.items()]
    return Drawing(description.root, "LR", tuple(nodes), tuple(edges))


def _chain(description: AppDescription, name: str) -> Drawing:
    """The request, each link in the order it is tried (``call_next()`` passes it on), and
    what happens when the last link passes it on too."""
    found = chains(description)
    chain = next((m for m in found if name in {m.name, m.path}), None)
    if chain is None:
        raise ChainNotFoundError(name, [m.name for m in found])
    nodes = [Node("request", (chain.name, "chain"), "stadium")]
    edges: list[Edge] = []
    previous = "request"
    for number, link in enumerate(chain.handlers):
        link_id = f"link{number}"
        lines = [link.handler, f"in {link.module}"]
        if link.behaviors:
            lines += _wrapped("behaviors", link.behaviors)
        nodes.append(Node(link_id, tuple(lines), "box"))
        edges.append(Edge(previous, link_id, "call_next()" if number else ""))
        edges.append(Edge(link_id, "answer", "answers", dashed=True))
        previous = link_id
    nodes += [
        Node("answer", ("answer",), "rounded"),
        Node("exhausted", ("ChainExhaustedError",), "rounded"),
    ]
    edges.append(Edge(previous, "exhausted", "call_next()"))
    return Drawing(chain.name, "LR", tuple(nodes), tuple(edges))
