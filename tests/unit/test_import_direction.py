"""Imports point one way: features never import adapters, adapters never import the app.

Read from the source (the AST of every module under ``src/dockyard``), not from
``sys.modules``, so a late import inside a function counts as much as one at the top. Imports
under ``if TYPE_CHECKING:`` are annotations, not dependencies, and are skipped.

* A core feature (messaging, modules, di, eventsourcing, outbox, projections, consumer,
  serialization, exceptions) imports no adapter: nothing from ``dockyard.sql``,
  ``dockyard.integrations`` or a transport adapter module, and no in-memory adapter module but
  its own (``dockyard.outbox`` may import ``dockyard.outbox._memory``, not
  ``dockyard.transport.memory``).
* An adapter (all of the above, and every in-memory adapter module) never imports
  ``dockyard.app`` at run time, nor the ``dockyard`` root, which re-exports ``App``.

ARCHITECTURE.md §2, "Layering rules".
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import dockyard

SRC = Path(dockyard.__file__).parent

FEATURES = (
    "consumer",
    "di",
    "eventsourcing",
    "exceptions",
    "messaging",
    "modules",
    "outbox",
    "projections",
    "sagas",
    "serialization",
)
ADAPTER_PACKAGES = ("dockyard.sql", "dockyard.integrations")
TRANSPORT_PORT = {"dockyard.transport", "dockyard.transport._port"}
"""The modules of ``dockyard.transport`` that are the port; every other one is an adapter."""
APP = "dockyard.app"

ALLOWED: frozenset[tuple[str, str]] = frozenset()
"""Known violations let through, as ``(importer, target)``: none (keep it that way)."""


@dataclass(frozen=True, slots=True)
class Import:
    importer: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.importer} (line {self.line}) imports {self.target}"


def module_name(path: Path, root: Path = SRC) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _package_of(module: str, *, is_package: bool) -> str:
    return module if is_package else module.rpartition(".")[0]


def runtime_imports(
    source: str, module: str, *, is_package: bool = False, root: Path = SRC
) -> list[Import]:
    """Every module ``source`` imports when it runs, at any depth, outside TYPE_CHECKING."""
    found: list[Import] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(module, alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = _package_of(module, is_package=is_package)
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            for alias in node.names:
                # `from package import name`: the submodule if there is one, else the package
                candidate = f"{base}.{alias.name}"
                path = root.joinpath(*candidate.split(".")[1:])
                is_module = path.is_dir() or path.with_suffix(".py").is_file()
                found.append(Import(module, candidate if is_module else base, node.lineno))
        for inner in ast.iter_child_nodes(node):
            visit(inner)

    visit(ast.parse(source))
    return found


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def feature_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in FEATURES else None


def is_in_memory_adapter(module: str) -> bool:
    return module.rpartition(".")[2].lstrip("_").startswith("memory")


def is_adapter(module: str) -> bool:
    return (
        any(_within(module, package) for package in ADAPTER_PACKAGES)
        or (_within(module, "dockyard.transport") and module not in TRANSPORT_PORT)
        or is_in_memory_adapter(module)
    )


def violation(found: Import) -> str | None:
    """Why ``found`` breaks the import direction, or ``None``."""
    importer, target = found.importer, found.target
    feature = feature_of(importer)
    if feature is not None and is_adapter(target):
        own = is_in_memory_adapter(target) and feature_of(target) == feature
        if not own:
            return f"{found}: the feature `{feature}` imports an adapter"
    if is_adapter(importer) and (_within(target, APP) or target == "dockyard"):
        return f"{found}: an adapter imports the app at run time"
    return None


def all_modules() -> list[tuple[str, Path]]:
    return sorted((module_name(path), path) for path in SRC.rglob("*.py"))


def test_the_rules_cover_the_packages_that_exist() -> None:
    for feature in FEATURES:
        assert (SRC / feature).is_dir() or (SRC / f"{feature}.py").is_file(), feature
    assert (SRC / "sql").is_dir()
    assert (SRC / "app.py").is_file()
    assert sum(is_adapter(name) for name, _ in all_modules()) >= 20


def test_features_never_import_adapters_and_adapters_never_import_the_app() -> None:
    problems: list[str] = []
    for name, path in all_modules():
        is_package = path.name == "__init__.py"
        for found in runtime_imports(path.read_text(), name, is_package=is_package):
            problem = violation(found)
            if problem is None:
                continue
            if (found.importer, found.target) not in ALLOWED:
                problems.append(problem)
    assert not problems, "\n".join(problems)


# The checker itself, on made-up modules: each rule can fail.


def _violations(source: str, module: str) -> list[str]:
    found = runtime_imports(source, module)
    return [problem for f in found if (problem := violation(f)) is not None]


def test_a_feature_importing_sql_at_any_depth_is_caught() -> None:
    source = "def head():\n    from dockyard.sql import SqlEventStore\n"
    expected = (
        "dockyard.projections._log (line 2) imports dockyard.sql: the feature `projections` "
        "imports an adapter"
    )
    assert _violations(source, "dockyard.projections._log") == [expected]


def test_a_feature_may_import_its_own_in_memory_adapter_only() -> None:
    assert _violations("from dockyard.outbox._memory import X", "dockyard.outbox._module") == []
    assert _violations("from dockyard.transport.memory import X", "dockyard.outbox._module")
    assert _violations("import dockyard.transport.rabbit", "dockyard.consumer._listener")


def test_an_adapter_importing_the_app_is_caught_unless_for_type_checking() -> None:
    assert _violations("from dockyard.app import App", "dockyard.sql._module")
    assert _violations("from dockyard import App", "dockyard.transport.nats")
    assert _violations("from dockyard import App", "dockyard.outbox._memory")
    typed = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from dockyard.app import App\n"
    )
    assert _violations(typed, "dockyard.sql._module") == []


def test_relative_imports_are_resolved() -> None:
    source = "from ..sql import Database"
    assert runtime_imports(source, "dockyard.outbox._module")[0].target == "dockyard.sql"
    assert _violations(source, "dockyard.outbox._module")
