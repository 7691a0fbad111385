"""Projections over the in-memory stores: declaration, catch-up, failures, inline, workers."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass

import pytest
from memory_projections import Deposited, MemoryStores, Renamed, Withdrawn

from dockyard.app import App
from dockyard.eventsourcing import ANY, EventStore, RecordedEvent
from dockyard.eventsourcing.memory import InMemoryEventStore
from dockyard.exceptions import (
    InvalidProjectionError,
    ProjectionFailedError,
    ProjectionNotFoundError,
    ProjectionResetError,
    ProjectionStateError,
    ProjectionsTimeoutError,
)
from dockyard.messaging import EventHandler
from dockyard.modules import module
from dockyard.projections import (
    CatchUpRunner,
    LeaseStore,
    Projection,
    ProjectionControl,
    ProjectionsModule,
    ProjectionState,
    RunnerSettings,
    handles,
)
from dockyard.projections.memory import InMemoryLeaseStore
from dockyard.retry import RetryPolicy
from dockyard.serialization import Serializer, TypeRegistry, event_type
from dockyard.testing import wait_for_projections


class Ledger:
    """A read model in memory, shared by the projection instances of one app."""

    def __init__(self) -> None:
        self.balances: dict[str, int] = defaultdict(int)
        self.positions: list[int] = []
        self.fail_on: set[int] = set()


class Balances(Projection):
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    @handles
    async def deposited(self, event: Deposited, recorded: RecordedEvent) -> None:
        if event.amount in self.ledger.fail_on:
            raise RuntimeError(f"cannot apply {event.amount}")
        self.ledger.balances[event.account] += event.amount
        self.ledger.positions.append(recorded.global_position)

    @handles(Withdrawn)
    async def withdrawn(self, event: Withdrawn) -> None:
        self.ledger.balances[event.account] -= event.amount

    async def reset(self) -> None:
        self.ledger.balances.clear()
        self.ledger.positions.clear()


class Names(Projection):
    name = "account-names"

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    @handles
    async def renamed(self, event: Renamed) -> None:
        self.ledger.balances[f"name:{event.name}"] = 1


class InlineBalances(Projection):
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    @handles
    async def deposited(self, event: Deposited) -> None:
        if event.amount in self.ledger.fail_on:
            raise RuntimeError(f"cannot apply {event.amount}")
        self.ledger.balances[event.account] += event.amount

    @handles
    async def withdrawn(self, event: Withdrawn) -> None:
        self.ledger.balances[event.account] -= event.amount


class Audit(EventHandler[Withdrawn]):
    seen: list[int] = []  # noqa: RUF012 - a class-level log, for the test

    async def handle(self, event: Withdrawn) -> None:
        self.seen.append(event.amount)


FAST = RunnerSettings(batch_size=4, lease_ttl=0.6, retry=RetryPolicy(3, 0.001))


def build(*, settings: RunnerSettings = FAST, inline: bool = False) -> tuple[App, Ledger]:
    ledger = Ledger()
    from dockyard.di import object_

    @module(providers=[object_(ledger)], exports=[Ledger])
    class ReadModels: ...

    projections = ProjectionsModule.register(
        projections=[] if inline else [Balances, Names],
        subscriptions=[] if inline else [Audit],
        inline=[InlineBalances] if inline else [],
        imports=[MemoryStores, ReadModels],
        settings=settings,
    )

    @module(imports=[MemoryStores, projections])
    class Root: ...

    return App.build(Root), ledger


async def holder_of(app: App, name: str) -> str:
    """The owner of ``name``'s lease, once a runner holds it (runners start asynchronously)."""
    leases: LeaseStore = await (await app.get(ProjectionControl)).singleton(LeaseStore)
    async with asyncio.timeout(2):
        while (lease := await leases.holder(name)) is None:  # noqa: ASYNC110 - polls a store
            await asyncio.sleep(0.005)
    return lease.owner


async def append(app: App, *events: object, stream: str = "Account-1") -> None:
    store = await app.get(EventStore)
    await store.append(stream, list(events), ANY)


