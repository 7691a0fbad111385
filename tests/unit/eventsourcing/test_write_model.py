"""Aggregates, deciders, repositories, conflict retries and given/when/then specs."""

import asyncio
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pytest

from dockyard import App, EventHandler, IPublisher, module, scoped
from dockyard.di import object_
from dockyard.eventsourcing import EventStore, retry_on_conflict
from dockyard.eventsourcing._aggregate import Aggregate, applies
from dockyard.eventsourcing._decider import Decider
from dockyard.eventsourcing._repository import AggregateRepository, DeciderRepository
from dockyard.eventsourcing.memory import InMemoryEventStore, InMemorySnapshotStore
from dockyard.exceptions import AggregateNotFoundError, ConcurrencyError, MissingApplierError
from dockyard.testing._specs import AggregateSpec, DeciderSpec, SpecFailedError


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderPlaced:
    order_id: str
    total_cents: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderShipped:
    order_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpressOrderShipped(OrderShipped):
    courier: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderNoted:
    note: str


class AlreadyShippedError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class OrderState:
    status: str
    total_cents: int


class Order(Aggregate):
    snapshot_type = OrderState

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.status = "new"
        self.total_cents = 0

    def place(self, total_cents: int) -> None:
        self.raise_event(OrderPlaced(order_id=self.id, total_cents=total_cents))

    def ship(self) -> None:
        if self.status == "shipped":
            raise AlreadyShippedError(self.id)
        self.raise_event(OrderShipped(order_id=self.id))

    @applies
    def _placed(self, event: OrderPlaced) -> None:
        self.status = "placed"
        self.total_cents = event.total_cents

    @applies(OrderShipped)
    def _shipped(self, event: OrderShipped) -> None:
        self.status = "shipped"

    def to_snapshot(self) -> OrderState:
        return OrderState(self.status, self.total_cents)

    @classmethod
    def from_snapshot(cls, aggregate_id: str, state: OrderState) -> "Order":
        order = cls(aggregate_id)
        order.status, order.total_cents = state.status, state.total_cents
        return order


class Orders(AggregateRepository[Order]):
    pass


class Recorder:
    def __init__(self) -> None:
        self.published: list[object] = []

    async def publish(self, event: object, /) -> None:
        self.published.append(event)


def test_given_when_then_for_an_aggregate() -> None:
    order = (
        AggregateSpec(Order, "o1")
        .given(OrderPlaced(order_id="o1", total_cents=500))
        .when(lambda o: o.ship())
        .then(OrderShipped(order_id="o1"))
    )
    assert order.status == "shipped"
    assert order.version == 1
    AggregateSpec(Order).given(
        OrderPlaced(order_id="o1", total_cents=1), OrderShipped(order_id="o1")
    ).when(lambda o: o.ship()).then_raises(AlreadyShippedError)


def test_specs_fail_with_both_sides_shown() -> None:
    with pytest.raises(SpecFailedError, match=r"expected events \[\] \(no events\)\n.*but got"):
        AggregateSpec(Order).when(lambda o: o.place(1)).then()
    with pytest.raises(SpecFailedError, match="expected AlreadyShippedError to be raised"):
        AggregateSpec(Order).when(lambda o: o.place(1)).then_raises(AlreadyShippedError)


def test_subclass_events_use_the_base_applier_and_unknown_events_fail_clearly() -> None:
    order = Order.replay("o1", [ExpressOrderShipped(order_id="o1", courier="bike")])
    assert order.status == "shipped"
    with pytest.raises(MissingApplierError) as info:
        Order.replay("o1", [OrderNoted(note="hi")])
    assert str(info.value) == (
        "`Order` has no method to apply `OrderNoted`. Hint: add to `Order` a method marked "
        "`@applies` that takes an `OrderNoted` (it may do nothing)."
    )


def test_an_applier_without_a_clear_event_type_is_refused() -> None:
    with pytest.raises(TypeError, match="its event type is unclear"):

        class Broken(Aggregate):
            @applies
            def _on(self, event) -> None:  # type: ignore[no-untyped-def]
                pass


async def test_repository_round_trip_publishes_after_append() -> None:
    store, recorder = InMemoryEventStore(), Recorder()
    orders = Orders(store, recorder)
    order = orders.create("o1")
    order.place(1200)
    result = await orders.save(order)
    assert result is not None
    assert (result.first_version, result.last_version) == (1, 1)
    assert recorder.published == [OrderPlaced(order_id="o1", total_cents=1200)]
    assert await orders.save(order) is None  # nothing pending

    loaded = await orders.get("o1")
    assert (loaded.status, loaded.total_cents, loaded.version) == ("placed", 1200, 1)
    loaded.ship()
    await orders.save(loaded)
    recorded = await store.read_stream("Order-o1")
    assert [r.stream_version for r in recorded] == [1, 2]

    with pytest.raises(AggregateNotFoundError, match="No `Order` with id `nope`"):
        await orders.get("nope")
    assert await orders.get_or_none("nope") is None


async def test_two_writers_on_one_version_one_wins() -> None:
    orders = Orders(InMemoryEventStore())
    order = orders.create("o1")
    order.place(10)
    await orders.save(order)
    first, second = await orders.get("o1"), await orders.get("o1")
    first.ship()
    await orders.save(first)
    second.ship()
    with pytest.raises(ConcurrencyError):
        await orders.save(second)


