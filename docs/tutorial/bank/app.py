"""The composition roots: two apps, the bank and notifications, joined only by events.

The bank writes ``AccountOpened`` to its outbox in the transaction that opens the account;
its worker relays it to RabbitMQ; the notifications worker consumes it.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from dockyard import App, Lifespan, module
from dockyard.consumer import ConsumerModule, listen
from dockyard.modules import ModuleLike
from dockyard.outbox import OutboxModule, route
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.sql import SqlModule, SqlOutboxBackend
from dockyard.transport import Transport
from dockyard.transport.rabbit import RabbitTransport

from bank.accounts.domain import ACCOUNT_EVENTS
from bank.accounts.module import AccountsModule
from bank.contracts import AccountOpened
from bank.notifications.module import NotificationsModule
from bank.settings import Settings


def account_serializer() -> Serializer:
    """Knows the account's events by their stored names, so any process can read them back."""
    return Serializer(TypeRegistry(ACCOUNT_EVENTS))


def bank_root(sql: ModuleLike, transport: Transport, settings: Settings) -> type:
    """The bank's root module, around the SQL module it is given (tests give their own)."""

    @module(
        imports=[
            sql,
            OutboxModule.register(
                transport=transport,
                backend=SqlOutboxBackend(),  # outbox rows commit with the account's events
                routes=[
                    route(AccountOpened).to(
                        settings.notifications_destination, partition_key=lambda e: e.account_id
                    )
                ],
                imports=[SqlModule],
            ),
            AccountsModule,
        ]
    )
    class Bank: ...

    return Bank


def notifications_root(sql: ModuleLike, transport: Transport, settings: Settings) -> type:
    """The notifications app's root: it only consumes, so it runs no relay."""

    @module(
        imports=[
            sql,
            OutboxModule.register(
                transport=transport,
                backend=SqlOutboxBackend(),  # the inbox: each message has its effect once
                run_relay=False,
                imports=[SqlModule],
            ),
            ConsumerModule.register(
                endpoints=[listen(settings.notifications_destination, group="notifications")]
            ),
            NotificationsModule,
        ]
    )
    class Notifications: ...

    return Notifications


def closing(transport: Transport) -> Lifespan:
    """Disconnects from the broker when the app stops (after the worker's services)."""

    @asynccontextmanager
    async def lifespan(_app: App) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await transport.close()

    return lifespan


def bank_app() -> App:
    """The bank: ``uvicorn`` serves its API, ``dockyard worker bank.app:bank_app`` its worker."""
    settings = Settings.from_environment()
    sql = SqlModule.register(
        settings.bank_database_url,
        serializer=account_serializer(),
        pool_size=2,  # a small pool per process: see docs/operations.md, "Connection budget"
        max_overflow=4,
    )
    transport = RabbitTransport(settings.rabbit_url)
    return App.build(bank_root(sql, transport, settings), lifespan=[closing(transport)])


def notifications_app() -> App:
    """``dockyard worker bank.app:notifications_app`` runs its consumer."""
    settings = Settings.from_environment()
    sql = SqlModule.register(settings.notifications_database_url, pool_size=2, max_overflow=4)
    transport = RabbitTransport(settings.rabbit_url)
    return App.build(notifications_root(sql, transport, settings), lifespan=[closing(transport)])