async def test_catch_up_applies_every_handled_event_once_in_order() -> None:
    Audit.seen.clear()
    app, ledger = build()
    async with app:
        await append(app, *(Deposited("a", i) for i in range(1, 11)), Withdrawn("a", 5))
        await append(app, Renamed("a", "Ada"), stream="Account-2")
        await wait_for_projections(app)
        await wait_for_projections(app)  # nothing new: returns at once, applies nothing again
        assert ledger.balances == {"a": 50, "name:Ada": 1}
        assert ledger.positions == list(range(1, 11))
        assert Audit.seen == [5]
        control = await app.get(ProjectionControl)
        assert control.names == ["Balances", "account-names", "Audit"]
        statuses = {s.name: s for s in await control.status()}
        # Balances and Audit handle nothing at position 12, yet they are at the head
        assert {s.position for s in statuses.values()} == {12}
        assert {s.lag for s in statuses.values()} == {0}
        assert {s.state for s in statuses.values()} == {ProjectionState.STOPPED}


async def test_a_failing_event_parks_after_its_retries_and_can_be_skipped() -> None:
    app, ledger = build()
    ledger.fail_on.add(3)
    async with app:
        await append(app, *(Deposited("a", i) for i in range(1, 7)))
        with pytest.raises(ProjectionFailedError) as info:
            await wait_for_projections(app)
        assert str(info.value) == (
            "Projection `Balances` is parked at global position 3 after 3 failed attempts: "
            "RuntimeError: cannot apply 3. Hint: fix the handler, then "
            "`await control.retry('Balances')`, or `await control.skip('Balances')` to move "
            "past that one event."
        )
        # memory cannot roll back: the events before the culprit stay applied, exactly once
        assert ledger.positions == [1, 2]
        control = await app.get(ProjectionControl)
        status = await control.status_of("Balances")
        assert (status.state, status.position, status.failed_position) == (
            ProjectionState.FAILED,
            2,
            3,
        )
        await control.skip("Balances")
        await wait_for_projections(app)
        assert ledger.positions == [1, 2, 4, 5, 6]
        with pytest.raises(ProjectionStateError, match="not parked"):
            await control.skip("Balances")


async def test_retry_tries_the_parked_event_again() -> None:
    app, ledger = build()
    ledger.fail_on.add(2)
    async with app:
        await append(app, Deposited("a", 1), Deposited("a", 2))
        with pytest.raises(ProjectionFailedError):
            await wait_for_projections(app)
        ledger.fail_on.clear()
        control = await app.get(ProjectionControl)
        await control.retry("Balances")
        await wait_for_projections(app)
        assert ledger.balances["a"] == 3
        with pytest.raises(ProjectionStateError) as info:
            await control.retry("Balances")
        assert str(info.value) == (
            "Cannot retry projection `Balances`: it is not parked on a failed event. Hint: "
            "check `await control.status()` first; only a projection in state `failed` can be "
            "retried or skipped."
        )


@event_type("Deposited")
@dataclass(frozen=True, slots=True)
class DepositedByAnotherWriter:
    """Stored under the app's ``Deposited`` name, in a shape the app cannot decode."""

    account: str
    amount: str


@event_type("Deposited", schema_version=2)
@dataclass(frozen=True, slots=True)
class DepositedByNewerCode:
    account: str
    amount: int


@pytest.mark.parametrize(
    ("unreadable", "reason"),
    [
        (DepositedByAnotherWriter("a", "three"), "CorruptEventError: Stored event `Deposited`"),
        (DepositedByNewerCode("a", 3), "MissingUpcasterError: Event `Deposited`"),
    ],
    ids=["corrupt", "newer-schema"],
)
async def test_an_event_that_cannot_be_read_parks_the_projection_that_meets_it(
    unreadable: object, reason: str
) -> None:
    app, ledger = build()
    async with app:
        store = await app.get(EventStore)
        assert isinstance(store, InMemoryEventStore)
        other_writer = store.using(Serializer(TypeRegistry([type(unreadable)])))
        await append(app, Deposited("a", 1), Deposited("a", 2))
        await other_writer.append("Account-1", [unreadable], ANY)
        await append(app, Deposited("a", 4), Withdrawn("a", 1))
        with pytest.raises(ProjectionFailedError) as info:
            await wait_for_projections(app)
        error = info.value
        assert (error.name, error.position, error.attempts) == ("Balances", 3, 0)
        assert str(error).startswith(
            f"Projection `Balances` is parked at global position 3: its event cannot be read: "
            f"{reason}"
        )
        assert str(error).endswith(
            "Hint: make it readable (register its type, add an upcaster, deploy the code "
            "that wrote it, or repair the row), then `await control.retry('Balances')`, or "
            "`await control.skip('Balances')` to move past that one event."
        )
        assert str(error).count("Hint:") == 1
        # the events before it are applied, none after it: nothing is skipped silently
        assert ledger.positions == [1, 2]
        control = await app.get(ProjectionControl)
        status = await control.status_of("Balances")
        assert (status.state, status.position, status.failed_position, status.attempts) == (
            ProjectionState.FAILED,
            2,
            3,
            0,
        )
        assert status.error is not None
        assert status.error.startswith(reason)
        # a retry reads it again and parks again: never a loop with no status
        await control.retry("Balances")
        with pytest.raises(ProjectionFailedError):
            await wait_for_projections(app)
        assert (await control.status_of("Balances")).failed_position == 3
        await control.skip("Balances")
        await wait_for_projections(app)
        assert ledger.positions == [1, 2, 4]
        assert ledger.balances["a"] == 1 + 2 + 4 - 1


