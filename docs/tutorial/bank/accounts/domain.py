"""The account, event-sourced: its events, its rules, and the state it rebuilds from them."""

from dataclasses import dataclass

from dockyard import Event
from dockyard.eventsourcing import Aggregate, applies
from dockyard.integrations import RuleViolation
from dockyard.serialization import event_type

from bank.contracts import AccountOpened


@event_type("bank.money-deposited")
@dataclass(frozen=True, slots=True, kw_only=True)
class MoneyDeposited(Event):
    account_id: str
    amount: int  # in cents


@event_type("bank.money-withdrawn")
@dataclass(frozen=True, slots=True, kw_only=True)
class MoneyWithdrawn(Event):
    account_id: str
    amount: int


ACCOUNT_EVENTS = (AccountOpened, MoneyDeposited, MoneyWithdrawn)


class InsufficientFunds(RuleViolation):
    status = 409
    title = "Insufficient funds"


class AccountExists(RuleViolation):
    status = 409
    title = "Account exists"


class Account(Aggregate):
    """Stored as the stream ``Account-{id}``: each change is an event, the state is derived."""

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.owner = ""
        self.balance = 0

    def open(self, owner: str) -> None:
        self.raise_event(AccountOpened(account_id=self.id, owner=owner))

    def deposit(self, amount: int) -> None:
        self.raise_event(MoneyDeposited(account_id=self.id, amount=amount))

    def withdraw(self, amount: int) -> None:
        if amount > self.balance:
            raise InsufficientFunds(f"The balance is {self.balance}, {amount} was asked for.")
        self.raise_event(MoneyWithdrawn(account_id=self.id, amount=amount))

    @applies
    def _opened(self, event: AccountOpened) -> None:
        self.owner = event.owner

    @applies
    def _deposited(self, event: MoneyDeposited) -> None:
        self.balance += event.amount

    @applies
    def _withdrawn(self, event: MoneyWithdrawn) -> None:
        self.balance -= event.amount
