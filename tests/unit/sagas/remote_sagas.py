"""A checkout saga with a remote step, the shipping service that answers it (in the same app,
behind its own consumer), and helpers that play the relay and the broker by hand."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from dockyard import App, Command, CommandHandler, module, object_
from dockyard.consumer import Consumer, ConsumerModule, Outcome, listen
from dockyard.messaging import Event, MessageContext
from dockyard.modules import DynamicModule, ModuleLike
from dockyard.outbox import Outbox, OutboxMessage, OutboxModule, OutboxStore
from dockyard.outbox.memory import InMemoryOutboxBackend
from dockyard.retry import RetryPolicy
from dockyard.sagas import (
    RemoteStep,
    Saga,
    SagaBackend,
    SagaControl,
    SagaRecord,
    Sagas,
    SagaSettings,
    SagasModule,
    SagaStep,
    remote,
    step,
)
from dockyard.sql import SqlOutboxBackend, SqlSagaBackend
from dockyard.transport import Delivery, TransportMessage
from dockyard.transport.memory import InMemoryTransport

REPLIES = "checkout-replies"


@dataclass
class Order:
    order_id: str
    done: list[str] = field(default_factory=list)
    tracking: str | None = None


@dataclass(frozen=True)
class ShipOrder(Command[None]):
    order_id: str


@dataclass(frozen=True)
class Shipped(Event):
    order_id: str
    tracking: str


@dataclass(frozen=True)
class ShipmentRefused(Event):
    order_id: str
    reason: str


@dataclass
class Shipping:
    """The shipping service's side: the idempotency keys it was sent, refusals to give."""

    keys: list[str] = field(default_factory=list)
    refuse: int = 0


class ShipOrderHandler(CommandHandler[ShipOrder, None]):
    """Answers while it handles the command: the reply inherits the command's headers."""

    def __init__(self, outbox: Outbox, shipping: Shipping, context: MessageContext) -> None:
        self._outbox = outbox
        self._shipping = shipping
        self._context = context

    async def handle(self, command: ShipOrder, /) -> None:
        self._shipping.keys.append(self._context.headers["idempotency-key"])
        reply: Event = Shipped(command.order_id, f"t-{command.order_id}")
        if self._shipping.refuse:
            self._shipping.refuse -= 1
            reply = ShipmentRefused(command.order_id, "no stock")
        await self._outbox.add(reply, destination=REPLIES)


class Reserve(SagaStep[Order]):
    async def act(self, state: Order) -> None:
        state.done.append("reserve")

    async def compensate(self, state: Order) -> None:
        state.done.append("undo reserve")


class RequestShipment(RemoteStep[Order]):
    failures_left = 0
    """``on_reply`` raises this many more times."""

    async def command(self, state: Order) -> object:
        state.done.append("not kept")  # the state changes are on_reply's
        return ShipOrder(state.order_id)

    async def on_reply(self, state: Order, reply: Shipped) -> None:
        state.tracking = reply.tracking
        if RequestShipment.failures_left:
            RequestShipment.failures_left -= 1
            raise RuntimeError("on_reply failed")
        state.done.append("shipped")


class Notify(SagaStep[Order]):
    async def act(self, state: Order) -> None:
        state.done.append("notify")


NO_WAIT = RetryPolicy(max_attempts=2, initial_delay=0.0, jitter=False)


def order_saga(timeout: float = 3600.0) -> Saga[Order]:
    return Saga(
        "order",
        version=1,
        state=Order,
        steps=[
            step("reserve", Reserve),
            remote(
                "ship",
                RequestShipment,
                destination="shipping",
                replies=[Shipped],
                failures=[ShipmentRefused],
                timeout=timeout,
            ),
            step("notify", Notify),
        ],
        retry=NO_WAIT,
    )


ORDER = order_saga()


def shop(
    shipping: Shipping,
    saga: Saga[Order] = ORDER,
    *,
    sql: DynamicModule | None = None,
    saga_backend: SagaBackend | None = None,
) -> App:
    """The shop (saga, reply consumer) and the shipping service (command consumer) in one app,
    in memory or on ``sql``; the relay does not run (tests hand messages over)."""
    imports: list[ModuleLike] = [] if sql is None else [sql]
    outbox = OutboxModule.register(
        transport=InMemoryTransport(),
        backend=InMemoryOutboxBackend() if sql is None else SqlOutboxBackend(),
        run_relay=False,
    )
    consumers = ConsumerModule.register(
        endpoints=[listen(REPLIES, group="shop"), listen("shipping", group="shipping")]
    )
    sagas = SagasModule.register(
        sagas=[saga],
        backend=SqlSagaBackend() if sql is not None else saga_backend,
        imports=imports,
        settings=SagaSettings(max_poll_interval=0.02),
    )

    @module(
        imports=[*imports, outbox, consumers, sagas],
        providers=[object_(shipping)],
        handlers=[ShipOrderHandler],
    )
    class Root: ...

    return App.build(Root)


async def start(app: App, order_id: str, saga: Saga[Order] = ORDER) -> None:
    async with app.scope() as scope:
        await (await scope.get(Sagas)).start(saga, Order(order_id), saga_id=order_id)


async def run_due(app: App) -> None:
    await (await app.get(SagaControl)).run_due()


async def instance(app: App, order_id: str) -> SagaRecord:
    return await (await app.get(SagaControl)).get(order_id)


async def sent(app: App) -> list[OutboxMessage]:
    """The outbox's pending messages, taken as a relay takes them (and marked delivered)."""
    store = await app.get(OutboxStore)
    async with store.claim(100, time.time()) as batch:
        messages = list(batch.messages)
        await batch.delivered([m.message_id for m in messages], time.time())
    return messages


class HandedDelivery(Delivery):
    def __init__(self, message: TransportMessage) -> None:
        self._message = message

    @property
    def message(self) -> TransportMessage:
        return self._message

    @property
    def attempt(self) -> int:
        return 1

    async def ack(self) -> None:
        pass

    async def nack(self, *, delay: float = 0.0) -> None:
        pass


async def deliver(app: App, messages: Sequence[OutboxMessage]) -> list[Outcome]:
    """Hand each message to the app's consumer of its destination."""
    consumers: dict[str, Consumer] = {}
    for service in app.background_services():
        if service.name.startswith("consumer:"):
            built = await service.build()  # type: ignore[attr-defined]
            consumers[built.endpoint.destination] = built
    return [
        await consumers[m.destination].handle(HandedDelivery(m.to_transport())) for m in messages
    ]
