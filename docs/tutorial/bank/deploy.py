"""``python -m bank.deploy``: create the tables and the queue, once, before the services start.

In production this is your migrations (Alembic with ``dockyard.sql.alembic``, or
``dockyard db create``: docs/migrations.md) and your broker's configuration.
"""

import asyncio

from dockyard.sql import Database
from dockyard.transport.rabbit import RabbitTransport
from sqlalchemy import MetaData

from bank.accounts.read_model import tables as account_tables
from bank.notifications.welcome import tables as notification_tables
from bank.settings import Settings


async def create_tables(url: str, own_tables: MetaData) -> None:
    database = Database(url)
    try:
        await database.create_tables()  # the events, the outbox, the inbox, checkpoints…
        async with database.engine.begin() as connection:
            await connection.run_sync(own_tables.create_all)
    finally:
        await database.dispose()


async def deploy(settings: Settings) -> None:
    await create_tables(settings.bank_database_url, account_tables)
    await create_tables(settings.notifications_database_url, notification_tables)
    # RabbitMQ refuses messages no queue would keep: declare the consumer group's queue first
    transport = RabbitTransport(settings.rabbit_url)
    try:
        await transport.declare(settings.notifications_destination, "notifications")
    finally:
        await transport.close()


if __name__ == "__main__":
    asyncio.run(deploy(Settings.from_environment()))
    print("deployed")
