"""``dockyard check``, ``describe`` and ``graph``: the real command, in a subprocess.

Against a small app written into a temporary folder (``apps/storefront_app.py`` copied as
``storefront/app.py``) and against the shop example (``examples.shop.main:shop``), each output
compared exactly with its file in ``golden/``. After a change meant to alter an output, write
the files again with ``DOCKYARD_UPDATE_GOLDEN=1 pytest tests/unit/cli/test_describe.py`` and
read the diff. Every drawing is also held to Mermaid's or DOT's syntax (``diagram_syntax``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from diagram_syntax import check_dot, check_mermaid
from dockyard import App
from dockyard.diagrams import describe, dot, mermaid
from warm_processes import warm_processes

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
GOLDEN = HERE / "golden"
UPDATE = os.environ.get("DOCKYARD_UPDATE_GOLDEN") == "1"
SHOP = "examples.shop.main:shop"
CHECKOUT = "examples.shop.main:checkout"  # the shop's checkout saga
STOREFRONT = "storefront.app:app"


_PYTHONPATH = os.pathsep.join(sys.path)


def dockyard(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``dockyard ARGS`` as a user runs it, with this test run's interpreter and paths (a new
    process, forked from a warm one: ``tests/warm_processes.py``)."""
    env = {**os.environ, "PYTHONPATH": _PYTHONPATH}
    return warm_processes(_PYTHONPATH).run(["dockyard", *args], env=env, cwd=cwd)


