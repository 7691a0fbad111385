"""The error tree drawn in docs/errors.md and in dockyard.exceptions is the real one."""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard import exceptions
from dockyard.exceptions import DockyardError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "errors.md"

# `│   ├── NotExportedError          (+ LookupError) provided elsewhere, not exported`
_BRANCH = re.compile(
    r"^(?P<indent>(?:│   |    )*)[├└]── (?P<name>\w+)(?:\s+\(\+ (?P<also>[\w, ]+)\))?"
)
_ROOT = re.compile(r"^(?P<name>DockyardError)$")

Drawn = dict[str, tuple[str | None, frozenset[str]]]
"""class name → (drawn parent, builtins drawn beside it)"""


def parse_tree(text: str) -> Drawn:
    drawn: Drawn = {}
    path: list[str] = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if root := _ROOT.match(line):
            path = [root["name"]]
            drawn[root["name"]] = (None, frozenset())
            continue
        branch = _BRANCH.match(line)
        if branch is None or not path:
            continue
        depth = len(branch["indent"]) // 4 + 1
        assert depth <= len(path), f"a branch without a parent: {line!r}"
        del path[depth:]
        also = frozenset(n.strip() for n in (branch["also"] or "").split(",") if n.strip())
        assert branch["name"] not in drawn, f"drawn twice: {branch['name']}"
        drawn[branch["name"]] = (path[-1], also)
        path.append(branch["name"])
    return drawn


def _docs_tree() -> str:
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## The tree", 1)[1]
    found = re.search(r"^```text\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    assert found is not None, "docs/errors.md: no ```text block under ## The tree"
    return found.group(1)


def _module_tree() -> str:
    # the docstring's drawing is indented (a literal block): read it from its root, dedented
    lines = (exceptions.__doc__ or "").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "DockyardError")
    indent = len(lines[start]) - len(lines[start].lstrip())
    block = []
    for line in lines[start:]:
        if not line.strip():
            break
        block.append(line[indent:])
    return "\n".join(block)


def _real_tree() -> Drawn:
    real: Drawn = {}
    for name in exceptions.__all__:
        cls = getattr(exceptions, name)
        if cls is DockyardError:
            real[name] = (None, frozenset())
            continue
        parent, *others = cls.__bases__
        assert issubclass(parent, DockyardError), f"{name}: the first base is its category"
        assert all(getattr(builtins, b.__name__, None) is b for b in others), name
        real[name] = (parent.__name__, frozenset(b.__name__ for b in others))
    return real


@pytest.mark.parametrize(
    "drawing",
    [
        pytest.param(_docs_tree, id="docs/errors.md"),
        pytest.param(_module_tree, id="dockyard.exceptions"),
    ],
)
def test_the_drawn_tree_is_the_class_tree(drawing: Callable[[], str]) -> None:
    drawn = parse_tree(drawing())
    real = _real_tree()

    assert sorted(drawn.keys() - real.keys()) == [], "drawn, but not a public error"
    assert sorted(real.keys() - drawn.keys()) == [], "public errors missing from the drawing"
    wrong = {name: (drawn[name], real[name]) for name in real if drawn[name] != real[name]}
    assert wrong == {}, "(drawn parent, builtins) != (real parent, builtins)"


def test_the_parser_reads_depth_parents_and_builtins() -> None:
    drawn = parse_tree(
        "DockyardError\n"
        "├── StorageError          a store refused\n"
        "│   ├── Deep              (+ LookupError, ValueError) two builtins\n"
        "│   │   └── Deeper        below Deep\n"
        "│   └── Sibling           back up one level\n"
        "└── DeliveryError         a root child again\n"
    )
    assert drawn == {
        "DockyardError": (None, frozenset()),
        "StorageError": ("DockyardError", frozenset()),
        "Deep": ("StorageError", frozenset({"LookupError", "ValueError"})),
        "Deeper": ("Deep", frozenset()),
        "Sibling": ("StorageError", frozenset()),
        "DeliveryError": ("DockyardError", frozenset()),
    }


def test_a_leaf_keeps_a_category_between_it_and_the_root() -> None:
    # Only the categories hang from the root: a new error goes under one of them.
    real = _real_tree()
    children = {name for name, (parent, _) in real.items() if parent == "DockyardError"}
    assert children == {
        "CodecError",
        "ConfigurationError",
        "DeliveryError",
        "LifecycleError",
        "MessagingError",
        "ProjectionError",
        "SagaError",
        "StorageError",
    }
