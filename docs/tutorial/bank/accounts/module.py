"""The accounts component: it keeps its repository to itself and imports only the database."""

from dockyard import module, scoped
from dockyard.projections import ProjectionsModule
from dockyard.sql import SqlModule

from bank.accounts.application import (
    Accounts,
    DepositHandler,
    OpenAccountHandler,
    WithdrawHandler,
)
from bank.accounts.read_model import Balances, GetAccountHandler


@module(
    providers=[scoped(Accounts)],
    imports=[
        SqlModule,  # configured once, at the root: here it is imported by its class
        ProjectionsModule.register(projections=[Balances], imports=[SqlModule]),
    ],
    handlers=[OpenAccountHandler, DepositHandler, WithdrawHandler, GetAccountHandler],
)
class AccountsModule: ...