@pytest.fixture(scope="module")
def storefront(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the package ``storefront`` (``app.py``, ``broken.py``)."""
    folder = tmp_path_factory.mktemp("storefront")
    package = folder / "storefront"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copy(HERE / "apps" / "storefront_app.py", package / "app.py")
    shutil.copy(HERE / "apps" / "storefront_broken.py", package / "broken.py")
    return folder


def golden(name: str, text: str) -> None:
    """``text`` must be the file ``golden/name`` (written instead under the update flag)."""
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"no golden/{name}: run with DOCKYARD_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8"), f"golden/{name} differs"


def check_syntax(name: str, text: str) -> None:
    if name.endswith(".mmd"):
        check_mermaid(text.rstrip("\n"))
    elif name.endswith(".dot"):
        check_dot(text)
    elif name.endswith(".json"):
        json.loads(text)


GOLDEN_RUNS = [
    ("storefront", ["describe"], "storefront_describe.txt"),
    ("storefront", ["describe", "--json"], "storefront_describe.json"),
    ("storefront", ["check"], "storefront_check.txt"),
    ("storefront", ["check", "--json"], "storefront_check.json"),
    ("storefront", ["graph"], "storefront_modules.mmd"),
    ("storefront", ["graph", "modules", "--format", "dot"], "storefront_modules.dot"),
    ("storefront", ["graph", "messages"], "storefront_messages.mmd"),
    ("storefront", ["graph", "messages", "--format", "dot"], "storefront_messages.dot"),
    ("storefront", ["graph", "saga", "checkout"], "storefront_saga_checkout.mmd"),
    (
        "storefront",
        ["graph", "saga", "checkout", "--format", "dot"],
        "storefront_saga_checkout.dot",
    ),
    ("storefront", ["graph", "chain", "GetPrice"], "storefront_chain_GetPrice.mmd"),
    (
        "storefront",
        ["graph", "chain", "GetPrice", "--format", "dot"],
        "storefront_chain_GetPrice.dot",
    ),
    ("shop", ["describe"], "shop_describe.txt"),
    ("shop", ["describe", "--json"], "shop_describe.json"),
    ("shop", ["check"], "shop_check.txt"),
    ("shop", ["graph", "modules"], "shop_modules.mmd"),
    ("shop", ["graph", "messages"], "shop_messages.mmd"),
    ("shop", ["graph", "messages", "--format", "dot"], "shop_messages.dot"),
    ("checkout", ["check"], "shop_checkout_check.txt"),
    ("checkout", ["graph", "saga", "shop.checkout"], "shop_saga_checkout.mmd"),
]


@pytest.mark.parametrize(
    ("app", "args", "name"), GOLDEN_RUNS, ids=[name for _, _, name in GOLDEN_RUNS]
)
def test_the_output_is_the_golden_file(
    storefront: Path, app: str, args: list[str], name: str
) -> None:
    target, cwd = {
        "storefront": (STOREFRONT, storefront),
        "shop": (SHOP, ROOT),
        "checkout": (CHECKOUT, ROOT),
    }[app]
    result = dockyard(args[0], target, *args[1:], cwd=cwd)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    check_syntax(name, result.stdout)
    golden(name, result.stdout)


@pytest.fixture(scope="module")
def storefront_module() -> Iterator[ModuleType]:
    """``apps/storefront_app.py`` imported in this process, as the command imports it."""
    name = "storefront.app"
    spec = importlib.util.spec_from_file_location(name, HERE / "apps" / "storefront_app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and Dishka look the module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]


def test_the_command_prints_what_the_library_draws(storefront_module: ModuleType) -> None:
    # `dockyard graph` only prints: the library's functions give the same to docs and users.
    if UPDATE:
        pytest.skip("the golden files are being written")
    app = storefront_module.app
    assert isinstance(app, App)
    assert mermaid(app) + "\n" == (GOLDEN / "storefront_modules.mmd").read_text()
    assert (
        dot(app, "chain", "GetPrice") + "\n"
        == (GOLDEN / "storefront_chain_GetPrice.dot").read_text()
    )
    assert mermaid(app, "saga", "checkout") == storefront_module.checkout.diagram()
    described = json.loads((GOLDEN / "storefront_describe.json").read_text())
    assert describe(app).as_dict() == described


def test_check_lists_every_problem_with_its_module_and_fix(storefront: Path) -> None:
    result = dockyard("check", "storefront.broken:app", cwd=storefront)
    assert result.returncode == 1, result.stderr
    assert result.stderr == ""
    head, *problems = result.stdout.splitlines()
    assert head == "storefront.broken:app: 5 problems"
    assert len(problems) == 5
    for number, (problem, names) in enumerate(
        zip(
            problems,
            [
                ("`Accounting`", "`Invoices`", "`Billing`"),
                ("`Accounting`", "`Mailer`", "`Receipts`"),
                ("`Accounting`", "`Totals`", "`Ledger`"),
                ("`Accounting`", "`Report`"),
                ("`Refund`", "`RefundHandler`", "`RefundAgain`"),
            ],
            strict=True,
        ),
        1,
    ):
        assert problem.startswith(f"  {number}. ")
        assert all(name in problem for name in names), problem
        assert " Hint: " in problem, problem
    golden("storefront_broken_check.txt", result.stdout)


def test_check_json_names_each_problems_error_and_module(storefront: Path) -> None:
    result = dockyard("check", "storefront.broken:app", "--json", cwd=storefront)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert [(p["error"], p["module"]) for p in report["problems"]] == [
        ("NotExportedError", "Accounting"),
        ("MissingProviderError", "Accounting"),
        ("ScopeMismatchError", "Accounting"),
        ("MissingMessageTypeError", "Accounting"),
        ("DuplicateHandlerError", None),
    ]
    assert "modules" not in report  # nothing to count: the app did not build


BAD_SAGA = """
from dataclasses import dataclass

from dockyard import App, module
from dockyard.sagas import Saga, SagasModule


@dataclass
class Trip:
    trip_id: str


@module(imports=[SagasModule.register(sagas=[Saga("trip", version=0, state=Trip, steps=[])])])
class Root: ...


app = App.build(Root)
"""


@pytest.mark.parametrize(
    ("target", "says"),
    [
        (
            "clashing_events:consumer_app",
            [
                "clashing_events:consumer_app: 1 problem",
                (
                    "  1. Event type name `OrderPlaced` is declared by both "
                    "`clashing_events.Orders.OrderPlaced` and "
                    "`clashing_events.Billing.OrderPlaced`; stored events would be ambiguous. "
                    'Hint: give one of them a distinct stable name with `@event_type("...")`.'
                ),
            ],
        ),
        (
            "bad_saga:app",
            [
                "bad_saga:app: 2 problems",
                "  1. Saga `trip` has version 0: versions are integers from 1",
                "  2. Saga `trip` has no steps",
            ],
        ),
    ],
    ids=["types-that-clash-once-consumers-start", "saga-refused-at-import"],
)
def test_check_finds_what_only_fails_later_or_at_import(
    tmp_path: Path, target: str, says: list[str]
) -> None:
    (tmp_path / "bad_saga.py").write_text(textwrap.dedent(BAD_SAGA))
    result = dockyard("check", target, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == says


RAISES_AT_IMPORT = 'settings = {}\nport = settings["port"]\n'


@pytest.mark.parametrize(
    ("command", "target", "problem"),
    [
        ("check", "storefront.app", "expected `module:attribute`"),
        ("describe", "storefront.app:nope", "`storefront.app` has no `nope`"),
        ("graph", "no_such_package:app", "importing `no_such_package` failed"),
        ("check", "raises:app", "importing `raises` failed: KeyError: 'port'"),
        (
            "describe",
            "storefront.broken:app",
            "importing `storefront.broken` failed: The app's modules have 5 problems",
        ),
    ],
)
def test_a_wrong_target_is_one_line_and_exit_2(
    storefront: Path, command: str, target: str, problem: str
) -> None:
    (storefront / "raises.py").write_text(RAISES_AT_IMPORT)
    result = dockyard(command, target, cwd=storefront)
    assert result.returncode == 2
    assert result.stdout == ""
    first, *rest = result.stderr.splitlines()
    assert first.startswith(f"error: Cannot load the app `{target}`: {problem}"), first
    if "problems" not in problem:  # the build's problems are listed one per line
        assert rest == ["(run with --debug for the traceback)"]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["saga", "refund"],
            "error: Saga `refund` is not registered in this app (registered: `checkout`).",
        ),
        (
            ["chain", "GetPrise"],
            (
                "error: No chain of responsibility answers `GetPrise` in this app "
                "(chains: `GetPrice`)."
            ),
        ),
        (["chain"], "error: `graph chain` needs a NAME: one of `GetPrice`"),
        (["saga"], "error: `graph saga` needs a NAME: one of `checkout`"),
        (["messages", "GetPrice"], "error: `graph messages` takes no NAME (got `GetPrice`)"),
    ],
    ids=["unknown-saga", "unknown-chain", "chain-without-name", "saga-without-name", "extra"],
)
def test_graph_names_what_it_knows_when_the_name_is_wrong(
    storefront: Path, args: list[str], says: str
) -> None:
    result = dockyard("graph", STOREFRONT, *args, cwd=storefront)
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(says), line


def test_the_syntax_checks_catch_broken_drawings() -> None:
    with pytest.raises(AssertionError, match="brackets do not match"):
        check_mermaid('flowchart TD\n    a["x")')
    with pytest.raises(AssertionError, match="undeclared nodes"):
        check_mermaid('flowchart TD\n    a["x"]\n    a --> b')
    with pytest.raises(AssertionError, match="a keyword as an id"):
        check_mermaid('flowchart LR\n    end["x"]')
    with pytest.raises(AssertionError, match="raw tag or quote"):
        check_mermaid('flowchart LR\n    a["<b>x</b>"]')
    with pytest.raises(AssertionError, match="undeclared states"):
        check_mermaid("stateDiagram-v2\n    [*] --> s0")
    with pytest.raises(AssertionError):
        check_dot('digraph "x" {\n    a -> ;\n}')
    with pytest.raises(AssertionError, match="undeclared nodes"):
        check_dot('digraph "x" {\n    a [label="a"];\n    a -> b;\n}')


def test_the_shop_checkout_saga_is_drawn_from_its_definition() -> None:
    if UPDATE:
        pytest.skip("the golden files are being written")
    from examples.shop.components.checkout.application.saga import checkout_saga

    drawn = (GOLDEN / "shop_saga_checkout.mmd").read_text()
    assert drawn == checkout_saga().diagram() + "\n"
    assert "s2_awaiting --> undo_s1_fallback : gave up (ShipmentRefused or timeout)" in drawn
