"""``docs/cli-reference.md`` is what ``dockyard.cli._reference`` generates from the commands now.

A command, argument, option, default or help text changed without the page fails here;
``DOCKYARD_UPDATE_GOLDEN=1`` writes the page instead (review the diff), as
``python -m dockyard.cli._reference docs/cli-reference.md`` does.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from dockyard.cli._reference import reference

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "cli-reference.md"
UPDATE = os.environ.get("DOCKYARD_UPDATE_GOLDEN") == "1"


def test_the_page_is_what_the_commands_say() -> None:
    generated = reference()
    if UPDATE:
        PAGE.write_text(generated, encoding="utf-8")
    assert PAGE.exists(), "no docs/cli-reference.md: run with DOCKYARD_UPDATE_GOLDEN=1"
    assert PAGE.read_text(encoding="utf-8") == generated, (
        "docs/cli-reference.md is out of date: run "
        "`DOCKYARD_UPDATE_GOLDEN=1 pytest tests/docs/test_cli_reference.py` and review the diff"
    )


def test_every_command_and_option_is_on_the_page() -> None:
    text = reference()
    headings = re.findall(r"^#+ `(dockyard[^`]*)`$", text, re.MULTILINE)
    for command in (
        "dockyard",
        "dockyard worker",
        "dockyard graph",
        "dockyard db upgrade",
        "dockyard outbox dead-letters replay",
        "dockyard projections rebuild",
        "dockyard sagas cancel",
    ):
        assert command in headings, command
    grace = "Seconds services get to finish in-flight work on stop."
    assert f"| `--grace <float>` | {grace} | 30.0 |" in text
    assert "| `--format <mermaid|dot>` |" in text  # a `|` in a code span stays as it is
    assert "| `app <str>` | The app, as `package.module:attribute`. | required |" in text
    assert "`--help`" not in text
