"""The bank's HTTP API: each route sends one message; dockyard does the rest."""

from dockyard import App, ISender
from dockyard.integrations.fastapi import FromDockyard, setup_dockyard
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from bank.accounts.application import Deposit, OpenAccount, Withdraw
from bank.accounts.read_model import AccountView, GetAccount
from bank.app import bank_app


class NewAccount(BaseModel):
    account_id: str = Field(min_length=1, max_length=64)
    owner: str = Field(min_length=1, max_length=200)


class Amount(BaseModel):
    amount: int = Field(gt=0)  # in cents


class Balance(BaseModel):
    balance: int


def create_web(app: App) -> FastAPI:
    web = FastAPI(title="bank")
    setup_dockyard(web, app)  # the app starts and stops with the server; a scope per request

    @web.post("/accounts", status_code=201)
    async def open_account(new: NewAccount, sender: FromDockyard[ISender]) -> NewAccount:
        await sender.send(OpenAccount(account_id=new.account_id, owner=new.owner))
        return new

    @web.post("/accounts/{account_id}/deposits")
    async def deposit(account_id: str, body: Amount, sender: FromDockyard[ISender]) -> Balance:
        balance = await sender.send(Deposit(account_id=account_id, amount=body.amount))
        return Balance(balance=balance)

    @web.post("/accounts/{account_id}/withdrawals")
    async def withdraw(account_id: str, body: Amount, sender: FromDockyard[ISender]) -> Balance:
        balance = await sender.send(Withdraw(account_id=account_id, amount=body.amount))
        return Balance(balance=balance)

    @web.get("/accounts/{account_id}")
    async def get_account(account_id: str, sender: FromDockyard[ISender]) -> AccountView:
        view = await sender.send(GetAccount(account_id=account_id))
        if view is None:  # unknown, or not projected yet: the read model lags a little
            raise HTTPException(404, f"No account {account_id} in the read model (yet).")
        return view

    return web


def main() -> FastAPI:
    """What ``uvicorn --factory bank.web:main`` serves."""
    return create_web(bank_app())
