"""What the accounts component can be asked to do: commands that change an account."""

from dataclasses import dataclass

from dockyard import Command, CommandHandler, IPublisher
from dockyard.eventsourcing import AggregateRepository, EventStore

from bank.accounts.domain import Account, AccountExists


class Accounts(AggregateRepository[Account]):
    """Loads an account from its stream; saving appends its new events and publishes them."""

    def __init__(self, store: EventStore, events: IPublisher) -> None:
        super().__init__(store, events)


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenAccount(Command[None]):
    account_id: str
    owner: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Deposit(Command[int]):  # answered with the new balance
    account_id: str
    amount: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Withdraw(Command[int]):
    account_id: str
    amount: int


class OpenAccountHandler(CommandHandler[OpenAccount, None]):
    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts

    async def handle(self, command: OpenAccount, /) -> None:
        if await self.accounts.get_or_none(command.account_id) is not None:
            raise AccountExists(f"Account {command.account_id} is already open.")
        account = self.accounts.create(command.account_id)
        account.open(command.owner)
        await self.accounts.save(account)


class DepositHandler(CommandHandler[Deposit, int]):
    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts

    async def handle(self, command: Deposit, /) -> int:
        account = await self.accounts.get(command.account_id)  # 404 if there is none
        account.deposit(command.amount)
        await self.accounts.save(account)
        return account.balance


class WithdrawHandler(CommandHandler[Withdraw, int]):
    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts

    async def handle(self, command: Withdraw, /) -> int:
        account = await self.accounts.get(command.account_id)
        account.withdraw(command.amount)
        await self.accounts.save(account)
        return account.balance
