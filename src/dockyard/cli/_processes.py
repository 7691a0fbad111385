"""``dockyard processes``: list and show process manager instances, cancel active ones, purge
finished ones.

Over ``ProcessControl``, from any process that reaches the process store: a cancelled
instance ignores every later message of its key, whichever worker handles it.
"""

from __future__ import annotations

import enum
import typing
from typing import Annotated

import typer

from dockyard.cli._commands import cli
from dockyard.cli._common import AppArgument, DebugOption, JsonOption, emit_json
from dockyard.cli._operate import YesOption, confirm, operate, purge_finished, resolve, table
from dockyard.cli._operate import timestamp as when

if typing.TYPE_CHECKING:
    from dockyard.app import App
    from dockyard.sagas import ProcessControl, ProcessRecord

__all__ = ["processes"]

processes = typer.Typer(
    name="processes",
    help="Process manager instances: list, show, cancel, purge.",
    no_args_is_help=True,
)
cli.add_typer(processes)

NameArgument = Annotated[str, typer.Argument(help="The process manager's name.")]
KeyArgument = Annotated[str, typer.Argument(help="The instance's key.")]


class State(enum.StrEnum):  # ProcessStatus's values, for Typer's choices (no import at start)
    active = "active"
    completed = "completed"
    cancelled = "cancelled"


async def _control(app: App) -> ProcessControl:
    from dockyard.sagas import ProcessControl

    control: ProcessControl = await resolve(
        app, ProcessControl, "process managers (it does not import `ProcessManagersModule`)"
    )
    return control


def _summary(record: ProcessRecord) -> dict[str, typing.Any]:
    return {
        "name": record.name,
        "key": record.key,
        "version": record.definition_version,
        "status": record.status.value,
        "timeout_id": record.timeout_id,
        "timeout_at": when(record.timeout_at) if record.timeout_at is not None else None,
        "created": when(record.created_at),
        "updated": when(record.updated_at),
    }


@processes.command("list")
def list_processes(
    app: AppArgument,
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Only this process manager.")
    ] = None,
    state: Annotated[State | None, typer.Option("--state", "-s", help="Only this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 50,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Instances, oldest first: process manager, key, status, pending timeout."""
    from dockyard.sagas import ProcessStatus

    async def read(loaded: App) -> list[ProcessRecord]:
        control = await _control(loaded)
        status = ProcessStatus(state.value) if state is not None else None
        return await control.list(name=name, status=status, limit=limit)

    found = operate(app, read, debug=debug)
    if json_output:
        emit_json([_summary(r) for r in found])
        return
    if not found:
        typer.echo("no process manager instances match")
        return
    header = ["process", "key", "status", "timeout at", "updated"]
    rows = [
        [
            f"{r.name} v{r.definition_version}",
            r.key,
            r.status.value,
            when(r.timeout_at) if r.timeout_at is not None else "-",
            when(r.updated_at),
        ]
        for r in found
    ]
    typer.echo(table(header, rows))


@processes.command()
def show(
    app: AppArgument,
    name: NameArgument,
    key: KeyArgument,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """One instance: its status, state and pending timeout."""

    async def read(loaded: App) -> tuple[ProcessRecord, str]:
        control = await _control(loaded)
        record = await control.get(name, key)
        return record, repr(control.state(record))

    record, state = operate(app, read, debug=debug)
    if json_output:
        emit_json(_summary(record) | {"state": state, "row_version": record.version})
        return
    timeout = (
        "-" if record.timeout_id is None else f"{record.timeout_id} at {when(record.timeout_at)}"
    )
    lines = [
        f"process     {record.name} v{record.definition_version}",
        f"key         {record.key}",
        f"status      {record.status.value}",
        f"state       {state}",
        f"timeout     {timeout}",
        f"created     {when(record.created_at)}",
        f"updated     {when(record.updated_at)}",
    ]
    typer.echo("\n".join(lines))


@processes.command()
def cancel(
    app: AppArgument, name: NameArgument, key: KeyArgument, yes: YesOption = False,
    json_output: JsonOption = False, debug: DebugOption = False,
) -> None:  # fmt: skip
    """End an active instance: later messages of its key are ignored, its timeout cancelled."""

    async def change(loaded: App) -> ProcessRecord:
        control = await _control(loaded)
        await control.get(name, key)  # an unknown key fails before the question
        confirm(
            f"Cancel process `{name}` instance `{key}`? Every later message of its key is ignored.",
            yes=yes,
        )
        return await control.cancel(name, key)

    record = operate(app, change, debug=debug)
    if json_output:
        emit_json(_summary(record))
    else:
        typer.echo(f"cancelled `{name}` instance `{key}`")


@processes.command()
def purge(
    app: AppArgument,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help="Delete those last changed longer ago than this (30m, 12h, 7d, 2w).",
        ),
    ],
    yes: YesOption = False,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Delete finished instances (completed, cancelled) last changed long ago.

    Active instances are never deleted. A late start message for a deleted key starts it
    again. A worker does this by itself with `ProcessSettings(retain_finished=...)`.
    """
    purge_finished(
        app,
        older_than,
        _control,
        question="Delete every finished process manager instance last changed more than "
        f"{older_than} ago?",
        what="process manager instances",
        yes=yes,
        json_output=json_output,
        debug=debug,
    )
