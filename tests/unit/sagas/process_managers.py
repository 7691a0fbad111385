"""A fulfilment process manager shared by the process manager tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from dockyard.sagas import (
    Process,
    ProcessHandler,
    ProcessManager,
    handles,
    on_timeout,
    starts,
)

TIMEOUTS = "fulfilment-timeouts"


@dataclass(frozen=True, slots=True)
class OrderPlaced:
    order_id: str
    pay_within: float | None = None
    fail: bool = False


@dataclass(frozen=True, slots=True)
class PaymentReceived:
    order_id: str
    amount: int


@dataclass(frozen=True, slots=True)
class OrderShipped:
    order_id: str


@dataclass(frozen=True, slots=True)
class PaymentOverdue:
    order_id: str


@dataclass
class Fulfilment:
    order_id: str = ""
    paid: int = 0
    log: list[str] = field(default_factory=list)


class OnOrderPlaced(ProcessHandler[OrderPlaced, Fulfilment]):
    async def handle(self, message: OrderPlaced, process: Process[Fulfilment]) -> None:
        process.state.order_id = message.order_id
        process.state.log.append("placed" if process.created else "placed again")
        if message.pay_within is not None:
            process.set_timeout(PaymentOverdue(message.order_id), after=message.pay_within)
        if message.fail:
            raise RuntimeError("the order could not be placed")


class OnPaymentReceived(ProcessHandler[PaymentReceived, Fulfilment]):
    async def handle(self, message: PaymentReceived, process: Process[Fulfilment]) -> None:
        process.state.paid += message.amount
        process.state.log.append(f"paid {message.amount}")


class OnOrderShipped(ProcessHandler[OrderShipped, Fulfilment]):
    async def handle(self, message: OrderShipped, process: Process[Fulfilment]) -> None:
        process.state.log.append("shipped")
        process.complete()


class OnPaymentOverdue(ProcessHandler[PaymentOverdue, Fulfilment]):
    async def handle(self, message: PaymentOverdue, process: Process[Fulfilment]) -> None:
        process.state.log.append("overdue")
        process.complete()


def fulfilment(
    *, missing: str = "ignore", version: int = 1, compatible_with: tuple[int, ...] = ()
) -> ProcessManager[Fulfilment]:
    return ProcessManager(
        "fulfilment",
        version=version,
        compatible_with=compatible_with,
        state=Fulfilment,
        handlers=[
            starts(OrderPlaced, OnOrderPlaced, key="order_id"),
            handles(PaymentReceived, OnPaymentReceived, key=lambda m: m.order_id),
            handles(OrderShipped, OnOrderShipped, key="order_id"),
            on_timeout(PaymentOverdue, OnPaymentOverdue, key="order_id"),
        ],
        missing=missing,  # type: ignore[arg-type]  # the tests pass both literals
        timeout_destination=TIMEOUTS,
    )
