"""Boxes and arrows as data, written as a Mermaid flowchart or a Graphviz DOT graph.

The diagrams of an app (``dockyard.diagrams``) and of a saga (``Saga.diagram``) are built as
a ``Drawing`` once and written in either language from it, so both always show the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Direction", "Drawing", "Edge", "Node", "Shape", "dot", "flowchart"]

Shape = Literal["box", "rounded", "stadium", "hexagon", "parallelogram", "circle", "start", "end"]
"""``start`` and ``end`` are the black dots of a state diagram; they carry no label."""

Direction = Literal["TB", "LR"]


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    """A name both languages accept unquoted: letters, digits and ``_``."""
    lines: tuple[str, ...] = ()
    shape: Shape = "box"
    dashed: bool = False


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    label: str = ""
    dashed: bool = False


@dataclass(frozen=True, slots=True)
class Drawing:
    name: str
    direction: Direction
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]


_MERMAID_SHAPES: dict[Shape, tuple[str, str]] = {
    "box": ("[", "]"),
    "rounded": ("(", ")"),
    "stadium": ("([", "])"),
    "hexagon": ("{{", "}}"),
    "parallelogram": ("[/", "/]"),
    "circle": ("((", "))"),
    "start": ("((", "))"),
    "end": ("(((", ")))"),
}


def _mermaid_text(text: str) -> str:
    # Inside a quoted label Mermaid reads HTML: entity codes keep quotes and brackets literal.
    return (
        text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
    )


def flowchart(drawing: Drawing) -> str:
    """The drawing as a Mermaid ``flowchart``: one statement per line, labels quoted."""
    lines = [f"flowchart {'TD' if drawing.direction == 'TB' else 'LR'}"]
    for node in drawing.nodes:
        opening, closing = _MERMAID_SHAPES[node.shape]
        label = "<br/>".join(_mermaid_text(line) for line in node.lines) or " "
        lines.append(f'    {node.id}{opening}"{label}"{closing}')
    for edge in drawing.edges:
        arrow = "-.->" if edge.dashed else "-->"
        label = f'|"{_mermaid_text(edge.label)}"|' if edge.label else ""
        lines.append(f"    {edge.source} {arrow}{label} {edge.target}")
    dashed = [node.id for node in drawing.nodes if node.dashed]
    if dashed:
        lines.append("    classDef dashed stroke-dasharray: 5 5")
        lines.append(f"    class {','.join(dashed)} dashed")
    return "\n".join(lines)


_DOT_SHAPES: dict[Shape, tuple[str, tuple[str, ...]]] = {
    "box": ("box", ()),
    "rounded": ("box", ("rounded",)),
    "stadium": ("box", ("rounded",)),
    "hexagon": ("hexagon", ()),
    "parallelogram": ("parallelogram", ()),
    "circle": ("circle", ()),
    "start": ("point", ()),
    "end": ("doublecircle", ()),
}


def _dot_text(*lines: str) -> str:
    """A quoted DOT string; lines are joined by ``\\n`` (a centred line break)."""
    escaped = (line.replace("\\", "\\\\").replace('"', '\\"') for line in lines)
    return '"' + "\\n".join(escaped) + '"'


def dot(drawing: Drawing) -> str:
    """The drawing as a Graphviz ``digraph`` (``dot -Tsvg`` draws it)."""
    lines = [
        f"digraph {_dot_text(drawing.name)} {{",
        f"    rankdir={drawing.direction};",
        '    node [fontname="Helvetica"];',
        '    edge [fontname="Helvetica"];',
    ]
    for node in drawing.nodes:
        shape, styles = _DOT_SHAPES[node.shape]
        attributes = [f"shape={shape}"]
        if node.shape in {"start", "end"}:
            attributes += ['label=""', "width=0.15"]
        else:
            attributes.append(f"label={_dot_text(*node.lines)}")
        styles += ("dashed",) if node.dashed else ()
        if styles:
            attributes.append(f"style={_dot_text(','.join(styles))}")
        lines.append(f"    {node.id} [{', '.join(attributes)}];")
    for edge in drawing.edges:
        attributes = []
        if edge.label:
            attributes.append(f"label={_dot_text(edge.label)}")
        if edge.dashed:
            attributes.append('style="dashed"')
        suffix = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f"    {edge.source} -> {edge.target}{suffix};")
    lines.append("}")
    return "\n".join(lines)
