"""Database URLs as users write them: a plain scheme works, a foreign driver is refused clearly,
a missing driver says which extra to install."""

from __future__ import annotations

import builtins
import sys
from pathlib import Path
from typing import Any

import pytest

from dockyard.exceptions import DatabaseUrlError, MissingExtraError
from dockyard.sql import Database


async def test_a_plain_sqlite_url_runs_on_aiosqlite(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'plain.db'}")
    try:
        assert database.engine.url.drivername == "sqlite+aiosqlite"
        await database.create_tables()
        async with database.unit_of_work() as uow:
            await uow.connection.exec_driver_sql("SELECT 1")
    finally:
        await database.dispose()


async def test_a_plain_postgresql_url_runs_on_asyncpg() -> None:
    database = Database("postgresql://postgres@127.0.0.1:5432/test?application_name=plain")
    try:
        assert database.engine.url.drivername == "postgresql+asyncpg"
        assert database.engine.url.query == {"application_name": "plain"}
    finally:
        await database.dispose()


def test_another_driver_is_refused_with_the_url_to_write() -> None:
    with pytest.raises(DatabaseUrlError) as caught:
        Database("postgresql+psycopg2://postgres@127.0.0.1/test")
    assert str(caught.value) == (
        "dockyard runs `postgresql` databases on `postgresql+asyncpg`, not "
        "`postgresql+psycopg2`. Hint: write the URL as `postgresql+asyncpg://...` (or without "
        "a driver, which means the same)."
    )


@pytest.mark.parametrize("url", ["mysql://root@localhost/shop", "mysql+aiomysql://root@h/shop"])
def test_a_database_dockyard_does_not_run_on_names_no_extra(url: str) -> None:
    # there is no `dockyard[mysql]` to install: the hint says what dockyard runs on
    with pytest.raises(DatabaseUrlError) as caught:
        Database(url)
    assert str(caught.value) == (
        "dockyard runs on PostgreSQL (`postgresql+asyncpg://...`) and SQLite "
        f"(`sqlite+aiosqlite://...`), not on `{url.partition(':')[0]}://` databases. Hint: point "
        "the URL at a PostgreSQL or SQLite database."
    )
    assert "pip install" not in str(caught.value)


@pytest.fixture
def without_asyncpg(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def refuse(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "asyncpg" or name.startswith("asyncpg."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    for loaded in [m for m in sys.modules if m == "asyncpg" or m.startswith("asyncpg.")]:
        monkeypatch.delitem(sys.modules, loaded)
    monkeypatch.setattr(builtins, "__import__", refuse)


@pytest.mark.usefixtures("without_asyncpg")
def test_a_missing_driver_names_the_extra() -> None:
    with pytest.raises(MissingExtraError) as caught:
        Database("postgresql://postgres@127.0.0.1/test")
    assert str(caught.value) == (
        "A `postgresql+asyncpg://` database needs asyncpg, which is not installed. "
        "Hint: pip install 'dockyard[postgres]'"
    )
