"""Real services for integration tests: probe them, skip without them, fail without them on CI.

Mark a test with the service it needs (``@pytest.mark.postgres``, ``rabbit``, ``nats``,
``redis``, ``kafka``); the autouse fixture below probes each marked service's TCP port first.
When a service does not answer the test is skipped with the reason, unless ``CI=true``, where
a missing service is a failure: CI must never go green by skipping.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from dockyard.sql import Database


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    host: str
    port: int


SERVICES = {
    "postgres": Service("PostgreSQL", "127.0.0.1", 5432),
    "rabbit": Service("RabbitMQ", "127.0.0.1", 5672),
    "nats": Service("NATS", "127.0.0.1", 4222),
    "redis": Service("Redis", "127.0.0.1", 6379),
    "kafka": Service("Kafka", "127.0.0.1", 9092),
}

_answers: dict[str, bool] = {}


def answers(service: Service, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on the service's port (cached per run)."""
    key = f"{service.host}:{service.port}"
    if key not in _answers:
        try:
            with socket.create_connection((service.host, service.port), timeout=timeout):
                _answers[key] = True
        except OSError:
            _answers[key] = False
    return _answers[key]


def require_service(marker: str) -> None:
    """Skip (or, with ``CI=true``, fail) unless the service behind ``marker`` answers."""
    service = SERVICES[marker]
    if answers(service):
        return
    reason = (
        f"{service.name} is not answering on {service.host}:{service.port} "
        f"(needed by tests marked `{marker}`)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true, so this is a failure, not a skip", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _require_marked_services(request: pytest.FixtureRequest) -> None:
    for marker in SERVICES:
        if request.node.get_closest_marker(marker) is not None:
            require_service(marker)


POSTGRES_URL = os.environ.get(
    "DOCKYARD_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


@pytest_asyncio.fixture
async def postgres_database() -> AsyncIterator[Database]:
    """A ``Database`` on PostgreSQL whose tables live in a schema of their own, dropped after."""
    require_service("postgres")
    schema = f"dockyard_test_{uuid.uuid4().hex[:12]}"
    dsn = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        database = Database(POSTGRES_URL, connect_args={"server_settings": {"search_path": schema}})
        try:
            await database.create_tables()
            yield database
        finally:
            await database.dispose()
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await admin.close()


@pytest_asyncio.fixture
async def sqlite_database(tmp_path: Path) -> AsyncIterator[Database]:
    """A ``Database`` on a SQLite file of its own, with dockyard's tables."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    await database.create_tables()
    yield database
    await database.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_database(request: pytest.FixtureRequest) -> Database:
    """Each dialect's database in turn (PostgreSQL's marked, so it needs the server)."""
    database: Database = request.getfixturevalue(f"{request.param}_database")
    return database
