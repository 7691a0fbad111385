"""What the commands that operate a running app share (``outbox``, ``projections``, ``sagas``).

Unlike ``check`` and ``describe``, these start the app (its lifespans and init hooks, never its
background services) and talk to its stores, from any machine that reaches them: what they
change, the app's workers see. Errors stay one line: a store that does not answer, tables
that were never created, an app without the module a command needs.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import sys
import typing
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import typer

from dockyard.cli._common import EXIT_FAILED, EXIT_USAGE, fail, load_or_exit, run
from dockyard.exceptions import DockyardError, StoreUnavailableError

if typing.TYPE_CHECKING:
    from dockyard.app import App

__all__ = [
    "YesOption",
    "confirm",
    "operate",
    "parse_duration",
    "parse_since",
    "purge_finished",
    "resolve",
    "table",
    "timestamp",
]

T = TypeVar("T")

YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]

_UNDEFINED_TABLE = "42P01"  # PostgreSQL's SQLSTATE for a relation that does not exist


def operate(target: str, work: Callable[[App], Coroutine[Any, Any, T]], *, debug: bool) -> T:
    """Load and start the app ``target`` names, run ``work`` with it, stop it.

    Exits 2 when the app does not load, 1 with one line when its stores fail or refuse
    (tables missing, database down) or ``work`` raises a dockyard error (a name or an id
    that does not exist, an operation the state does not allow).
    """
    app = load_or_exit(target, debug=debug)
    if not debug:  # the command says what went wrong; the stores' warnings would say it twice
        logging.getLogger("dockyard").addHandler(logging.NullHandler())

    async def started() -> T:
        try:
            await app.start()
        except Exception as error:
            raise _NotStartedError from error
        try:
            result = await work(app)
        except BaseException as error:
            await app.stop(error)
            raise
        await app.stop()
        return result

    try:
        return run(started)
    except typer.Exit:
        raise
    except Exception as error:
        if debug:
            raise
        _explain(error, target)


class _NotStartedError(Exception):
    """The app's lifespans or init hooks raised (the error is the cause)."""


def _explain(error: Exception, target: str) -> typing.NoReturn:
    """Exit with one line for an error ``operate`` met; re-raise a bug's."""
    if _tables_missing(error):
        fail(f"dockyard's tables are missing: run `dockyard db create {target}`", code=EXIT_FAILED)
    found = error.__cause__ if isinstance(error, _NotStartedError) else error
    if isinstance(found, StoreUnavailableError):  # the driver's own error says more: --debug
        fail(found, code=EXIT_FAILED)
    if isinstance(found, DockyardError):  # an unknown name or id, a state that forbids it
        fail(str(found), code=EXIT_FAILED)
    if isinstance(error, _NotStartedError) and found is not None:  # a hook of the app's own code
        problem = f"{type(found).__name__}: {found}" if str(found) else type(found).__name__
        fail(
            f"the app did not start: {problem} (run with --debug for the traceback)",
            code=EXIT_FAILED,
        )
    raise error


async def resolve(app: App, dependency: type[T], needs: str) -> T:
    """``app.get(dependency)``, or exit 1 saying which module the app lacks."""
    from dishka.exceptions import NoFactoryError

    try:
        return await app.get(dependency)
    except NoFactoryError:
        fail(f"the app has no {needs}", code=EXIT_FAILED)


def _tables_missing(error: BaseException) -> bool:
    """Whether a driver error somewhere in ``error``'s chain says a table does not exist."""
    seen: set[int] = set()
    waiting: list[BaseException | None] = [error]
    while waiting:
        found = waiting.pop()
        if found is None or id(found) in seen:
            continue
        seen.add(id(found))
        if getattr(found, "sqlstate", None) == _UNDEFINED_TABLE:
            return True
        if isinstance(found, sqlite3.OperationalError) and str(found).startswith("no such table"):
            return True
        orig = getattr(found, "orig", None)
        waiting += [found.__cause__, found.__context__]
        if isinstance(orig, BaseException):
            waiting.append(orig)
    return False


def confirm(question: str, *, yes: bool) -> None:
    """Ask ``question`` on the terminal unless ``--yes``; exit 1 on a no.

    Without a terminal to ask on, exits 2 asking for ``--yes``: a script must say so.
    """
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"{question} Pass --yes to confirm (no terminal to ask on).", code=EXIT_USAGE)
    if not typer.confirm(question, default=False, err=True):
        typer.echo("cancelled: nothing was changed", err=True)
        raise typer.Exit(EXIT_FAILED)


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}


def parse_duration(text: str, option: str) -> float:
    """A duration option (``30m``, ``2h``, ``7d``, ``0s``) as seconds; exit 2 on anything else."""
    duration = _DURATION.match(text.strip())
    if duration is None:
        fail(f"{option} `{text}` is not a duration (30s, 30m, 2h, 7d, 2w)", code=EXIT_USAGE)
    return float(duration[1]) * _UNITS[duration[2]]


def parse_since(text: str | None, *, now: datetime | None = None) -> float | None:
    """``--since``: a duration back from now (``30m``, ``2h``, ``7d``) or an ISO 8601 date or
    date and time (UTC unless it has an offset), as epoch seconds."""
    if text is None:
        return None
    duration = _DURATION.match(text.strip())
    if duration is not None:
        seconds = float(duration[1]) * _UNITS[duration[2]]
        return ((now or datetime.now(UTC)) - timedelta(seconds=seconds)).timestamp()
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        fail(
            f"--since `{text}` is neither a duration (30m, 2h, 7d) nor an ISO 8601 date or "
            "time (2026-12-01, 2026-12-01T08:00)",
            code=EXIT_USAGE,
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def timestamp(epoch: float | None) -> str:
    """An epoch time as ``2026-12-03 02:49:21Z`` (UTC, to the second); ``-`` for none."""
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def table(header: list[str], rows: list[list[str]], *, right: frozenset[int] = frozenset()) -> str:
    """A plain text table: columns padded to their widest cell, numbers (``right``) aligned
    right, two spaces between columns, no trailing spaces."""
    widths = [max(len(row[n]) for row in [header, *rows]) for n in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.rjust(widths[n]) if n in right else cell.ljust(widths[n])
            for n, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


class _PurgesFinished(typing.Protocol):
    async def purge_finished(self, older_than: float, /) -> int: ...


def purge_finished(
    target: str,
    older_than: str,
    control: Callable[[App], Coroutine[Any, Any, _PurgesFinished]],
    *,
    question: str,
    what: str,
    yes: bool,
    json_output: bool,
    debug: bool,
) -> None:
    """What every ``purge --older-than`` command does: find the control (a missing one fails
    before the question), ask ``question``, purge, say how many ``what`` went."""
    from dockyard.cli._common import emit_json

    seconds = parse_duration(older_than, "--older-than")

    async def change(loaded: App) -> int:
        found = await control(loaded)
        confirm(question, yes=yes)
        return await found.purge_finished(seconds)

    count = operate(target, change, debug=debug)
    if json_output:
        emit_json({"purged": count})
    else:
        typer.echo(f"purged {count} finished {what}")
