"""What every test shares: service probes and a database of each test's own.

``database`` runs a test on SQLite and on PostgreSQL in turn; ``sqlite_database`` and
``postgres_database`` pin one. Each is isolated as ``dockyard.testing.pytest`` isolates a
user's tests (a SQLite file per test, a PostgreSQL schema per test dropped after it), with
dockyard's tables created. A module that needs more (its own tables, a listener) overrides
``database`` and asks for it: ``def database(database: Database) -> Database``.
``isolated`` gives the same in turn as an ``IsolatedDatabase`` (to build ``SqlModule`` on it),
with the tables of the test module's ``own_tables`` (a ``MetaData``) created too.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa

from dockyard.sql import Database
from dockyard.testing.pytest import IsolatedDatabase, isolated_database
from services import POSTGRES_URL, SERVICES, require_service

BROKERS = frozenset({"rabbit", "nats", "redis", "kafka"})


@pytest.fixture(autouse=True)
def _require_marked_services(request: pytest.FixtureRequest) -> Iterator[None]:
    marked = [m for m in SERVICES if request.node.get_closest_marker(m) is not None]
    for marker in marked:
        require_service(marker)
    yield
    if any(marker in BROKERS for marker in marked):
        # A broker client left open (a connection, a socket) warns when it is collected, and
        # `filterwarnings = error` fails whichever test is running then: collect now, so the
        # test that left it is the one that fails (seen once in CI: four Redis connections
        # collected during a RabbitMQ test).
        gc.collect()


@asynccontextmanager
async def _open(url: str | None, directory: Path) -> AsyncIterator[Database]:
    async with isolated_database(url, directory) as isolated:
        database = isolated.database()
        try:
            await database.create_tables()
            yield database
        finally:
            await database.dispose()


@pytest_asyncio.fixture
async def sqlite_database(tmp_path: Path) -> AsyncIterator[Database]:
    """A ``Database`` on a SQLite file of its own, with dockyard's tables."""
    async with _open(None, tmp_path) as database:
        yield database


@pytest_asyncio.fixture
async def postgres_database(tmp_path: Path) -> AsyncIterator[Database]:
    """A ``Database`` on PostgreSQL whose tables live in a schema of their own, dropped after."""
    require_service("postgres")
    async with _open(POSTGRES_URL, tmp_path) as database:
        yield database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> Database:
    """Each dialect's database in turn (PostgreSQL's marked, so it needs the server)."""
    database: Database = request.getfixturevalue(f"{request.param}_database")
    return database


@pytest_asyncio.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def isolated(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[IsolatedDatabase]:
    """Each dialect in turn, isolated, with dockyard's tables and the module's ``own_tables``."""
    url = None
    if request.param == "postgres":
        require_service("postgres")
        url = POSTGRES_URL
    own_tables: sa.MetaData | None = getattr(request.module, "own_tables", None)
    async with isolated_database(url, tmp_path) as found:
        database = found.database()
        try:
            await database.create_tables()
            if own_tables is not None:
                async with database.engine.begin() as connection:
                    await connection.run_sync(own_tables.create_all)
        finally:
            await database.dispose()
        yield found
