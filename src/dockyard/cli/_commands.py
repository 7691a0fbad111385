"""The Typer commands (imported only when Typer is installed)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer

from dockyard.cli._load import load_app
from dockyard.exceptions import AppImportError

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
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO",
) -> None:
    """Run the app's background services (relay, projections, consumers) until SIGTERM/SIGINT.

    Safe to run in several processes at once.
    """
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        loaded = load_app(app)
    except AppImportError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    names = ", ".join(s.name for s in loaded.background_services()) or "none"
    typer.echo(f"dockyard worker: running {names}", err=True)
    asyncio.run(loaded.run_worker(grace=grace))
