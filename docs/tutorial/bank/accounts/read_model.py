"""The balances read model: a table a catch-up projection keeps up to date, and its query."""

from dataclasses import dataclass

from dockyard import Query, QueryHandler
from dockyard.projections import Projection, handles
from dockyard.sql import SqlUnitOfWork
from sqlalchemy import Column, Integer, MetaData, String, Table, delete, insert, select, update

from bank.accounts.domain import MoneyDeposited, MoneyWithdrawn
from bank.contracts import AccountOpened

tables = MetaData()

balances = Table(
    "account_balances",
    tables,
    Column("account_id", String(64), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("balance", Integer, nullable=False),
)


class Balances(Projection):
    name = "account-balances"  # names its checkpoint: keep it stable

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self.uow = uow  # the runner's transaction: the rows commit with the checkpoint

    @handles
    async def opened(self, event: AccountOpened) -> None:
        await self.uow.connection.execute(
            insert(balances).values(account_id=event.account_id, owner=event.owner, balance=0)
        )

    @handles
    async def deposited(self, event: MoneyDeposited) -> None:
        await self._add(event.account_id, event.amount)

    @handles
    async def withdrawn(self, event: MoneyWithdrawn) -> None:
        await self._add(event.account_id, -event.amount)

    async def _add(self, account_id: str, amount: int) -> None:
        await self.uow.connection.execute(
            update(balances)
            .where(balances.c.account_id == account_id)
            .values(balance=balances.c.balance + amount)
        )

    async def reset(self) -> None:  # a rebuild starts from an empty table
        await self.uow.connection.execute(delete(balances))


@dataclass(frozen=True, slots=True)
class AccountView:
    account_id: str
    owner: str
    balance: int


@dataclass(frozen=True, slots=True, kw_only=True)
class GetAccount(Query[AccountView | None]):
    account_id: str


class GetAccountHandler(QueryHandler[GetAccount, AccountView | None]):
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self.uow = uow

    async def handle(self, query: GetAccount, /) -> AccountView | None:
        found = await self.uow.connection.execute(
            select(balances).where(balances.c.account_id == query.account_id)
        )
        row = found.one_or_none()
        return None if row is None else AccountView(row.account_id, row.owner, row.balance)
