"""Chain of responsibility: links tried in registration order, each answers or passes on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from dockyard import App, module
from dockyard.exceptions import ChainExhaustedError
from dockyard.messaging import ChainHandler, Command


@dataclass(frozen=True, slots=True, kw_only=True)
class Pay(Command[str]):
    method: str


class CardPayment(ChainHandler[Pay, str]):
    async def handle(self, request: Pay, call_next: Callable[[], Awaitable[str]], /) -> str:
        if request.method == "card":
            return "paid by card"
        return await call_next()


class WalletPayment(ChainHandler[Pay, str]):
    async def handle(self, request: Pay, call_next: Callable[[], Awaitable[str]], /) -> str:
        if request.method in {"wallet", "card"}:
            return "paid by wallet"
        return f"{await call_next()} (wallet declined)"


class Fallback(ChainHandler[Pay, str]):
    async def handle(self, request: Pay, call_next: Callable[[], Awaitable[str]], /) -> str:
        return "invoice sent"


@module(handlers=[CardPayment, WalletPayment])
class Payments: ...


@module(imports=[Payments], handlers=[Fallback])
class Root: ...


async def test_first_link_that_answers_wins() -> None:
    async with App.build(Root) as app:
        assert await app.send(Pay(method="card")) == "paid by card"
        assert await app.send(Pay(method="wallet")) == "paid by wallet"
        assert await app.send(Pay(method="cash")) == "invoice sent (wallet declined)"
    chain = app.messages.get(Pay)
    assert chain is not None
    assert chain.kind == "chain"
    assert [(h.handler, h.module) for h in chain.handlers] == [
        (CardPayment, "Payments"),
        (WalletPayment, "Payments"),
        (Fallback, "Root"),
    ]


async def test_every_link_passing_raises() -> None:
    async with App.build(Payments) as app:
        with pytest.raises(ChainExhaustedError) as caught:
            await app.send(Pay(method="cash"))
    assert str(caught.value) == (
        "Every handler in the chain for `Pay` passed it on (`CardPayment` → `WalletPayment`). "
        "Hint: end the chain with a handler that always answers."
    )
    assert isinstance(caught.value, LookupError)
