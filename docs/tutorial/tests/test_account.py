"""The account's rules, without a database: given past events, when a command, then events."""

from dockyard.testing import AggregateSpec

from bank.accounts.domain import Account, InsufficientFunds, MoneyDeposited, MoneyWithdrawn
from bank.contracts import AccountOpened

OPENED = AccountOpened(account_id="acc-1", owner="Ada")


def test_a_deposit_raises_the_balance() -> None:
    account = (
        AggregateSpec(Account, "acc-1")
        .given(OPENED)
        .when(lambda account: account.deposit(5000))
        .then(MoneyDeposited(account_id="acc-1", amount=5000))
    )
    assert account.balance == 5000


def test_no_withdrawal_beyond_the_balance() -> None:
    (
        AggregateSpec(Account, "acc-1")
        .given(OPENED, MoneyDeposited(account_id="acc-1", amount=5000))
        .when(lambda account: account.withdraw(8000))
        .then_raises(InsufficientFunds)
    )


def test_a_withdrawal_within_the_balance() -> None:
    (
        AggregateSpec(Account, "acc-1")
        .given(OPENED, MoneyDeposited(account_id="acc-1", amount=5000))
        .when(lambda account: account.withdraw(5000))
        .then(MoneyWithdrawn(account_id="acc-1", amount=5000))
    )
