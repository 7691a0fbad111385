"""The Typer commands (imported only when Typer is installed)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer

from dockyard.cli._common import (
    EXIT_FAILED,
    EXIT_USAGE,
    AppArgument,
    DebugOption,
    fail,
    load_or_exit,
)
from dockyard.cli._env import EnvFileError, apply_env_file
from dockyard.exceptions import DockyardError, UnknownServiceError
from dockyard.modules import ServiceState

__all__ = ["cli"]

logger = logging.getLogger("dockyard.worker")

cli = typer.Typer(name="dockyard", help="Run and operate dockyard apps.", no_args_is_help=True)


EnvFileOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--env-file",
        help="Read `KEY=VALUE` lines into the environment before loading the app (variables "
        "already set win). Repeat for several files.",
        dir_okay=False,
    ),
]


@cli.callback()
def _root(env_file: EnvFileOption = None) -> None:
    """Run and operate dockyard apps."""
    _read_env_files(env_file)


def _read_env_files(paths: list[Path] | None) -> None:
    for path in paths or ():
        try:
            apply_env_file(path)
        except EnvFileError as error:
            fail(str(error), code=EXIT_USAGE)


@cli.command()
def worker(
    app: AppArgument,
    grace: Annotated[
        float, typer.Option(help="Seconds services get to finish in-flight work on stop.")
    ] = 30.0,
    health_port: Annotated[
        int | None,
        typer.Option(help="Serve `/livez` and `/readyz` (HTTP) on this port."),
    ] = None,
    max_backoff: Annotated[
        float, typer.Option(help="Longest wait, in seconds, between retries in an outage.")
    ] = 10.0,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO",
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="Run only the services whose names match this glob (`outbox-relay:nats`, "
            "`consumer:*`). Repeat for several; `dockyard describe` lists the names.",
        ),
    ] = None,
    skip: Annotated[
        list[str] | None,
        typer.Option(
            "--skip",
            help="Do not run the services whose names match this glob. Repeat for several.",
        ),
    ] = None,
    env_file: EnvFileOption = None,
    debug: DebugOption = False,
) -> None:
    """Run the app's background services (relay, projections, consumers, sagas) until SIGTERM.

    Safe to run in several processes at once. Outages of the database or a broker do not
    stop it (see `docs/operations.md`); a second signal cancels what has not stopped yet.
    `--only`/`--skip` split the services across processes (a relay per broker, consumers
    apart); a pattern that matches no service exits with 2, naming the services.
    """
    early = _EarlySignals()  # a stop asked for while the app loads or starts is a stop
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _read_env_files(env_file)
    loaded = load_or_exit(app, debug=debug)
    if early.received:
        typer.echo(f"dockyard worker: {early.received.name} before starting; not started", err=True)
        return
    only, skip = only or [], skip or []
    try:
        services = loaded.background_services(only=only, skip=skip)
    except UnknownServiceError as error:
        fail(error, code=EXIT_USAGE, debug=debug)
    names = ", ".join(s.name for s in services) or "none"
    typer.echo(f"dockyard worker: running {names}", err=True)

    async def run() -> None:
        await loaded.run_worker(
            stop=early.stop_event(),
            grace=grace,
            health_port=health_port,
            max_backoff=max_backoff,
            only=only,
            skip=skip,
        )

    try:
        _run_to_the_end(run())
    except DockyardError as error:  # the app did not start: a wrong URL, a server refusing
        fail(error, code=EXIT_FAILED, debug=debug)
    except BaseExceptionGroup:
        # Each failure is logged with its traceback where it happened; say which, once.
        for service in loaded.health().services:
            if service.state is ServiceState.FAILED:
                typer.echo(f"error: {service.name} failed: {service.reason}", err=True)
        raise typer.Exit(EXIT_FAILED) from None


class _EarlySignals:
    """SIGTERM/SIGINT from the moment the command runs until ``run_worker`` takes the signals
    over: Python's default would end the process with -15 (or a ``KeyboardInterrupt``
    traceback) while the app loads or starts, which an orchestrator stopping a worker it has
    just started sees as a crash."""

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not the main thread (a test runner's)
                signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.received = self.received or signal.Signals(signum)
        if self._stop is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    def stop_event(self) -> asyncio.Event:
        """The worker's ``stop``, already set if a signal came while it was starting."""
        self._stop, self._loop = asyncio.Event(), asyncio.get_running_loop()
        if self.received is not None:  # after _stop is known: no signal falls in between
            logger.info("%s while starting: stopping", self.received.name)
            self._stop.set()
        return self._stop


_LEFTOVERS_WAIT = 5.0
"""Seconds tasks still running when the worker returned get to end once cancelled."""


def _run_to_the_end(work: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run(work)``, except that tasks left behind (one that ignores cancellation)
    get a bounded wait: ``asyncio.run`` would wait for them forever and the process would
    never exit after a stop."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(work)
    finally:
        try:
            leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in leftovers:
                task.cancel()
            if leftovers:
                loop.run_until_complete(asyncio.wait(leftovers, timeout=_LEFTOVERS_WAIT))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


# Command groups live in their own modules and register here (one line each).
from dockyard.cli import (  # noqa: E402 - after `cli`, which each registers on
    _db,  # noqa: F401 - db sql, create, upgrade
    _describe,  # noqa: F401 - check, describe, graph
    _outbox,  # noqa: F401 - outbox status, dead-letters
    _processes,  # noqa: F401 - processes list, show, cancel, purge
    _projections,  # noqa: F401 - projections status, rebuild, …
    _sagas,  # noqa: F401 - sagas list, show, retry, skip, cancel, purge
)
