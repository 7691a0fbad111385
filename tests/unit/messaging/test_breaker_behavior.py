"""``CircuitBreakerBehavior``: a handler behind an open breaker is not called."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dockyard import App, module
from dockyard.exceptions import CircuitOpenError, MessagingError
from dockyard.messaging import (
    CircuitBreakerBehavior,
    Command,
    CommandHandler,
    MessagingSettings,
    Query,
    QueryHandler,
)
from dockyard.retry import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


GATEWAY = {"up": False, "calls": 0}


@dataclass(frozen=True, slots=True)
class Charge(Command[str]):
    order_id: str


class ChargeHandler(CommandHandler[Charge, str]):
    async def handle(self, request: Charge, /) -> str:
        GATEWAY["calls"] += 1
        if not GATEWAY["up"]:
            raise ConnectionError("gateway down")
        return f"charged {request.order_id}"


@dataclass(frozen=True, slots=True)
class Balance(Query[int]):
    pass


class BalanceHandler(QueryHandler[Balance, int]):
    async def handle(self, request: Balance, /) -> int:
        return 42


@module(handlers=[ChargeHandler, BalanceHandler])
class Payments: ...


async def test_an_open_breaker_fails_fast_then_a_probe_closes_it() -> None:
    GATEWAY.update(up=False, calls=0)
    clock = FakeClock()
    breaker = CircuitBreaker("gateway", failure_threshold=2, reset_after=60, clock=clock)
    settings = MessagingSettings(
        handler_behaviors={ChargeHandler: [CircuitBreakerBehavior(breaker)]}
    )
    async with App.build(Payments, messaging=settings) as app:
        for _ in range(2):
            with pytest.raises(ConnectionError, match="gateway down"):
                await app.send(Charge("o-1"))
        with pytest.raises(CircuitOpenError) as raised:
            await app.send(Charge("o-1"))
        assert GATEWAY["calls"] == 2  # the handler was not called while open
        assert isinstance(raised.value, MessagingError)
        assert raised.value.breaker == "gateway"
        assert await app.send(Balance()) == 42  # other handlers are not behind it

        clock.now += 60  # half-open: the next call is the probe
        GATEWAY["up"] = True
        assert await app.send(Charge("o-2")) == "charged o-2"
        assert breaker.state() is BreakerState.CLOSED
        assert await app.send(Charge("o-3")) == "charged o-3"
        info = app.messages.get(Charge)
        assert info is not None
        assert info.handlers[0].behaviors == ("CircuitBreakerBehavior",)
    assert GATEWAY["calls"] == 4


async def test_a_failed_probe_opens_it_again() -> None:
    GATEWAY.update(up=False, calls=0)
    clock = FakeClock()
    breaker = CircuitBreaker("gateway", failure_threshold=1, reset_after=60, clock=clock)
    settings = MessagingSettings(message_behaviors={Charge: [CircuitBreakerBehavior(breaker)]})
    async with App.build(Payments, messaging=settings) as app:
        with pytest.raises(ConnectionError):
            await app.send(Charge("o-1"))
        clock.now += 60
        with pytest.raises(ConnectionError):  # the probe reaches the handler, and fails
            await app.send(Charge("o-1"))
        with pytest.raises(CircuitOpenError):
            await app.send(Charge("o-1"))
    assert GATEWAY["calls"] == 2
    assert breaker.retry_in() == 60
