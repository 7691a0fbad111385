"""``dockyard sagas``: list and show saga instances (or draw one's path), retry, skip or
cancel parked ones, purge finished ones.

Over ``SagaControl``, from any process that reaches the saga store: a retried instance is
taken by the workers' runners at their next poll.
"""

from __future__ import annotations

import enum
import typing
from typing import Annotated

import typer

from dockyard.cli._commands import cli
from dockyard.cli._common import AppArgument, DebugOption, JsonOption, emit_json
from dockyard.cli._describe import Format
from dockyard.cli._operate import YesOption, confirm, operate, purge_finished, resolve, table
from dockyard.cli._operate import timestamp as when

if typing.TYPE_CHECKING:
    from dockyard.app import App
    from dockyard.sagas import SagaControl, SagaRecord

__all__ = ["sagas"]

sagas = typer.Typer(
    name="sagas",
    help="Saga instances: list, show, retry, skip, cancel, purge.",
    no_args_is_help=True,
)
cli.add_typer(sagas)

IdArgument = Annotated[str, typer.Argument(help="The saga instance's id.")]
ByOption = Annotated[
    str | None, typer.Option("--by", help="Who does it, for the step log.", show_default=False)
]
ReasonOption = Annotated[
    str | None, typer.Option("--reason", help="Why, for the step log.", show_default=False)
]
_ERROR_WIDTH = 60


class State(enum.StrEnum):  # SagaStatus's values, for Typer's choices (no import at start)
    running = "running"
    compensating = "compensating"
    completed = "completed"
    compensated = "compensated"
    failed = "failed"
    cancelled = "cancelled"


async def _control(app: App) -> SagaControl:
    from dockyard.sagas import SagaControl

    control: SagaControl = await resolve(
        app, SagaControl, "sagas (it does not import `SagasModule`)"
    )
    return control


def _summary(record: SagaRecord) -> dict[str, typing.Any]:
    return {
        "saga_id": record.saga_id,
        "name": record.name,
        "version": record.definition_version,
        "status": record.status.value,
        "step": record.step,
        "action": record.action.value,
        "attempts": record.attempts,
        "error": record.error,
        "created": when(record.created_at),
        "updated": when(record.updated_at),
    }


