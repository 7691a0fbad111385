"""``docs/migrating.md`` keeps its two kinds of code blocks apart.

* A plain ```` ```python ```` block is dockyard: ``test_snippets.py`` runs it, as on every page.
* A ```` ```python title="<library> (before, not run)" ```` block illustrates the library a
  reader moves from, and is not run: none of these libraries is installed in the test
  environment (they are not in the dev extras). If one gets installed, a test here fails so
  that its blocks are made to run and the page's note is changed.

Any other fence with a title, or a ``python`` block that ``test_snippets.py`` would not see, is
an error: every block is either run or marked as not run.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "migrating.md"
TEXT = PAGE.read_text(encoding="utf-8")
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
BEFORE = re.compile(r'python title="(?P<library>[\w-]+) \(before, not run\)"')
LIBRARIES = {"python-cqrs": "cqrs", "waku": "waku", "diator": "diator", "python-cq": "cq"}
"""Each library the page maps, with the module it is imported as."""


def _blocks() -> list[tuple[str, str, int]]:
    """``(info string, body, line)`` of every fenced block of the page."""
    return [
        (block["info"], block["body"], TEXT.count("\n", 0, block.start()) + 1)
        for block in FENCE.finditer(TEXT)
    ]


BLOCKS = _blocks()
BEFORE_BLOCKS = [
    (match["library"], body, line)
    for info, body, line in BLOCKS
    if (match := BEFORE.fullmatch(info))
]


def _section(line: int) -> str:
    """The ``## `` heading the page's ``line`` is under."""
    headings = re.findall(r"^## (.+)$", "\n".join(TEXT.splitlines()[:line]), re.MULTILINE)
    return headings[-1] if headings else ""


def test_every_block_is_run_or_marked_not_run() -> None:
    for info, _, line in BLOCKS:
        if info == "python":
            continue  # run by test_snippets.py
        match = BEFORE.fullmatch(info)
        assert match, f"docs/migrating.md:{line}: ```{info} is neither run nor marked not run"
        assert match["library"] in LIBRARIES, f"docs/migrating.md:{line}: {match['library']}"


def test_each_library_has_its_table_and_before_after_pairs() -> None:
    for library in LIBRARIES:
        assert f"\n## {library}\n" in TEXT, library
        assert f"| {library} | dockyard |" in TEXT, f"no table for {library}"
        befores = [line for name, _, line in BEFORE_BLOCKS if name == library]
        assert befores, f"no before block for {library}"
        for line in befores:
            assert _section(line) == library, f"docs/migrating.md:{line} is not under {library}"
            # the dockyard side follows in the same section, before the next before block
            following = [later for info, _, later in BLOCKS if later > line and info == "python"]
            assert following, f"docs/migrating.md:{line}: no dockyard block after it"
            assert _section(following[0]) == library, f"docs/migrating.md:{line}"


def test_the_page_says_which_blocks_are_not_run() -> None:
    assert "dockyard's tests do not run them" in TEXT
    for library, module in LIBRARIES.items():
        assert importlib.util.find_spec(module) is None, (
            f"{library} is installed in the test environment: run its before blocks "
            "and update the page's note on blocks not run"
        )
