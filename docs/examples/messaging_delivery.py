"""Event delivery, transactions and the not-found error, as docs/messaging.md describes them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from dockyard import App, module, scoped
from dockyard.exceptions import HandlerNotFoundError
from dockyard.messaging import (
    Command,
    CommandHandler,
    Event,
    EventDelivery,
    EventHandler,
    IPublisher,
    MessagingSettings,
    TransactionalBehavior,
    UnitOfWork,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderPlaced(Event):
    order_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpressOrderPlaced(OrderPlaced):
    courier: str


RAN: list[str] = []


class Audit(EventHandler[OrderPlaced]):  # also receives ExpressOrderPlaced (a subclass)
    async def handle(self, event: OrderPlaced, /) -> None:
        RAN.append(f"audit {type(event).__name__}")


class BookCourier(EventHandler[ExpressOrderPlaced]):
    async def handle(self, event: ExpressOrderPlaced, /) -> None:
        await asyncio.sleep(0)
        RAN.append(f"courier {event.courier}")


class FailsOne(EventHandler[ExpressOrderPlaced]):
    async def handle(self, event: ExpressOrderPlaced, /) -> None:
        raise ValueError("no courier today")


class Ledger:
    """A unit of work that records what happened to it."""

    def __init__(self) -> None:
        self.log: list[str] = []

    async def commit(self) -> None:
        self.log.append("commit")

    async def rollback(self) -> None:
        self.log.append("rollback")


LEDGERS: list[Ledger] = []


def make_ledger() -> UnitOfWork:
    ledger = Ledger()
    LEDGERS.append(ledger)
    return ledger


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaceOrder(Command[str]):
    express: bool


class PlaceOrderHandler(CommandHandler[PlaceOrder, str]):
    def __init__(self, events: IPublisher) -> None:
        self.events = events

    async def handle(self, request: PlaceOrder, /) -> str:
        event = ExpressOrderPlaced(order_id="o1", courier="bike") if request.express else None
        await self.events.publish(event or OrderPlaced(order_id="o1"))
        return "o1"


@module(
    providers=[scoped(UnitOfWork, make_ledger)],
    handlers=[PlaceOrderHandler, Audit, BookCourier, FailsOne],
)
class Shop: ...


async def main() -> None:
    settings = MessagingSettings(
        # Concurrent for this event type (and its subclasses): every handler runs.
        event_delivery_for={ExpressOrderPlaced: EventDelivery(concurrent=True, limit=4)},
        message_behaviors={Command: [TransactionalBehavior]},
    )
    async with App.build(Shop, messaging=settings) as app:
        # Sequential by default: the base event's handlers only.
        assert await app.send(PlaceOrder(express=False)) == "o1"
        assert RAN == ["audit OrderPlaced"]
        assert LEDGERS[-1].log == ["commit"]

        # Concurrent: all three run; the failure comes back in an ExceptionGroup, and the
        # command's unit of work rolls back.
        RAN.clear()
        try:
            await app.send(PlaceOrder(express=True))
        except ExceptionGroup as group:
            assert [str(e) for e in group.exceptions] == ["no courier today"]
        else:
            raise AssertionError("the failing handler's error should propagate")
        assert sorted(RAN) == ["audit ExpressOrderPlaced", "courier bike"]
        assert LEDGERS[-1].log == ["rollback"]

        # A request nobody handles names itself and suggests what is registered.
        @dataclass(frozen=True, slots=True, kw_only=True)
        class PlaceOrders(Command[str]):
            pass

        try:
            await app.send(PlaceOrders())
        except HandlerNotFoundError as exc:
            assert "PlaceOrder" in str(exc)
        else:
            raise AssertionError("an unhandled request must raise HandlerNotFoundError")


if __name__ == "__main__":
    asyncio.run(main())
