"""Checked by mypy (not run): what users see when they send, stream and publish.

Each ``assert_type`` fails type checking if inference changes; each ``type: ignore[...]``
fails it (warn_unused_ignores) if mypy stops rejecting the misuse next to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import assert_type

from dockyard import App
from dockyard.messaging import (
    Command,
    Event,
    IMessageBus,
    IPublisher,
    ISender,
    Query,
    Request,
    StreamRequest,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaceOrder(Command[str]):
    customer: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GetTotal(Query[float]):
    order_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ListLines(StreamRequest[int]):
    order_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderPlaced(Event):
    order_id: str


async def with_sender(sender: ISender) -> None:
    assert_type(await sender.send(PlaceOrder(customer="c")), str)
    assert_type(await sender.send(GetTotal(order_id="o")), float)
    assert_type(sender.stream(ListLines(order_id="o")), AsyncIterator[int])
    async for line in sender.stream(ListLines(order_id="o")):
        assert_type(line, int)
    await sender.send(OrderPlaced(order_id="o"))  # type: ignore[arg-type]
    sender.stream(PlaceOrder(customer="c"))  # type: ignore[arg-type]


async def with_bus(bus: IMessageBus, publisher: IPublisher) -> None:
    assert_type(await bus.send(PlaceOrder(customer="c")), str)
    assert_type(await bus.publish(OrderPlaced(order_id="o")), None)
    assert_type(await publisher.publish(OrderPlaced(order_id="o")), None)
    publisher.send(PlaceOrder(customer="c"))  # type: ignore[attr-defined]
    narrowest: ISender = bus
    assert_type(narrowest, ISender)


async def with_app(app: App) -> None:
    assert_type(await app.send(PlaceOrder(customer="c")), str)
    assert_type(await app.send(GetTotal(order_id="o")), float)
    async for line in app.stream(ListLines(order_id="o")):
        assert_type(line, int)
    await app.publish(OrderPlaced(order_id="o"))


def covariance(request: Request[bool]) -> Request[int]:
    return request  # bool is an int, so a Request[bool] is a Request[int]
