"""The apps under test, each on the database of its test and the in-memory transport."""

import pytest
from dockyard import App
from dockyard.sql import Database
from dockyard.testing.pytest import AppFactory, IsolatedDatabase
from dockyard.transport.memory import InMemoryTransport

from bank.accounts.read_model import tables as account_tables
from bank.app import account_serializer, bank_root, notifications_root
from bank.notifications.welcome import tables as notification_tables
from bank.settings import Settings


@pytest.fixture
def transport() -> InMemoryTransport:
    return InMemoryTransport()  # stands in for RabbitMQ: no server needed


@pytest.fixture
async def bank(
    dockyard_app: AppFactory,
    dockyard_sql: IsolatedDatabase,
    dockyard_database: Database,
    transport: InMemoryTransport,
) -> App:
    async with dockyard_database.engine.begin() as connection:
        await connection.run_sync(account_tables.create_all)
    sql = dockyard_sql.sql_module(serializer=account_serializer())
    return await dockyard_app(bank_root(sql, transport, Settings()))


@pytest.fixture
async def notifications(
    dockyard_app: AppFactory,
    dockyard_sql: IsolatedDatabase,
    dockyard_database: Database,
    transport: InMemoryTransport,
) -> App:
    async with dockyard_database.engine.begin() as connection:
        await connection.run_sync(notification_tables.create_all)
    sql = dockyard_sql.sql_module()
    return await dockyard_app(notifications_root(sql, transport, Settings()))
