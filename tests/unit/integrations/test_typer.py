"""``dockyard.integrations.typer``: a user's Typer app with commands that run in a scope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from dockyard import App, Command, CommandHandler, ISender, module
from dockyard.integrations.typer import DockyardCommands, FromDockyard
from dockyard.sql import Database, SqlModule, SqlUnitOfWork

notes = sa.Table("cli_notes", sa.MetaData(), sa.Column("text", sa.String(40), primary_key=True))


@dataclass(frozen=True, slots=True)
class TakeNote(Command[int]):
    text: str


class TakeNoteHandler(CommandHandler[TakeNote, int]):
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self.uow = uow

    async def handle(self, request: TakeNote, /) -> int:
        await self.uow.connection.execute(sa.insert(notes).values(text=request.text))
        return len(request.text)


@dataclass
class Counts:
    built: int = 0
    started: int = 0
    stopped: int = 0


class Boom(Exception):
    pass


@pytest.fixture
def cli(tmp_path: Path) -> tuple[typer.Typer, Counts, str]:
    counts = Counts()
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"

    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        counts.started += 1
        async with (await app.get(Database)).engine.begin() as connection:
            await connection.run_sync(notes.metadata.create_all)
        yield
        counts.stopped += 1

    def build_app() -> App:
        counts.built += 1

        @module(handlers=[TakeNoteHandler], imports=[SqlModule.register(url)])
        class Notes: ...

        return App.build(Notes, lifespan=[lifespan])

    cli = typer.Typer()
    commands = DockyardCommands(cli, build_app)

    @commands.command()
    async def take(
        text: str, sender: FromDockyard[ISender], shout: bool = False, fail: bool = False
    ) -> None:
        """Take a note."""
        length = await sender.send(TakeNote(text.upper() if shout else text))
        typer.echo(f"took {length}")
        if fail:
            raise Boom

    @commands.command("count")
    def count_notes(uow: FromDockyard[SqlUnitOfWork]) -> None:  # a sync command, in a scope
        typer.echo(f"scope open: {uow.connection is not None}")

    return cli, counts, url


def _notes(url: str) -> list[str]:
    engine = sa.create_engine(url.replace("+aiosqlite", ""))
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.select(notes.c.text)).scalars())
    finally:
        engine.dispose()


def test_a_command_runs_in_a_scope_that_commits(cli: tuple[typer.Typer, Counts, str]) -> None:
    app, counts, url = cli
    result = CliRunner().invoke(app, ["take", "hello", "--shout"])
    assert result.exit_code == 0, result.output
    assert result.output == "took 5\n"
    assert _notes(url) == ["HELLO"]
    assert (counts.built, counts.started, counts.stopped) == (1, 1, 1)  # around the command
    result = CliRunner().invoke(app, ["count"])
    assert (result.exit_code, result.output) == (0, "scope open: True\n")
    assert (counts.built, counts.started, counts.stopped) == (1, 2, 2)


def test_a_failing_command_rolls_back(cli: tuple[typer.Typer, Counts, str]) -> None:
    app, counts, url = cli
    result = CliRunner().invoke(app, ["take", "lost", "--fail"])
    assert isinstance(result.exception, Boom)
    assert result.output == "took 4\n"
    assert _notes(url) == []
    assert (counts.started, counts.stopped) == (1, 1)


def test_help_lists_the_command_line_parameters_only(cli: tuple[typer.Typer, Counts, str]) -> None:
    app, counts, _ = cli
    result = CliRunner().invoke(app, ["take", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert "text" in result.output
    assert "--shout" in result.output
    assert "sender" not in result.output.lower()
    assert counts.built == 0  # --help does not build the app
