"""An app with one event handler run out of band, on PostgreSQL and RabbitMQ.

``SignUp`` publishes ``UserSignedUp``: ``CreateProfile`` runs inline and
``SendWelcomeEmail`` out of band, through ``{namespace}.background``, which the app's own
consumer receives. Each handler writes one ``oob_effects`` row in its scope's transaction.
While the file ``DOCKYARD_OOB_HOLD`` exists, ``SendWelcomeEmail`` writes its row, touches
``DOCKYARD_OOB_STARTED`` and waits for ever (for the test's ``kill -9``).

The test publishes with ``users_app(...)`` in its own process (no worker); ``dockyard worker
integration._apps.out_of_band_app:app`` runs the relay and the consumer, configured by
``DOCKYARD_OOB_SCHEMA`` and ``DOCKYARD_OOB_NAMESPACE``.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from dockyard.app import App
from dockyard.consumer import ConsumerModule, listen
from dockyard.messaging import Command, CommandHandler, Event, EventHandler, IPublisher
from dockyard.modules import module
from dockyard.outbox import OutboxModule, RelaySettings, out_of_band
from dockyard.retry import RetryPolicy
from dockyard.sql import SqlModule, SqlUnitOfWork
from dockyard.transport.rabbit import RabbitTransport
from integration._apps.services import POSTGRES_URL, engine_options, rabbit_url

TABLES = ("CREATE TABLE oob_effects (handler TEXT NOT NULL, user_id TEXT NOT NULL)",)
RELAY = RelaySettings(retry=RetryPolicy(max_attempts=50, initial_delay=0.05, max_delay=0.5))


@dataclass(frozen=True, slots=True)
class SignUp(Command[None]):
    user_id: str


@dataclass(frozen=True, slots=True)
class UserSignedUp(Event):
    user_id: str


class SignUpHandler(CommandHandler[SignUp, None]):
    def __init__(self, events: IPublisher) -> None:
        self._events = events

    async def handle(self, command: SignUp, /) -> None:
        await self._events.publish(UserSignedUp(command.user_id))


async def record(uow: SqlUnitOfWork, handler: str, user_id: str) -> None:
    await uow.connection.execute(
        text("INSERT INTO oob_effects VALUES (:handler, :user_id)"),
        {"handler": handler, "user_id": user_id},
    )


class CreateProfile(EventHandler[UserSignedUp]):
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    async def handle(self, event: UserSignedUp, /) -> None:
        await record(self._uow, "profile", event.user_id)


class SendWelcomeEmail(EventHandler[UserSignedUp]):
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    async def handle(self, event: UserSignedUp, /) -> None:
        await record(self._uow, "email", event.user_id)
        if _held():
            await asyncio.Event().wait()  # until the test's kill -9: the row stays uncommitted


def _held() -> bool:
    """Whether to wait in the handler (the hold file exists); says it started if so."""
    hold = os.environ.get("DOCKYARD_OOB_HOLD")
    if not hold or not Path(hold).exists():
        return False
    Path(os.environ["DOCKYARD_OOB_STARTED"]).touch()
    return True


def users_app(schema: str, namespace: str) -> App:
    destination = f"{namespace}.background"

    @module(
        handlers=[
            SignUpHandler,
            CreateProfile,
            out_of_band(SendWelcomeEmail, destination=destination),
        ],
        imports=[
            SqlModule.register(POSTGRES_URL, **engine_options(schema)),
            OutboxModule.register(transport=RabbitTransport(rabbit_url(namespace)), relay=RELAY),
            ConsumerModule.register(endpoints=[listen(destination, group="users")]),
        ],
    )
    class Users: ...

    return App.build(Users)


def __getattr__(name: str) -> App:  # `dockyard worker ...:app`, built when asked for
    if name != "app":
        raise AttributeError(name)
    return users_app(os.environ["DOCKYARD_OOB_SCHEMA"], os.environ["DOCKYARD_OOB_NAMESPACE"])
