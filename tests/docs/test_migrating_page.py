"""``docs/migrating.md`` keeps its two kinds of code blocks apart, and runs both.

* A plain ```` ```python ```` block is dockyard: ``test_snippets.py`` runs it, as on every page.
* A ```` ```python title="<library> <version> (before)" ```` block is the code a reader writes
  today with that library: a complete program, run here against that library at that version,
  installed in ``.venv-peers`` (``make peers-env``, a step of ``make test``; the pins are in
  ``tests/docs/peers/requirements.txt``). Each block runs in a subprocess of its own under that
  environment's Python (>= 3.12, for python-cq), from ``tests/docs/peers/run_block.py``, which
  checks the installed version against the title and awaits the block's ``main()``.

Without ``.venv-peers`` the before blocks' test skips, saying why; under ``CI=true`` it fails.
Any other fence with a title, or a ``python`` block that ``test_snippets.py`` would not see, is
an error: every block is run by one test or the other.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "migrating.md"
TEXT = PAGE.read_text(encoding="utf-8")
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
BEFORE = re.compile(r'python title="(?P<library>[\w-]+) (?P<version>\d+(\.\d+)*) \(before\)"')
LIBRARIES = ("python-cqrs", "waku", "diator", "python-cq")
"""Each library the page maps, by its distribution name (what the titles say)."""
PEERS_VENV = ROOT / ".venv-peers"
PEERS_REQUIREMENTS = ROOT / "tests" / "docs" / "peers" / "requirements.txt"
RUN_BLOCK = ROOT / "tests" / "docs" / "peers" / "run_block.py"


def _blocks() -> list[tuple[str, str, int]]:
    """``(info string, body, line)`` of every fenced block of the page."""
    return [
        (block["info"], block["body"], TEXT.count("\n", 0, block.start()) + 1)
        for block in FENCE.finditer(TEXT)
    ]


BLOCKS = _blocks()
BEFORE_BLOCKS = [
    (match["library"], match["version"], body, line)
    for info, body, line in BLOCKS
    if (match := BEFORE.fullmatch(info))
]


def _section(line: int) -> str:
    """The ``## `` heading the page's ``line`` is under."""
    headings = re.findall(r"^## (.+)$", "\n".join(TEXT.splitlines()[:line]), re.MULTILINE)
    return headings[-1] if headings else ""


def test_every_block_is_dockyard_or_a_before_block() -> None:
    for info, _, line in BLOCKS:
        if info == "python":
            continue  # run by test_snippets.py
        match = BEFORE.fullmatch(info)
        assert match, (
            f"docs/migrating.md:{line}: ```{info} is neither a dockyard block (```python) nor "
            'a before block (```python title="<library> <version> (before)")'
        )
        assert match["library"] in LIBRARIES, f"docs/migrating.md:{line}: {match['library']}"


def test_each_library_has_its_table_and_before_after_pairs() -> None:
    for library in LIBRARIES:
        assert f"\n## {library}\n" in TEXT, library
        assert f"| {library} | dockyard |" in TEXT, f"no table for {library}"
        befores = [line for name, _, _, line in BEFORE_BLOCKS if name == library]
        assert befores, f"no before block for {library}"
        for line in befores:
            assert _section(line) == library, f"docs/migrating.md:{line} is not under {library}"
            # the dockyard side follows in the same section, before the next before block
            following = [later for info, _, later in BLOCKS if later > line and info == "python"]
            assert following, f"docs/migrating.md:{line}: no dockyard block after it"
            assert _section(following[0]) == library, f"docs/migrating.md:{line}"


def _pins() -> dict[str, str]:
    """``{distribution: version}`` pinned in ``tests/docs/peers/requirements.txt``."""
    pins = re.findall(
        r"^([\w-]+)(?:\[[\w,]+\])?==([\d.]+)$",
        PEERS_REQUIREMENTS.read_text(encoding="utf-8"),
        re.MULTILINE,
    )
    return dict(pins)


def test_the_titles_name_the_pinned_versions() -> None:
    pins = _pins()
    for library, version, _, line in BEFORE_BLOCKS:
        pinned = pins.get(library, "not pinned")
        assert pinned == version or pinned.startswith(f"{version}."), (
            f"docs/migrating.md:{line}: the title says {library} {version}, "
            f"tests/docs/peers/requirements.txt pins {pinned}"
        )


def test_the_page_says_the_before_blocks_run() -> None:
    assert "dockyard's tests run each of them against that library" in TEXT
    assert "not run" not in TEXT


def _peers_python() -> Path:
    python = PEERS_VENV / "bin" / "python"
    if (PEERS_VENV / ".installed").exists() and python.exists():
        return python
    reason = (
        f"{PEERS_VENV.name} is not built: `make peers-env` builds it (needs Python >= 3.12; "
        "`make test` runs it), and the before blocks of docs/migrating.md run there"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"under CI the peers' environment must exist: {reason}")
    pytest.skip(reason)


def _run(
    code: str, line: int, library: str, version: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` as the before block at ``line``, naming ``library`` ``version``."""
    return subprocess.run(
        [_peers_python(), "-I", RUN_BLOCK, "docs/migrating.md", str(line), library, version],
        input=code,
        capture_output=True,
        text=True,
        cwd=cwd,  # whatever a block writes stays out of the checkout
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("library", "version", "body", "line"),
    BEFORE_BLOCKS,
    ids=[f"{library}-line-{line}" for library, _, _, line in BEFORE_BLOCKS],
)
def test_before_block_runs_against_its_library(
    library: str, version: str, body: str, line: int, tmp_path: Path
) -> None:
    done = _run(body, line, library, version, tmp_path)
    assert done.returncode == 0, (
        f"docs/migrating.md:{line}: the {library} {version} block failed "
        f"(exit {done.returncode}):\n{done.stderr[-4000:]}"
    )


def test_the_runner_reports_the_line_of_a_failing_block(tmp_path: Path) -> None:
    """A failure names the page and the line inside it, and a wrong version is refused."""
    library, version, _, line = BEFORE_BLOCKS[0]
    code = "async def main() -> None:\n    raise RuntimeError('boom')\n"
    done = _run(code, line, library, version, tmp_path)
    assert done.returncode != 0
    assert f'File "docs/migrating.md", line {line + 2}, in main' in done.stderr
    done = _run(code, line, library, "0.0", tmp_path)
    assert done.returncode != 0
    assert f"the block names {library} 0.0" in done.stderr
