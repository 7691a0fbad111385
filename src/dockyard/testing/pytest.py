"""dockyard's pytest plugin: a database of each test's own, and apps that stop after it.

Enable it in your root ``conftest.py``::

    pytest_plugins = ["dockyard.testing.pytest"]

Fixtures (see ``docs/testing.md``):

* ``dockyard_sql``: an :class:`IsolatedDatabase`, a fresh SQLite file per test, or a fresh
  PostgreSQL schema per test (dropped after it) when ``dockyard_database_url`` is set in the
  ini file or ``DOCKYARD_TEST_DATABASE_URL`` in the environment (the environment wins).
* ``dockyard_database``: a ``dockyard.sql.Database`` on it, with dockyard's tables.
* ``dockyard_app``: an :class:`AppFactory`; the apps it builds are started, and stopped
  after the test, before its database goes away.

Needs pytest-asyncio (the fixtures are async) and ``dockyard[sqlite]`` (or ``[postgres]``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import pytest

from dockyard.app import App, Lifespan
from dockyard.di import ProviderSpec
from dockyard.exceptions import MissingExtraError
from dockyard.modules import DynamicModule, ModuleLike
from dockyard.serialization import Serializer
from dockyard.testing._override import create_test_app

try:
    import pytest_asyncio
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    from dockyard.sql import Database, SqlModule
except ImportError as exc:  # pragma: no cover - depends on what is installed
    if exc.name == "pytest_asyncio":
        msg = "dockyard's pytest plugin needs pytest-asyncio: pip install pytest-asyncio"
        raise ImportError(msg) from exc
    raise MissingExtraError("dockyard's pytest plugin", "SQLAlchemy", "sqlite") from exc

__all__ = ["AppFactory", "IsolatedDatabase", "isolated_database"]

URL_OPTION = "dockyard_database_url"
URL_VARIABLE = "DOCKYARD_TEST_DATABASE_URL"
SCHEMA_PREFIX = "dockyard_test_"


@dataclass(frozen=True, slots=True)
class IsolatedDatabase:
    """Where one test's tables live: no other test reads or writes there.

    ``url`` and ``engine_options`` go together (on PostgreSQL the options hold the schema's
    ``search_path``): build your app on :meth:`sql_module`, or open :meth:`database`.
    """

    url: str
    """A SQLAlchemy URL: ``sqlite+aiosqlite:///…`` or ``postgresql+asyncpg://…``."""
    schema: str | None = None
    """PostgreSQL: the schema made for this test, dropped after it. SQLite: ``None``."""
    engine_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """Keyword arguments for ``create_async_engine`` that keep connections in ``schema``."""

    def sql_module(
        self, *, serializer: Serializer | None = None, **engine_options: Any
    ) -> DynamicModule:
        """``SqlModule.register`` on this database, creating dockyard's tables at start-up.

        Args:
            serializer: The serializer of events and snapshots, as ``SqlModule.register``.
            **engine_options: More options for ``create_async_engine`` (``pool_size``, …).
        """
        return SqlModule.register(
            self.url,
            serializer=serializer,
            create_tables=True,
            **{**self.engine_options, **engine_options},
        )

    def database(self, **engine_options: Any) -> Database:
        """A new ``Database`` here (no tables created); ``await database.dispose()`` after."""
        return Database(self.url, **{**self.engine_options, **engine_options})


@asynccontextmanager
async def isolated_database(url: str | None, directory: Path) -> AsyncIterator[IsolatedDatabase]:
    """A database for one test, for fixtures of your own (the plugin's use this).

    Args:
        url: ``None``: a SQLite file, ``directory/dockyard.db``. A PostgreSQL URL whose user
            may create schemas: a new schema there, dropped with everything in it at the end.
        directory: Where the SQLite file goes (the test's ``tmp_path``).

    Raises:
        ValueError: ``url`` is not a PostgreSQL URL.
    """
    if url is None:
        yield IsolatedDatabase(f"sqlite+aiosqlite:///{directory / 'dockyard.db'}")
        return
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        msg = (
            f"the test database URL must be a PostgreSQL one, not {url!r}: "
            "without one, every test gets a SQLite file of its own"
        )
        raise ValueError(msg)
    url = parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    schema = f"{SCHEMA_PREFIX}{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(url, poolclass=NullPool)
    try:
        async with admin.begin() as connection:
            await connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        try:
            yield IsolatedDatabase(
                url,
                schema,
                MappingProxyType({"connect_args": {"server_settings": {"search_path": schema}}}),
            )
        finally:
            async with admin.begin() as connection:
                await connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await admin.dispose()


class AppFactory(Protocol):
    """What the ``dockyard_app`` fixture gives: build an app, start it, stop it after the test.

    Takes what :func:`dockyard.testing.create_test_app` takes.
    """

    async def __call__(
        self,
        root: ModuleLike,
        *,
        overrides: Iterable[ProviderSpec] = (),
        context: Mapping[Any, Any] | None = None,
        lifespan: Iterable[Lifespan] = (),
    ) -> App: ...


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        URL_OPTION,
        f"PostgreSQL URL for dockyard's test databases, one schema per test (${URL_VARIABLE} "
        "overrides it; unset: a SQLite file per test)",
        default="",
    )


@pytest_asyncio.fixture
async def dockyard_sql(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[IsolatedDatabase]:
    """This test's own database: a SQLite file, or a PostgreSQL schema if a URL is set."""
    url = os.environ.get(URL_VARIABLE) or str(request.config.getini(URL_OPTION)) or None
    async with isolated_database(url, tmp_path) as database:
        yield database


@pytest_asyncio.fixture
async def dockyard_database(dockyard_sql: IsolatedDatabase) -> AsyncIterator[Database]:
    """A ``Database`` on this test's database, with dockyard's tables; disposed after."""
    database = dockyard_sql.database()
    try:
        await database.create_tables()
        yield database
    finally:
        await database.dispose()


@pytest_asyncio.fixture
async def dockyard_app(
    dockyard_sql: IsolatedDatabase,  # noqa: ARG001 - set up first, so torn down after the apps
) -> AsyncIterator[AppFactory]:
    """Build and start apps; they stop after the test, before ``dockyard_sql`` is dropped."""

    async with AsyncExitStack() as apps:

        async def build(
            root: ModuleLike,
            *,
            overrides: Iterable[ProviderSpec] = (),
            context: Mapping[Any, Any] | None = None,
            lifespan: Iterable[Lifespan] = (),
        ) -> App:
            app = create_test_app(root, overrides=overrides, context=context, lifespan=lifespan)
            return await apps.enter_async_context(app)

        yield build
