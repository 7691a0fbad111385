"""What every ``dockyard`` command shares: loading the app, one-line errors, ``--json`` output.

Exit codes scripts can rely on (``docs/operations.md``): 0 success, 1 the command ran and
failed (a check found problems, the app did not start, a message id does not exist), 2 a usage
error (bad arguments, an app that does not import or build).
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer

from dockyard.cli._load import load_app
from dockyard.exceptions import AppImportError

if typing.TYPE_CHECKING:
    from dockyard.app import App

__all__ = [
    "EXIT_FAILED",
    "EXIT_USAGE",
    "AppArgument",
    "DebugOption",
    "JsonOption",
    "emit_json",
    "fail",
    "load_or_exit",
    "run",
]

T = TypeVar("T")

EXIT_FAILED = 1
EXIT_USAGE = 2

AppArgument = Annotated[str, typer.Argument(help="The app, as `package.module:attribute`.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output (JSON).")]
DebugOption = Annotated[
    bool, typer.Option("--debug", help="Show the traceback of an error that stops it.")
]


def fail(error: BaseException | str, *, code: int, debug: bool = False) -> typing.NoReturn:
    """One readable line (the error's own message) and ``code``; the traceback with ``--debug``."""
    if isinstance(error, str):
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code)
    if debug:
        raise error
    typer.echo(f"error: {error}", err=True)
    if error.__cause__ is not None or error.__traceback__ is not None:
        typer.echo("(run with --debug for the traceback)", err=True)
    raise typer.Exit(code) from None


def load_or_exit(target: str, *, debug: bool = False) -> App:
    """The app named by ``target``, or exit 2 with one line saying why it could not be loaded."""
    try:
        return load_app(target)
    except AppImportError as error:
        fail(error, code=EXIT_USAGE, debug=debug)


def emit_json(value: object) -> None:
    """Print ``value`` as indented JSON (datetimes and other values as their ``str``)."""
    typer.echo(json.dumps(value, indent=2, sort_keys=False, default=str))


def run(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``work`` in a new event loop (commands are sync to Typer, async inside)."""
    import asyncio

    return asyncio.run(work())
