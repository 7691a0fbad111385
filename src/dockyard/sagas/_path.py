"""The path one saga instance took, drawn from its step log as a state diagram.

Each step the instance acted on, each compensation it ran and each end it reached is a state;
each move between them is a transition, in log order, labelled with how it left the state
(``done``, ``gave up after 3 attempts``, ``retried``, ``skipped``). Where it is now is marked
``(now)``. A state visited again (a retried instance) is the same state, so loops show.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dockyard import _drawing
from dockyard._drawing import Drawing, Edge, Node
from dockyard.sagas._diagram import state_diagram
from dockyard.sagas._record import SagaLogEntry, SagaLogKind, SagaRecord, SagaStatus, StepAction

__all__ = ["path_dot", "path_drawing", "path_mermaid"]

_START, _END = "start", "finished"
_ENDS = {
    SagaStatus.COMPLETED: "completed",
    SagaStatus.COMPENSATED: "compensated",
    SagaStatus.CANCELLED: "cancelled",
    SagaStatus.FAILED: "failed",
}
_UNDO_KINDS = frozenset({SagaLogKind.COMPENSATED, SagaLogKind.COMPENSATION_FAILED})


def path_mermaid(record: SagaRecord) -> str:
    """``stateDiagram-v2`` text of the instance's path."""
    return state_diagram(path_drawing(record))


def path_dot(record: SagaRecord) -> str:
    """The same path as a Graphviz ``digraph``."""
    return _drawing.dot(path_drawing(record))


@dataclass(slots=True)
class _Walk:
    """Where the walk through the log is, and how it is leaving that state."""

    here: str = _START
    leaving: str = ""
    failures: int = 0
    parked_at: str = _START
    labels: dict[str, str] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def go(self, target: str) -> None:
        if target == self.here:
            return
        edge = Edge(self.here, target, self.leaving)
        if edge not in self.edges:
            self.edges.append(edge)
        self.here, self.leaving, self.failures = target, "", 0

    def node(self, step: str, *, undo: bool) -> str:
        """The id of the state of acting on (or undoing) ``step``: new ones numbered in order."""
        label = f"undo {step}" if undo else step
        for node_id, known in self.labels.items():
            if known == label:
                return node_id
        node_id = f"{'undo' if undo else 'step'}{len(self.labels)}"
        self.labels[node_id] = label
        return node_id

    def failed(self) -> None:
        self.failures += 1
        attempts = "attempt" if self.failures == 1 else "attempts"
        self.leaving = f"gave up after {self.failures} {attempts}"

    def done(self) -> None:
        failed = f" after {self.failures} failed" if self.failures else ""
        self.leaving = "done" + failed


def _walk(walk: _Walk, entry: SagaLogEntry) -> None:
    kind = entry.kind
    if kind in {SagaLogKind.COMPLETED, SagaLogKind.FAILED, *_UNDO_KINDS}:
        walk.go(walk.node(entry.step, undo=kind in _UNDO_KINDS))
        if kind in {SagaLogKind.COMPLETED, SagaLogKind.COMPENSATED}:
            walk.done()
        else:
            walk.failed()
    elif kind is SagaLogKind.PARKED:
        if walk.labels.get(walk.here) not in {entry.step, f"undo {entry.step}"}:
            walk.go(walk.node(entry.step, undo=False))  # parked before any attempt
        walk.leaving = walk.leaving or "parked"
        walk.parked_at = walk.here
        walk.go("failed")
    elif kind is SagaLogKind.RETRIED:
        walk.leaving = _operator("retried", entry)
        walk.go(walk.parked_at)
    elif kind is SagaLogKind.SKIPPED:
        walk.leaving = _operator("skipped", entry)
    elif kind is SagaLogKind.CANCELLED:
        walk.leaving = _operator("cancelled", entry)


def _operator(action: str, entry: SagaLogEntry) -> str:
    return f"{action} ({' '.join(entry.note.split())})" if entry.note else action


def path_drawing(record: SagaRecord) -> Drawing:
    """The states the instance went through and the moves between them, in log order."""
    walk = _Walk()
    for entry in record.log:
        _walk(walk, entry)
    status = record.status
    current = not status.is_finished
    if status.is_active and record.step is not None:
        now = walk.node(record.step, undo=record.action is StepAction.COMPENSATE)
        walk.go(now)
    else:
        now = _ENDS[status]
        walk.go(now)
        if status.is_finished:
            walk.edges.append(Edge(now, _END))
    labels = dict(walk.labels)
    ends = set(_ENDS.values())
    for end in (e.target for e in walk.edges if e.target in ends):  # in the order reached
        labels[end] = "failed (parked)" if end == "failed" else end
    nodes = [Node(_START, shape="start")]
    nodes += [
        Node(node_id, (f"{label} (now)" if node_id == now and current else label,), "rounded")
        for node_id, label in labels.items()
    ]
    if any(e.target == _END for e in walk.edges):
        nodes.append(Node(_END, shape="end"))
    return Drawing(f"{record.name} {record.saga_id}", "TB", tuple(nodes), tuple(walk.edges))