@sagas.command("list")
def list_sagas(
    app: AppArgument,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Only this saga.")] = None,
    state: Annotated[State | None, typer.Option("--state", "-s", help="Only this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 50,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Instances, oldest first: id, saga, status, current step, attempts, error."""
    from dockyard.sagas import SagaStatus

    async def read(loaded: App) -> list[SagaRecord]:
        control = await _control(loaded)
        status = SagaStatus(state.value) if state is not None else None
        return await control.list(name=name, status=status, limit=limit)

    found = operate(app, read, debug=debug)
    if json_output:
        emit_json([_summary(r) for r in found])
        return
    if not found:
        typer.echo("no saga instances match")
        return
    header = ["id", "saga", "status", "step", "attempts", "error"]
    rows = [
        [
            r.saga_id,
            f"{r.name} v{r.definition_version}",
            r.status.value,
            "-" if r.step is None else f"{r.step} ({r.action.value})",
            str(r.attempts),
            _shorten(r.error),
        ]
        for r in found
    ]
    typer.echo(table(header, rows, right=frozenset({4})))


@sagas.command()
def show(
    app: AppArgument,
    saga_id: IdArgument,
    diagram: Annotated[
        Format | None,
        typer.Option(
            "--diagram",
            help="Print the path it took, from its step log, as a state diagram instead.",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """One instance: its status, state and step log (or a diagram of its path)."""
    if diagram is not None:
        drawing: typing.Literal["mermaid", "dot"] = "dot" if diagram is Format.dot else "mermaid"

        async def draw(loaded: App) -> str:
            return await (await _control(loaded)).instance_diagram(saga_id, format=drawing)

        typer.echo(operate(app, draw, debug=debug))
        return

    async def read(loaded: App) -> tuple[SagaRecord, str]:
        control = await _control(loaded)
        record = await control.get(saga_id)
        return record, repr(control.state(record))

    record, state = operate(app, read, debug=debug)
    log = [
        {
            "step": e.step,
            "kind": e.kind.value,
            "attempt": e.attempt,
            "at": when(e.at),
            "error": e.error,
            "note": e.note,
        }
        for e in record.log
    ]
    if json_output:
        emit_json(_summary(record) | {"state": state, "owner": record.owner, "log": log})
        return
    step = "-" if record.step is None else f"{record.step} ({record.action.value})"
    lines = [
        f"saga        {record.name} v{record.definition_version}",
        f"id          {record.saga_id}",
        f"status      {record.status.value}",
        f"step        {step}, {record.attempts} failed attempts",
        f"state       {state}",
        f"owner       {record.owner or '-'}",
        f"created     {when(record.created_at)}",
        f"updated     {when(record.updated_at)}",
    ]
    if record.error:
        lines.append(f"error       {record.error}")
    lines.append("log")
    for entry in log:
        attempt = f" (attempt {entry['attempt']})" if entry["attempt"] else ""
        error = f": {entry['error']}" if entry["error"] else ""
        note = f" ({entry['note']})" if entry["note"] else ""
        lines.append(f"  {entry['at']}  {entry['step']}: {entry['kind']}{attempt}{error}{note}")
    typer.echo("\n".join(lines))


@sagas.command()
def retry(
    app: AppArgument, saga_id: IdArgument, by: ByOption = None, reason: ReasonOption = None,
    json_output: JsonOption = False, debug: DebugOption = False,
) -> None:  # fmt: skip
    """Resume a parked (failed) instance where it stopped, with fresh attempts."""

    async def change(loaded: App) -> SagaRecord:
        return await (await _control(loaded)).retry(saga_id, by=by, reason=reason)

    record = operate(app, change, debug=debug)
    if json_output:
        emit_json(_summary(record))
    else:
        typer.echo(f"retrying `{saga_id}`: {record.status.value} at step {record.step}")


@sagas.command()
def skip(
    app: AppArgument, saga_id: IdArgument, by: ByOption = None, reason: ReasonOption = None,
    yes: YesOption = False, json_output: JsonOption = False, debug: DebugOption = False,
) -> None:  # fmt: skip
    """Go on past the step a parked (failed) instance stopped at, as if it had completed."""

    async def change(loaded: App) -> SagaRecord:
        control = await _control(loaded)
        record = await control.get(saga_id)  # an unknown id fails before the question
        confirm(
            f"Skip step `{record.step}` ({record.action.value}) of saga `{saga_id}`? It is "
            "not run again; the saga goes on as if it had completed.",
            yes=yes,
        )
        return await control.skip(saga_id, by=by, reason=reason)

    record = operate(app, change, debug=debug)
    if json_output:
        emit_json(_summary(record))
        return
    skipped = record.log[-1].step
    where = f" at step {record.step}" if record.step is not None else ""
    typer.echo(f"skipped `{skipped}` of `{saga_id}`: {record.status.value}{where}")


@sagas.command()
def cancel(
    app: AppArgument, saga_id: IdArgument, by: ByOption = None, reason: ReasonOption = None,
    yes: YesOption = False, json_output: JsonOption = False, debug: DebugOption = False,
) -> None:  # fmt: skip
    """End a parked (failed) instance as cancelled: nothing more runs, nothing is undone."""

    async def change(loaded: App) -> SagaRecord:
        control = await _control(loaded)
        await control.get(saga_id)  # an unknown id fails before the question
        confirm(f"Cancel saga `{saga_id}`? Nothing more runs and nothing is undone.", yes=yes)
        return await control.cancel(saga_id, by=by, reason=reason)

    record = operate(app, change, debug=debug)
    if json_output:
        emit_json(_summary(record))
    else:
        typer.echo(f"cancelled `{saga_id}`")


@sagas.command()
def purge(
    app: AppArgument,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help="Delete those that ended longer ago than this (30m, 12h, 7d, 2w).",
        ),
    ],
    yes: YesOption = False,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Delete finished instances (completed, compensated, cancelled) that ended long ago.

    Running and parked (failed) instances are never deleted. A worker does this by itself
    with `SagaSettings(retain_finished=...)`.
    """
    purge_finished(
        app,
        older_than,
        _control,
        question=f"Delete every finished saga instance that ended more than {older_than} ago?",
        what="saga instances",
        yes=yes,
        json_output=json_output,
        debug=debug,
    )


def _shorten(text: str | None) -> str:
    line = (text or "").splitlines()[0] if text else "-"
    return line if len(line) <= _ERROR_WIDTH else line[: _ERROR_WIDTH - 1] + "…"
