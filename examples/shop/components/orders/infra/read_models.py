"""The orders component's read models: SQL tables kept up to date by projections.

- ``OrderSummaries`` is a catch-up projection: a worker follows the event log from its
  checkpoint, and writes the checkpoint in the same transaction as the rows.
- ``CustomerOrderCounts`` is inline: it runs in the transaction that places the order, so the
  count is never behind (and a failure would fail the command).
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, delete, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from dockyard import App
from dockyard.modules import OnAppInit
from dockyard.projections import Projection, handles
from dockyard.sql import Database, SqlUnitOfWork
from examples.shop.shared_kernel.events import OrderPaid, OrderPlaced

read_models = MetaData()

order_summaries = Table(
    "shop_order_summaries",
    read_models,
    Column("order_id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("total_cents", Integer, nullable=False),
    Column("status", String(16), nullable=False),
)

customer_order_counts = Table(
    "shop_customer_order_counts",
    read_models,
    Column("customer_id", String(64), primary_key=True),
    Column("orders", Integer, nullable=False),
)


class OrderSummaries(Projection):
    name = "order-summaries"

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self.uow = uow

    @handles
    async def placed(self, event: OrderPlaced) -> None:
        await self.uow.connection.execute(
            order_summaries.insert().values(
                order_id=event.order_id,
                customer_id=event.customer_id,
                total_cents=event.total_cents,
                status="placed",
            )
        )

    @handles
    async def paid(self, event: OrderPaid) -> None:
        await self.uow.connection.execute(
            update(order_summaries)
            .where(order_summaries.c.order_id == event.order_id)
            .values(status="paid")
        )

    async def reset(self) -> None:
        await self.uow.connection.execute(delete(order_summaries))


class CustomerOrderCounts(Projection):
    name = "customer-order-counts"

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self.uow = uow

    @handles
    async def placed(self, event: OrderPlaced) -> None:
        upsert = sqlite_insert(customer_order_counts).values(
            customer_id=event.customer_id, orders=1
        )
        await self.uow.connection.execute(
            upsert.on_conflict_do_update(
                index_elements=[customer_order_counts.c.customer_id],
                set_={"orders": customer_order_counts.c.orders + 1},
            )
        )


class SqlOrderReadModels:
    """Reads the two tables, on the scope's unit of work."""

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self.uow = uow

    async def summaries(self) -> list[tuple[str, str, int, str]]:
        rows = await self.uow.connection.execute(
            select(order_summaries).order_by(order_summaries.c.order_id)
        )
        return [(r.order_id, r.customer_id, r.total_cents, r.status) for r in rows]

    async def orders_of(self, customer_id: str) -> int:
        count = await self.uow.connection.scalar(
            select(customer_order_counts.c.orders).where(
                customer_order_counts.c.customer_id == customer_id
            )
        )
        return count or 0


class CreateReadModelTables(OnAppInit):
    """Creates the read-model tables at start-up (a real app uses its migrations)."""

    async def on_app_init(self, app: App) -> None:
        database = await app.get(Database)
        async with database.engine.begin() as connection:
            await connection.run_sync(read_models.create_all)
