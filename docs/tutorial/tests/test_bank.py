"""The bank app on a database of each test's own, with the in-memory transport."""

import asyncio

import httpx
import sqlalchemy as sa
from dockyard import App
from dockyard.outbox import OutboxStatus, OutboxStore
from dockyard.sql import Database
from dockyard.testing import wait_for_projections
from dockyard.transport.memory import InMemoryTransport

from bank.accounts.application import Deposit, OpenAccount, Withdraw
from bank.accounts.read_model import AccountView, GetAccount
from bank.notifications.welcome import sent_messages
from bank.settings import Settings
from bank.web import create_web


async def test_opening_an_account_leaves_a_message_in_the_outbox(bank: App) -> None:
    await bank.send(OpenAccount(account_id="acc-1", owner="Ada"))
    outbox = await bank.get(OutboxStore)
    assert (await outbox.counts())[OutboxStatus.PENDING] == 1  # sent by the worker's relay


async def test_the_read_model_follows_the_events(bank: App) -> None:
    await bank.send(OpenAccount(account_id="acc-1", owner="Ada"))
    assert await bank.send(Deposit(account_id="acc-1", amount=5000)) == 5000
    assert await bank.send(Withdraw(account_id="acc-1", amount=1500)) == 3500
    await wait_for_projections(bank)  # catch-up projections run in the worker, not here
    assert await bank.send(GetAccount(account_id="acc-1")) == AccountView("acc-1", "Ada", 3500)


async def test_the_api_answers_refusals_with_problem_details(bank: App) -> None:
    web = create_web(bank)
    transport = httpx.ASGITransport(app=web)
    async with (
        web.router.lifespan_context(web),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        opened = await client.post("/accounts", json={"account_id": "acc-1", "owner": "Ada"})
        assert opened.status_code == 201
        refused = await client.post("/accounts/acc-1/withdrawals", json={"amount": 100})
        assert refused.status_code == 409
        assert refused.json()["detail"] == "The balance is 0, 100 was asked for."
        unknown = await client.post("/accounts/acc-2/deposits", json={"amount": 100})
        assert unknown.status_code == 404


async def test_notifications_welcome_each_new_customer(
    bank: App, notifications: App, transport: InMemoryTransport, dockyard_database: Database
) -> None:
    await transport.declare(Settings().notifications_destination, "notifications")
    await bank.send(OpenAccount(account_id="acc-1", owner="Ada"))
    stop = asyncio.Event()  # both workers: the bank's relay, the notifications consumer
    workers = [asyncio.create_task(app.run_worker(stop=stop)) for app in (bank, notifications)]
    try:
        async with asyncio.timeout(30), dockyard_database.engine.connect() as connection:
            query = sa.select(sent_messages.c.account_id, sent_messages.c.text)
            while not (sent := (await connection.execute(query)).all()):
                await connection.rollback()  # end the snapshot: see the consumer's commit
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*workers)
    assert [tuple(row) for row in sent] == [("acc-1", "Welcome to the bank, Ada!")]
