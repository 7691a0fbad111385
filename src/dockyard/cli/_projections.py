"""``dockyard projections``: status, rebuild, pause, resume, skip and retry of catch-up projections.

Every operation goes through ``ProjectionControl`` and the checkpoint's fence, so it is safe
while workers run: a batch in flight commits first, then the change applies in every
process. ``rebuild`` resets the read model and follows the replay with a progress bar; when
no worker holds the projection's lease, this process replays it itself, under the lease.
"""

from __future__ import annotations

import asyncio
import time
import typing
from typing import Annotated

import typer

from dockyard.cli._commands import cli
from dockyard.cli._common import (
    EXIT_FAILED,
    AppArgument,
    DebugOption,
    JsonOption,
    emit_json,
    fail,
)
from dockyard.cli._operate import YesOption, confirm, operate, resolve, table

if typing.TYPE_CHECKING:
    from rich.progress import Progress, Task
    from rich.text import Text

    from dockyard.app import App
    from dockyard.projections import ProjectionControl, ProjectionStatus

__all__ = ["projections"]

projections = typer.Typer(
    name="projections",
    help="Catch-up projections: status, rebuild, pause, resume, skip, retry.",
    no_args_is_help=True,
)
cli.add_typer(projections)

NameArgument = Annotated[str, typer.Argument(help="The projection's name.")]
_POLL = 0.25  # seconds between two looks at a rebuild's progress


async def _control(app: App) -> ProjectionControl:
    from dockyard.projections import ProjectionControl

    control: ProjectionControl = await resolve(
        app, ProjectionControl, "catch-up projections (it does not import `ProjectionsModule`)"
    )
    return control


def _as_dict(status: ProjectionStatus) -> dict[str, typing.Any]:
    return {
        "name": status.name,
        "state": status.state.value,
        "position": status.position,
        "head": status.head,
        "lag": status.lag,
        "owner": status.owner,
        "paused_at": status.paused_at.isoformat() if status.paused_at else None,
        "failed_position": status.failed_position,
        "attempts": status.attempts,
        "error": status.error,
    }


