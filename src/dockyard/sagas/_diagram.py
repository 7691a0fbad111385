"""Diagrams of saga definitions: a Mermaid state diagram, or the same as a Graphviz graph."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dockyard import _drawing
from dockyard._drawing import Drawing, Edge, Node
from dockyard.sagas._step import is_compensable

if TYPE_CHECKING:  # annotations only: the definition imports this module to draw itself
    from dockyard.sagas._definition import Saga, Step

__all__ = ["dot", "drawing", "mermaid", "state_diagram"]

_START, _END = "start", "finished"  # `end` is a keyword in Mermaid flowcharts


def mermaid(saga: Saga[Any]) -> str:
    """``stateDiagram-v2`` text: each step and fallback, the undo states of steps that have a
    ``compensate`` (but the last step: nothing after it can fail), and the ends (completed,
    compensated, failed)."""
    return state_diagram(drawing(saga))


def state_diagram(drawn: Drawing) -> str:
    """``drawn`` as ``stateDiagram-v2`` text (its ``start`` and ``end`` nodes are ``[*]``)."""
    lines = ["stateDiagram-v2"]
    lines += [
        f'    state "{_quoted(node.lines[0])}" as {node.id}'
        for node in drawn.nodes
        if node.shape not in {"start", "end"}
    ]
    for edge in drawn.edges:
        source = "[*]" if edge.source == _START else edge.source
        target = "[*]" if edge.target == _END else edge.target
        lines.append(f"    {source} --> {target}" + (f" : {edge.label}" if edge.label else ""))
    return "\n".join(lines)


def dot(saga: Saga[Any]) -> str:
    """The same states and transitions as :func:`mermaid`, as a Graphviz ``digraph``."""
    return _drawing.dot(drawing(saga))


def drawing(saga: Saga[Any]) -> Drawing:
    """The saga's states (steps, fallbacks, undo states, the ends) and their transitions."""
    positions: list[list[Step[Any]]] = [
        [s, s.fallback] if s.fallback is not None else [s] for s in saga.steps
    ]
    ids: dict[str, str] = {}
    nodes: list[Node] = []
    for position, branches in enumerate(positions):
        for number, branch in enumerate(branches):
            ids[branch.name] = f"s{position}" + ("_fallback" if number else "")
            label = branch.name + (" (pivot)" if branch.pivot else "")
            label += " (fallback)" if number else ""
            label += f" (timeout {branch.timeout:g} s)" if branch.timeout is not None else ""
            nodes.append(Node(ids[branch.name], (label,), "rounded"))
            if branch.remote is not None:
                waiting = (f"awaiting reply ({branch.name})",)
                nodes.append(Node(_awaiting(ids, branch), waiting, "rounded"))
            if is_compensable(branch.handler) and position < len(positions) - 1:
                nodes.append(Node(_undo(ids, branch), (f"undo {branch.name}",), "rounded"))
    nodes += [
        Node("completed", ("completed",), "rounded"),
        Node("compensated", ("compensated",), "rounded"),
        Node("failed", ("failed (parked)",), "rounded"),
    ]
    if not positions:
        return Drawing(saga.name, "TB", tuple(nodes), ())
    nodes = [Node(_START, shape="start"), *nodes, Node(_END, shape="end")]
    edges = [Edge(_START, ids[positions[0][0].name])]
    pivot_at = next((p for p, b in enumerate(positions) if b[0].pivot), None)
    for position, branches in enumerate(positions):
        following = positions[position + 1][0] if position + 1 < len(positions) else None
        done = ids[following.name] if following is not None else "completed"
        after_pivot = pivot_at is not None and position > pivot_at
        for number, branch in enumerate(branches):
            forward, here, gave_up = _forward(ids, branch, done)
            edges += forward
            if number == 0 and len(branches) > 1:
                edges.append(Edge(here, ids[branches[1].name], gave_up))
                continue
            if after_pivot:
                edges.append(Edge(here, "failed", gave_up))
                continue
            edges.extend(
                Edge(here, target, gave_up) for target in _compensation(positions, ids, position)
            )
        for branch in branches:
            if is_compensable(branch.handler) and following is not None:
                undo = _undo(ids, branch)
                edges.extend(
                    Edge(undo, target, "done") for target in _compensation(positions, ids, position)
                )
                edges.append(Edge(undo, "failed", "gave up"))
    edges += [Edge("completed", _END), Edge("compensated", _END)]
    return Drawing(saga.name, "TB", tuple(nodes), tuple(edges))


def _compensation(positions: list[list[Step[Any]]], ids: dict[str, str], before: int) -> list[str]:
    """Where compensation goes from a failure at ``before``: the undo states of the nearest
    earlier step that has one, and further back past branches that have none."""
    targets: list[str] = []
    for position in range(before - 1, -1, -1):
        branches = positions[position]
        undoable = [b for b in branches if is_compensable(b.handler)]
        targets += [_undo(ids, b) for b in undoable]
        if len(undoable) == len(branches):
            return targets
    return [*targets, "compensated"]


def _forward(ids: dict[str, str], branch: Step[Any], done: str) -> tuple[list[Edge], str, str]:
    """The edges from a step to the next, the state it gives up from, and that edge's label.

    A remote step goes through its wait: the reply moves it on, a failure reply or the
    timeout fails it."""
    here, spec = ids[branch.name], branch.remote
    if spec is None:
        # an open breaker gives up at once, along the same edges as exhausted retries
        gave_up = "gave up or circuit open" if branch.breaker is not None else "gave up"
        return [Edge(here, done, "done")], here, gave_up
    waiting = _awaiting(ids, branch)
    replies = " or ".join(t.__name__ for t in spec.replies)
    failing = " or ".join([*(t.__name__ for t in spec.failures), "timeout"])
    edges = [Edge(here, waiting, "command sent"), Edge(waiting, done, replies)]
    return edges, waiting, f"gave up ({failing})"


def _awaiting(ids: dict[str, str], branch: Step[Any]) -> str:
    return f"{ids[branch.name]}_awaiting"


def _undo(ids: dict[str, str], branch: Step[Any]) -> str:
    return f"undo_{ids[branch.name]}"


def _quoted(text: str) -> str:
    return text.replace('"', "'")