async def test_rebuild_resets_the_read_model_and_replays() -> None:
    app, ledger = build()
    async with app:
        await append(app, Deposited("a", 1), Deposited("a", 2))
        await wait_for_projections(app)
        control = await app.get(ProjectionControl)
        await control.rebuild("Balances")
        assert ledger.balances == {}
        assert (await control.progress("Balances")).remaining == 2
        await wait_for_projections(app)
        assert ledger.positions == [1, 2]
        with pytest.raises(ProjectionResetError) as info:
            await control.rebuild("account-names")
        assert str(info.value) == (
            "Projection `account-names` cannot be rebuilt: `Names` has no `reset()` to clear "
            "its read model, so replaying from position 0 would apply every event twice. "
            "Hint: override `async def reset(self) -> None` in `Names` to delete its rows."
        )
        with pytest.raises(ProjectionNotFoundError) as missing:
            await control.status_of("Balance")
        assert str(missing.value) == (
            "No catch-up projection named `Balance` is registered (registered: `Balances`, "
            "`account-names`, `Audit`). Hint: list it in `ProjectionsModule.register("
            "projections=[...])` or `subscriptions=[...]`; inline projections have no "
            "checkpoint to operate on."
        )


async def test_background_runners_follow_the_log_and_stop_releasing_their_lease() -> None:
    app, ledger = build()
    async with app:
        stop = asyncio.Event()
        services = [s for s in app.background_services() if isinstance(s, CatchUpRunner)]
        assert [s.name for s in services] == ["Balances", "account-names", "Audit"]
        tasks = [asyncio.create_task(s.run(stop)) for s in services]
        assert await holder_of(app, "Balances") == services[0].owner
        await append(app, Deposited("a", 7))
        await wait_for_projections(app)
        assert ledger.balances["a"] == 7
        control = await app.get(ProjectionControl)
        status = await control.status_of("Balances")
        assert status.state is ProjectionState.RUNNING
        assert status.owner is not None
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 2)
        leases = await control.singleton(LeaseStore)
        assert await leases.holder("Balances") is None


async def test_a_second_runner_stands_by_until_the_first_stops() -> None:
    app, ledger = build()
    async with app:
        first_stop, second_stop = asyncio.Event(), asyncio.Event()
        first, second = (next(iter(app.background_services())) for _ in range(2))
        assert isinstance(first, CatchUpRunner)
        assert isinstance(second, CatchUpRunner)
        first_task = asyncio.create_task(first.run(first_stop))
        assert await holder_of(app, "Balances") == first.owner
        second_task = asyncio.create_task(second.run(second_stop))
        await append(app, Deposited("a", 1))
        await wait_for_projections(app)
        leases = await (await app.get(ProjectionControl)).singleton(LeaseStore)
        holder = await leases.holder("Balances")
        assert holder is not None
        assert holder.owner == first.owner
        first_stop.set()
        await first_task
        # the standby asks every ttl / 3 and gets the lease, released on stop, at once
        async with asyncio.timeout(FAST.lease_ttl):
            while await holder_of(app, "Balances") != second.owner:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await append(app, Deposited("a", 2))
        await wait_for_projections(app)
        assert ledger.positions == [1, 2]
        second_stop.set()
        await second_task