async def test_retry_reloads_and_commits_under_contention() -> None:
    store = InMemoryEventStore()
    orders = Orders(store)
    order = orders.create("o1")
    order.place(0)
    await orders.save(order)

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Tip:
        cents: int

    class Tipped(Order):
        stream_type = "Order"

        def tip(self, cents: int) -> None:
            self.raise_event(Tip(cents=cents))

        @applies(Tip)
        def _tip(self, event: Tip) -> None:
            self.total_cents += event.cents

    tipped = AggregateRepository(store, aggregate_type=Tipped)
    attempts: list[int] = []

    @retry_on_conflict(50, initial_delay=0.0005, max_delay=0.005)
    async def add_tip() -> None:
        attempts.append(1)
        current = await tipped.get("o1")
        await asyncio.sleep(0)  # let the other writers interleave
        current.tip(1)
        await tipped.save(current)

    await asyncio.gather(*(add_tip() for _ in range(10)))
    assert (await tipped.get("o1")).total_cents == 10
    assert len(attempts) > 10  # conflicts happened and were retried


async def test_retry_gives_up_after_the_last_attempt() -> None:
    calls: list[int] = []

    @retry_on_conflict(3, initial_delay=0, max_delay=0)
    async def always_conflicts() -> None:
        calls.append(1)
        raise ConcurrencyError("Order-o1", 1, 2)

    with pytest.raises(ConcurrencyError):
        await always_conflicts()
    assert len(calls) == 3
    with pytest.raises(ValueError, match=r"RetryPolicy\.max_attempts must be >= 1, got 0"):
        retry_on_conflict(0)


async def test_snapshots_every_n_events_and_fall_back_to_replay() -> None:
    store, snapshots = InMemoryEventStore(), InMemorySnapshotStore()
    orders = Orders(store, snapshots=snapshots, snapshot_every=2)
    order = orders.create("o1")
    order.place(300)
    await orders.save(order)
    assert await snapshots.load("Order-o1", OrderState) is None
    order.ship()
    await orders.save(order)
    snapshot = await snapshots.load("Order-o1", OrderState)
    assert snapshot is not None
    assert (snapshot.stream_version, snapshot.state) == (2, OrderState("shipped", 300))
    loaded = await orders.get("o1")
    assert (loaded.status, loaded.version) == ("shipped", 2)
    await snapshots.delete("Order-o1")
    replayed = await orders.get("o1")
    assert (replayed.status, replayed.version) == ("shipped", 2)


# -- the functional style ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AddItem:
    sku: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckOut:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemAdded:
    sku: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckedOut:
    items: int


@dataclass(frozen=True, slots=True)
class Cart:
    items: tuple[str, ...] = field(default=())
    checked_out: bool = False


class EmptyCartError(Exception):
    pass


Command = AddItem | CheckOut
Event = ItemAdded | CheckedOut


class CartDecider(Decider[Cart, Command, Event]):
    def initial_state(self) -> Cart:
        return Cart()

    def decide(self, command: Command, state: Cart) -> Sequence[Event]:
        if isinstance(command, AddItem):
            return [ItemAdded(sku=command.sku)]
        if not state.items:
            raise EmptyCartError
        return [CheckedOut(items=len(state.items))]

    def evolve(self, state: Cart, event: Event) -> Cart:
        if isinstance(event, ItemAdded):
            return replace(state, items=(*state.items, event.sku))
        return replace(state, checked_out=True)


def test_given_when_then_for_a_decider() -> None:
    state = (
        DeciderSpec(CartDecider())
        .given(ItemAdded(sku="a"), ItemAdded(sku="b"))
        .when(CheckOut())
        .then(CheckedOut(items=2))
    )
    assert state == Cart(items=("a", "b"), checked_out=True)
    DeciderSpec(CartDecider()).when(CheckOut()).then_raises(EmptyCartError)


async def test_decider_repository_with_snapshots() -> None:
    store, snapshots, recorder = InMemoryEventStore(), InMemorySnapshotStore(), Recorder()
    carts = DeciderRepository(CartDecider(), store, recorder, snapshots=snapshots, snapshot_every=2)
    assert carts.stream_id("c1") == "Cart-c1"
    await carts.handle("c1", AddItem(sku="a"))
    await carts.handle("c1", AddItem(sku="b"))
    assert await carts.handle("c1", CheckOut()) == [CheckedOut(items=2)]
    assert recorder.published[-1] == CheckedOut(items=2)
    snapshot = await snapshots.load("Cart-c1", Cart)
    assert snapshot is not None
    assert snapshot.stream_version == 2
    state, version = await carts.load("c1")
    assert (state, version) == (Cart(items=("a", "b"), checked_out=True), 3)


async def test_a_bare_repository_subclass_is_injectable_as_it_is() -> None:
    seen: list[object] = []

    class OnPlaced(EventHandler[OrderPlaced]):
        async def handle(self, event: OrderPlaced, /) -> None:
            seen.append(event)

    @module(
        providers=[object_(InMemoryEventStore(), provides=EventStore), scoped(Orders)],
        handlers=[OnPlaced],
    )
    class Root: ...

    async with App.build(Root) as app, app.scope() as scope:
        orders = await scope.get(Orders)
        order = orders.create("o1")
        order.place(700)
        await orders.save(order)
    assert seen == [OrderPlaced(order_id="o1", total_cents=700)]  # published via IPublisher
    shown = inspect.signature(Orders).parameters
    assert {name: p.annotation for name, p in shown.items()} == {
        "store": EventStore,
        "publisher": IPublisher,
    }


def test_a_repository_subclass_with_its_own_constructor_keeps_it() -> None:
    class Snapshotted(AggregateRepository[Order]):
        def __init__(self, store: EventStore, snapshots: InMemorySnapshotStore) -> None:
            super().__init__(store, snapshots=snapshots, snapshot_every=10)

    class Child(Snapshotted):
        pass

    assert list(inspect.signature(Child).parameters) == ["store", "snapshots"]
    assert Child(InMemoryEventStore(), InMemorySnapshotStore()).aggregate_type is Order
