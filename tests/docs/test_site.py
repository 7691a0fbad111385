"""The documentation site builds with ``mkdocs build --strict``: a warning (a broken link or
anchor, a page in the nav that does not exist, a docstring mkdocstrings cannot read) fails it.

Needs the ``docs`` extra (``pip install -e '.[docs]'``; ``make`` installs it); without it the
test skips, and under ``CI=true`` fails. The site goes to a temporary directory; ``make docs``
builds the real one into ``site/``.
"""

from __future__ import annotations

import ast
import importlib.util
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from services import unavailable

ROOT = Path(__file__).resolve().parents[2]
NEEDED = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


def _require_docs_extra() -> None:
    missing = []
    for name in NEEDED:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # its parent package is missing
            found = False
        if not found:
            missing.append(name)
    if missing:
        unavailable(
            f"the docs extra is not installed ({', '.join(missing)} missing); "
            "install it with `pip install -e '.[docs]'`"
        )


def _public_names(module: str) -> list[str]:
    """``module.__all__``, read from its source (no import: the extras need not be installed)."""
    path = ROOT / "src" / module.replace(".", "/")
    source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        ):
            return [
                element.value
                for element in ast.walk(node.value)
                if isinstance(element, ast.Constant) and isinstance(element.value, str)
            ]
    raise AssertionError(f"{source} has no __all__")


@pytest.mark.slow
def test_the_site_builds_without_a_warning(tmp_path: Path) -> None:
    _require_docs_extra()
    site = tmp_path / "site"
    # Not --quiet: it silences the warnings before --strict counts them (a broken link passes).
    build = [
        "build",
        "--strict",
        "--config-file",
        str(ROOT / "mkdocs.yml"),
        "--site-dir",
        str(site),
    ]
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", *build],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{output}"
    assert "WARNING" not in output, output

    # The API reference has an entry for every public name of every module it shows.
    missing = [
        f"{module}.{name} (docs/reference/{page.name})"
        for page in sorted((ROOT / "docs" / "reference").glob("*.md"))
        for html in [(site / "reference" / page.stem / "index.html").read_text(encoding="utf-8")]
        for module in re.findall(r"^::: (\S+)$", page.read_text(encoding="utf-8"), re.MULTILINE)
        for name in _public_names(module)
        if f'id="{module}.{name}"' not in html
    ]
    assert not missing, missing
    # README.md and CHANGELOG.md are included, not copied.
    assert "Quickstart" in (site / "index.html").read_text(encoding="utf-8")
    assert "Unreleased" in (site / "changelog" / "index.html").read_text(encoding="utf-8")
    # ```mermaid blocks become <pre class="mermaid">, which Material draws in the browser.
    assert '<pre class="mermaid">' in (site / "cli" / "index.html").read_text(encoding="utf-8")


def test_broken_links_anchors_and_nav_entries_fail_the_build() -> None:
    _require_docs_extra()
    from mkdocs.config import load_config

    config = load_config(str(ROOT / "mkdocs.yml"))
    validation = config.validation
    assert config.strict
    assert (
        validation.links.not_found,
        validation.links.anchors,
        validation.nav.not_found,
    ) == (logging.WARNING,) * 3