async def test_a_cancelled_runner_waits_for_no_renewal_nor_release(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A second signal cancels it: a lease store that does not answer any more (a stalled
    database) must not hold it up; the lease is left to expire."""
    app, _ = build()
    async with app:
        runner = next(iter(app.background_services()))
        assert isinstance(runner, CatchUpRunner)
        task = asyncio.create_task(runner.run(asyncio.Event()))
        assert await holder_of(app, "Balances") == runner.owner
        renewing = asyncio.Event()

        async def hang(*_: object) -> bool:
            renewing.set()
            await asyncio.Event().wait()
            return True

        monkeypatch.setattr(InMemoryLeaseStore, "acquire", hang)
        monkeypatch.setattr(InMemoryLeaseStore, "release", hang)
        await asyncio.wait_for(renewing.wait(), 5)  # the heartbeat is stuck in a renewal
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5)
        assert task in done, "the cancelled runner waited for the stalled lease store"
        assert task.cancelled()


async def test_wait_times_out_naming_who_lags_when_someone_else_holds_the_lease() -> None:
    app, _ledger = build()
    async with app:
        leases = await (await app.get(ProjectionControl)).singleton(LeaseStore)
        assert await leases.acquire("Balances", "elsewhere", 30)
        await append(app, Deposited("a", 1))
        with pytest.raises(ProjectionsTimeoutError) as info:
            await wait_for_projections(app, timeout=0.1)
        assert str(info.value) == (
            "Projections did not reach the head of the event log within 0.1 s: `Balances` at 0 "
            "of 1. Hint: check that nothing holds their lease (another worker) and that the "
            "app is started; raise `timeout=` for big logs."
        )


async def test_inline_projections_run_as_handlers_of_the_published_event() -> None:
    app, ledger = build(inline=True)
    async with app:
        await app.publish(Deposited("a", 4))
        await app.publish(Withdrawn("a", 1))
        assert ledger.balances == {"a": 3}
        ledger.fail_on.add(9)
        with pytest.raises(RuntimeError, match="cannot apply 9"):
            await app.publish(Deposited("a", 9))  # the publisher (the command) fails with it
        assert app.background_services() == []


def test_declaration_errors_name_the_class_and_the_fix() -> None:
    with pytest.raises(InvalidProjectionError) as info:

        class NotAsync(Projection):
            @handles  # type: ignore[type-var]  # what the test is about: not async
            def placed(self, event: Deposited) -> None: ...

    assert str(info.value) == (
        "Projection `NotAsync` marks `placed` with @handles, but it is not an `async def` "
        "method. Hint: write `async def placed(self, event: SomeEvent) -> None`."
    )
    with pytest.raises(InvalidProjectionError, match="has no event class annotation"):

        class Unannotated(Projection):
            @handles
            async def placed(self, event) -> None: ...  # type: ignore[no-untyped-def]

    class Empty(Projection):
        pass

    with pytest.raises(InvalidProjectionError, match="handles no event type"):
        ProjectionsModule.register(projections=[Empty])

    class Twin(Projection):
        name = "Balances"

        @handles
        async def deposited(self, event: Deposited) -> None: ...

    with pytest.raises(InvalidProjectionError) as twin:
        ProjectionsModule.register(projections=[Balances, Twin])
    assert str(twin.value) == (
        "Projection `Twin` has the name `Balances`, already used by `Balances`. Hint: give one "
        "of them another `name` (it names the checkpoint)."
    )
    with pytest.raises(InvalidProjectionError, match="asks for the `RecordedEvent`"):
        ProjectionsModule.register(inline=[Balances, Names])


async def test_a_paused_projection_applies_nothing_until_resumed_even_with_a_runner() -> None:
    app, ledger = build()
    async with app:
        stop = asyncio.Event()
        runner = next(s for s in app.background_services() if isinstance(s, CatchUpRunner))
        task = asyncio.create_task(runner.run(stop))
        await append(app, Deposited("a", 1))
        await wait_for_projections(app)
        control = await app.get(ProjectionControl)
        assert await control.pause("Balances") is True
        assert await control.pause("Balances") is False  # already paused: nothing to do
        await append(app, Deposited("a", 2))
        await asyncio.sleep(0.05)  # the runner, holding its lease, looks and applies nothing
        status = await control.status_of("Balances")
        assert status.state is ProjectionState.PAUSED  # not `running`, although leased
        assert status.owner == runner.owner
        assert status.paused_at is not None
        assert (status.lag, ledger.positions) == (1, [1])
        await control.rebuild("Balances")  # a reset keeps it paused
        assert (await control.status_of("Balances")).state is ProjectionState.PAUSED
        assert await control.resume("Balances") is True
        assert await control.resume("Balances") is False
        await wait_for_projections(app)
        assert ledger.positions == [1, 2]
        assert (await control.status_of("Balances")).state is ProjectionState.RUNNING
        stop.set()
        await asyncio.wait_for(task, 2)
