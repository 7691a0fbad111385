"""The reference of the ``dockyard`` command, in Markdown, read from its Typer commands.

``python -m dockyard.cli._reference docs/cli-reference.md`` writes the page (without a path it
prints it); ``tests/docs/test_cli_reference.py`` fails when the committed page differs from
what the commands say now. Every command and group in the order ``--help`` lists them, its help,
its usage line, and a table of its arguments and options as ``--help`` shows them (name and
type, help, default or constraints).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import typer.main

from dockyard.cli._commands import cli

__all__ = ["reference"]

_HEADER = """\
# CLI reference

Every command of `dockyard`, generated from the commands themselves
(`python -m dockyard.cli._reference docs/cli-reference.md`; a test fails when this page and the
commands differ). What they are for, with sessions: [the dockyard command](cli.md),
[operating a running app](cli-operations.md), [operations](operations.md) and
[migrations](migrations.md).
"""

# What `--help` appends to an option's help: "  [default: 30.0]", "  [required]".
_EXTRA = re.compile(r"^(?P<help>.*?)(?:  |^)\[(?P<extra>[^\[\]]*)\]$", re.DOTALL)


def reference() -> str:
    """The whole page: one section per command and group, depth first, in ``--help`` order."""
    root = typer.main.get_command(cli)
    context = root.context_class(root, info_name="dockyard")
    sections = [_HEADER]
    _walk(root, context, 1, sections)  # `dockyard` is depth 1, `dockyard db sql` depth 3
    return "\n".join(sections)


def _walk(command: Any, context: Any, depth: int, sections: list[str]) -> None:
    sections.append(_section(command, context, depth))
    if not hasattr(command, "list_commands"):
        return
    for name in command.list_commands(context):
        sub = command.get_command(context, name)
        if sub is None or sub.hidden:
            continue
        _walk(sub, sub.context_class(sub, parent=context, info_name=name), depth + 1, sections)


def _section(command: Any, context: Any, depth: int) -> str:
    usage = " ".join([context.command_path, *command.collect_usage_pieces(context)])
    # `dockyard` and its commands are sections; a group's commands are subsections.
    lines = [f"{'#' * min(max(depth, 2), 6)} `{context.command_path}`", ""]
    if command.help:
        lines += [_dedent(command.help), ""]
    lines += ["```text", usage, "```", ""]
    rows = [
        record
        for param in command.get_params(context)
        if not getattr(param, "hidden", False) and param.name != "help"
        for record in [param.get_help_record(context)]
        if record is not None
    ]
    if rows:
        lines += ["| argument or option | help | default |", "| --- | --- | --- |"]
        for name, text in rows:
            found = _EXTRA.match(text)
            help_text, extra = (found["help"], found["extra"]) if found else (text, "")
            extra = extra.removeprefix("default: ")
            lines.append(f"| `{name}` | {_cell(help_text)} | {_cell(extra)} |")
        lines.append("")
    return "\n".join(lines)


def _dedent(text: str) -> str:
    """A docstring's paragraphs as Markdown: lines stripped, ``\\b`` markers dropped."""
    return "\n".join(line.strip() for line in text.replace("\b", "").strip().splitlines())


def _cell(text: str) -> str:
    """Text for a table cell: one line, ``|`` escaped outside code spans."""
    parts = " ".join(text.split()).split("`")
    return "`".join(part if i % 2 else part.replace("|", "\\|") for i, part in enumerate(parts))


if __name__ == "__main__":
    page = reference()
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(page, encoding="utf-8")
    else:
        sys.stdout.write(page)
