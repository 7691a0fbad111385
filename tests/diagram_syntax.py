"""Structure checks for what ``dockyard graph`` prints: Mermaid line by line, DOT by a parser.

There is no Mermaid parser in Python; the diagrams use a small subset of the language, one
statement per line, which these checks hold them to: known shapes with matching brackets,
quoted labels without raw quotes or tags (``<br/>`` aside), unique ids that are not keywords,
and arrows and classes that name declared nodes only. DOT goes through pydot's grammar.
"""

from __future__ import annotations

import re
import warnings

import pydot

__all__ = ["check_dot", "check_mermaid"]

_PAIRS = {"[": "]", "(": ")", "([": "])", "{{": "}}", "[/": "/]", "((": "))", "(((": ")))"}
_NODE = re.compile(
    r"^    (?P<id>[A-Za-z_]\w*)(?P<open>\[/|\(\(\(|\(\(|\(\[|\{\{|\[|\()"
    r'"(?P<label>[^"]*)"(?P<close>/\]|\)\)\)|\)\)|\]\)|\}\}|\]|\))$'
)
_EDGE = re.compile(
    r"^    (?P<source>[A-Za-z_]\w*) (?:-->|-\.->)"
    r'(?:\|"(?P<label>[^"]+)"\|)? (?P<target>[A-Za-z_]\w*)$'
)
_CLASS_DEF = re.compile(r"^    classDef (?P<name>\w+) [\w-]+: [^;]+$")
_CLASS = re.compile(r"^    class (?P<ids>\w+(?:,\w+)*) (?P<name>\w+)$")
_STATE = re.compile(r'^    state "(?P<label>[^"]+)" as (?P<id>[A-Za-z_]\w*)$')
_TRANSITION = re.compile(
    r"^    (?P<source>[A-Za-z_]\w*|\[\*\]) --> "
    r"(?P<target>[A-Za-z_]\w*|\[\*\])(?: : (?P<label>.+))?$"
)
_KEYWORDS = {"end", "graph", "subgraph", "flowchart", "style", "class", "classDef", "click"}


def _check_label(label: str, line: str) -> None:
    text = label.replace("<br/>", "")
    assert not set(text) & set('<>"'), f"a raw tag or quote in a label: {line!r}"


def check_mermaid(text: str) -> None:
    """Raise ``AssertionError`` naming the first line that is not in the supported subset."""
    head, *lines = text.split("\n")
    if head == "stateDiagram-v2":
        _check_states(lines)
        return
    assert head in {"flowchart TD", "flowchart LR"}, f"not a flowchart: {head!r}"
    ids: set[str] = set()
    classes: set[str] = set()
    edges: list[tuple[str, str, str]] = []
    for line in lines:
        if node := _NODE.match(line):
            assert _PAIRS[node["open"]] == node["close"], f"brackets do not match: {line!r}"
            assert node["id"] not in ids, f"declared twice: {line!r}"
            assert node["id"] not in _KEYWORDS, f"a keyword as an id: {line!r}"
            _check_label(node["label"], line)
            ids.add(node["id"])
        elif edge := _EDGE.match(line):
            _check_label(edge["label"] or "", line)
            edges.append((edge["source"], edge["target"], line))
        elif class_def := _CLASS_DEF.match(line):
            classes.add(class_def["name"])
        elif used := _CLASS.match(line):
            assert used["name"] in classes, f"an undefined class: {line!r}"
            assert set(used["ids"].split(",")) <= ids, f"a class on undeclared nodes: {line!r}"
        else:
            msg = f"not a node, arrow or class statement: {line!r}"
            raise AssertionError(msg)
    for source, target, line in edges:
        assert {source, target} <= ids, f"an arrow between undeclared nodes: {line!r}"


def _check_states(lines: list[str]) -> None:
    ids: set[str] = set()
    transitions: list[tuple[str, str, str]] = []
    for line in lines:
        if state := _STATE.match(line):
            assert state["id"] not in ids, f"declared twice: {line!r}"
            ids.add(state["id"])
        elif transition := _TRANSITION.match(line):
            transitions.append((transition["source"], transition["target"], line))
        else:
            msg = f"not a state or a transition: {line!r}"
            raise AssertionError(msg)
    assert transitions, "no transitions"
    assert transitions[0][0] == "[*]", "the first transition does not leave the start"
    for source, target, line in transitions:
        assert {source, target} - {"[*]"} <= ids, (
            f"a transition between undeclared states: {line!r}"
        )


def check_dot(text: str) -> None:
    """Raise ``AssertionError`` unless pydot reads one digraph whose edges join its nodes."""
    with warnings.catch_warnings():
        # pydot 4 builds its grammar with pyparsing names that pyparsing 3.3 deprecates
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="pydot")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="pyparsing")
        graphs = pydot.graph_from_dot_data(text)
    assert graphs is not None, "pydot could not parse it"
    assert len(graphs) == 1, f"{len(graphs)} graphs"
    (graph,) = graphs
    assert graph.get_type() == "digraph"
    nodes = {node.get_name() for node in graph.get_nodes()} - {"node", "edge"}
    edges = graph.get_edges()
    assert len(edges) == text.count(" -> "), "edges lost in parsing"
    for edge in edges:
        ends = {str(edge.get_source()), str(edge.get_destination())}
        assert ends <= nodes, f"an edge between undeclared nodes: {ends - nodes}"
