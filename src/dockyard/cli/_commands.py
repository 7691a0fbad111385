"""The Typer commands (imported only when Typer is installed)."""

from __future__ import annotations

import asyncio
import logging
import typing
from typing import Annotated

import typer

from dockyard.cli._load import load_app
from dockyard.exceptions import AppImportError, DockyardError
from dockyard.modules import ServiceState

__all__ = ["cli"]

cli = typer.Typer(name="dockyard", help="Run and operate dockyard apps.", no_args_is_help=True)


@cli.callback()
def _root() -> None:
    """Run and operate dockyard apps."""


@cli.command()
def worker(
    app: Annotated[str, typer.Argument(help="The app, as `package.module:attribute`.")],
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
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an error that stops it.")
    ] = False,
) -> None:
    """Run the app's background services (relay, projections, consumers, sagas) until SIGTERM.

    Safe to run in several processes at once. Outages of the database or a broker do not
    stop it (see `docs/operations.md`); a second signal cancels what has not stopped yet.
    """
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        loaded = load_app(app)
    except AppImportError as error:
        _fail(error, code=2, debug=debug)
    names = ", ".join(s.name for s in loaded.background_services()) or "none"
    typer.echo(f"dockyard worker: running {names}", err=True)
    try:
        asyncio.run(
            loaded.run_worker(grace=grace, health_port=health_port, max_backoff=max_backoff)
        )
    except DockyardError as error:  # the app did not start: a wrong URL, a server refusing
        _fail(error, code=1, debug=debug)
    except BaseExceptionGroup:
        # Each failure is logged with its traceback where it happened; say which, once.
        for service in loaded.health().services:
            if service.state is ServiceState.FAILED:
                typer.echo(f"error: {service.name} failed: {service.reason}", err=True)
        raise typer.Exit(1) from None


def _fail(error: Exception, *, code: int, debug: bool) -> typing.NoReturn:
    """One readable line (the error's own message) and ``code``; the traceback with ``--debug``."""
    if debug:
        raise error
    typer.echo(f"error: {error}", err=True)
    if error.__cause__ is not None or error.__traceback__ is not None:
        typer.echo("(run with --debug for the traceback)", err=True)
    raise typer.Exit(code) from None
