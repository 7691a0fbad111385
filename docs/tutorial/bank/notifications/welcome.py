"""Welcome each new customer. The message goes into a table here; in real life, an email."""

import logging

from dockyard import EventHandler
from dockyard.sql import SqlUnitOfWork
from sqlalchemy import Column, Integer, MetaData, String, Table, insert

from bank.contracts import AccountOpened

logger = logging.getLogger(__name__)

tables = MetaData()

sent_messages = Table(
    "sent_messages",
    tables,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(64), nullable=False),
    Column("text", String(500), nullable=False),
)


class WelcomeNewCustomer(EventHandler[AccountOpened]):
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self.uow = uow  # the scope's transaction: the row commits with the inbox record

    async def handle(self, event: AccountOpened, /) -> None:
        text = f"Welcome to the bank, {event.owner}!"
        await self.uow.connection.execute(
            insert(sent_messages).values(account_id=event.account_id, text=text)
        )
        logger.info("to the owner of %s: %s", event.account_id, text)
