"""``dockyard sagas``: list and show saga instances, retry or cancel parked ones.

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
from dockyard.cli._operate import YesOption, confirm, operate, resolve, table
from dockyard.cli._operate import timestamp as when

if typing.TYPE_CHECKING:
    from dockyard.app import App
    from dockyard.sagas import SagaControl, SagaRecord

__all__ = ["sagas"]

sagas = typer.Typer(
    name="sagas", help="Saga instances: list, show, retry, cancel.", no_args_is_help=True
)
cli.add_typer(sagas)

IdArgument = Annotated[str, typer.Argument(help="The saga instance's id.")]
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
    app: AppArgument, saga_id: IdArgument, json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:  # fmt: skip
    """One instance: its status, state and step log."""

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
        lines.append(f"  {entry['at']}  {entry['step']}: {entry['kind']}{attempt}{error}")
    typer.echo("\n".join(lines))


@sagas.command()
def retry(
    app: AppArgument, saga_id: IdArgument, json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:  # fmt: skip
    """Resume a parked (failed) instance where it stopped, with fresh attempts."""

    async def change(loaded: App) -> SagaRecord:
        return await (await _control(loaded)).retry(saga_id)

    record = operate(app, change, debug=debug)
    if json_output:
        emit_json(_summary(record))
    else:
        typer.echo(f"retrying `{saga_id}`: {record.status.value} at step {record.step}")


@sagas.command()
def cancel(
    app: AppArgument, saga_id: IdArgument, yes: YesOption = False,
    json_output: JsonOption = False, debug: DebugOption = False,
) -> None:  # fmt: skip
    """End a parked (failed) instance as cancelled: nothing more runs, nothing is undone."""

    async def change(loaded: App) -> SagaRecord:
        control = await _control(loaded)
        await control.get(saga_id)  # an unknown id fails before the question
        confirm(f"Cancel saga `{saga_id}`? Nothing more runs and nothing is undone.", yes=yes)
        return await control.cancel(saga_id)

    record = operate(app, change, debug=debug)
    if json_output:
        emit_json(_summary(record))
    else:
        typer.echo(f"cancelled `{saga_id}`")


def _shorten(text: str | None) -> str:
    line = (text or "").splitlines()[0] if text else "-"
    return line if len(line) <= _ERROR_WIDTH else line[: _ERROR_WIDTH - 1] + "…"
