"""Docs that run: every ```python block in README.md and docs/, and every docs/examples/*.py.

Each block runs as its own module (so Dishka can read its annotations); a block that defines
``async def main()`` has it awaited. Blocks must be self-contained.
"""

import inspect
import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _snippets() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{path.relative_to(ROOT)}:{line}", match.group(1)))
    found.extend(
        (str(path.relative_to(ROOT)), path.read_text(encoding="utf-8"))
        for path in sorted((ROOT / "docs" / "examples").glob("*.py"))
    )
    return found


SNIPPETS = _snippets()


def test_the_readme_has_snippets() -> None:
    assert any(where.startswith("README.md") for where, _ in SNIPPETS)


@pytest.mark.parametrize(("where", "code"), SNIPPETS, ids=[w for w, _ in SNIPPETS])
async def test_snippet_runs(where: str, code: str) -> None:
    name = "docs_snippet_" + re.sub(r"\W", "_", where)
    module = types.ModuleType(name)
    module.__file__ = where
    sys.modules[name] = module
    try:
        exec(compile(code, where, "exec"), module.__dict__)
        main = module.__dict__.get("main")
        if inspect.iscoroutinefunction(main):
            await main()
    finally:
        del sys.modules[name]