@projections.command()
def status(
    app: AppArgument,
    name: Annotated[str | None, typer.Argument(help="Only this projection.")] = None,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """State (running, stopped, paused, failed), checkpoint, head, lag and error of each."""

    async def read(loaded: App) -> list[ProjectionStatus]:
        control = await _control(loaded)
        if name is not None:
            return [await control.status_of(name)]
        return await control.status()

    statuses = operate(app, read, debug=debug)
    if json_output:
        emit_json([_as_dict(s) for s in statuses])
        return
    if not statuses:
        typer.echo("the app has no catch-up projections")
        return
    header = ["name", "state", "position", "head", "lag", "owner"]
    rows = [
        [s.name, s.state.value, str(s.position), str(s.head), str(s.lag), s.owner or "-"]
        for s in statuses
    ]
    typer.echo(table(header, rows, right=frozenset({2, 3, 4})))
    for s in statuses:
        if s.failed_position is not None:
            typer.echo(
                f"{s.name}: parked at position {s.failed_position} after {s.attempts} "
                f"attempts: {s.error}"
            )


def _simple(action: str, verb: str, app: str, name: str, json_output: bool, debug: bool,
            *, ask: str | None = None, yes: bool = True) -> None:  # fmt: skip
    async def change(loaded: App) -> bool | None:
        control = await _control(loaded)
        await control.status_of(name)  # an unknown name fails before the question
        if ask is not None:
            confirm(ask, yes=yes)
        done: bool | None = await getattr(control, action)(name)
        return done

    changed = operate(app, change, debug=debug)
    unchanged = changed is False  # pause and resume say whether there was anything to do
    if json_output:
        emit_json({"name": name, "action": action, "changed": not unchanged})
    elif unchanged:
        typer.echo(f"`{name}` was {verb} already: nothing to do")
    else:
        typer.echo(f"{verb} `{name}`")


@projections.command()
def pause(
    app: AppArgument, name: NameArgument, json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:  # fmt: skip
    """Stop applying events to it in every process until `resume` (a batch in flight
    commits first)."""
    _simple("pause", "paused", app, name, json_output, debug)


@projections.command()
def resume(
    app: AppArgument, name: NameArgument, json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:  # fmt: skip
    """Let runners apply events to a paused projection again, from its checkpoint."""
    _simple("resume", "resumed", app, name, json_output, debug)


@projections.command()
def retry(
    app: AppArgument, name: NameArgument, json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:  # fmt: skip
    """Try the event a failed (parked) projection stopped on again."""
    _simple("retry", "retrying", app, name, json_output, debug)


@projections.command()
def skip(
    app: AppArgument, name: NameArgument, yes: YesOption = False, json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:  # fmt: skip
    """Move a failed (parked) projection past the event it stopped on, without applying it."""
    question = f"Skip the failed event of `{name}`? Its read model will never see it."
    _simple("skip", "skipped the failed event of", app, name, json_output, debug, ask=question,
            yes=yes)  # fmt: skip


@projections.command()
def rebuild(
    app: AppArgument,
    name: NameArgument,
    wait: Annotated[
        bool, typer.Option(help="Follow the replay to the head with a progress bar.")
    ] = True,
    yes: YesOption = False,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Clear the read model and replay every event into it, with progress, rate and ETA.

    Safe with workers running: the reset commits under the checkpoint's fence and the worker
    holding the lease replays; with none, this process replays, holding the lease itself.
    """

    async def work(loaded: App) -> dict[str, typing.Any]:
        control = await _control(loaded)
        before = await control.status_of(name)
        confirm(f"Rebuild `{name}`? Its read model is cleared and replayed.", yes=yes)
        await control.rebuild(name)
        started = time.monotonic()
        if before.paused_at is not None or not wait:
            progress = await control.progress(name)
            return {"name": name, "done": False, "paused": before.paused_at is not None,
                    "position": progress.position, "head": progress.head}  # fmt: skip
        position, head = await _follow(control, name, show=not json_output)
        elapsed = time.monotonic() - started
        return {"name": name, "done": True, "paused": False, "position": position,
                "head": head, "seconds": round(elapsed, 3)}  # fmt: skip

    result = operate(app, work, debug=debug)
    if json_output:
        emit_json(result)
    elif result["paused"]:
        typer.echo(f"reset `{name}`; it is paused: it replays once resumed")
    elif not result["done"]:
        typer.echo(f"reset `{name}`; its runner replays it from position 0")
    else:
        typer.echo(f"rebuilt `{name}`: at position {result['position']} of {result['head']}")


async def _follow(control: ProjectionControl, name: str, *, show: bool) -> tuple[int, int]:
    """Poll the rebuild's progress until it reaches the head; replay here while no runner
    holds the lease. Exit 1 if it parks on a failing event or is paused meanwhile."""
    from dockyard.projections import ProjectionState

    replaying: asyncio.Task[bool] | None = None
    with _bar(show) as bar:
        task = bar.add_task(name, total=None, rate="")
        try:
            while True:
                progress = await control.progress(name)
                bar.update(task, completed=progress.position, total=max(progress.head, 1))
                current = await control.status_of(name)
                if current.state is ProjectionState.FAILED:
                    fail(f"`{name}` parked at position {current.failed_position}: "
                         f"{current.error}", code=EXIT_FAILED)  # fmt: skip
                if current.state is ProjectionState.PAUSED:
                    fail(f"`{name}` was paused during the rebuild, at position "
                         f"{progress.position} of {progress.head}", code=EXIT_FAILED)  # fmt: skip
                if replaying is not None and replaying.done() and replaying.exception():
                    await replaying  # the replay here failed: its error, as any other
                if progress.done and (replaying is None or replaying.done()):
                    return progress.position, progress.head
                if current.owner is None and (replaying is None or replaying.done()):
                    replaying = asyncio.create_task(control.catch_up(name))
                await asyncio.sleep(_POLL)
        finally:
            if replaying is not None and not replaying.done():
                replaying.cancel()
                await asyncio.gather(replaying, return_exceptions=True)


def _bar(show: bool) -> Progress:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("" if speed is None else f"{speed:,.0f} events/s")

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        Rate(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not show,
        transient=False,
    )
