"""Saga steps and catch-up projection batches as spans, and their counters."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from opentelemetry.trace import StatusCode

from dockyard import App, module, object_, singleton
from dockyard.eventsourcing import ANY, EventStore
from dockyard.eventsourcing.memory import InMemoryEventStore
from dockyard.projections import (
    CatchUpRunner,
    CheckpointStore,
    LeaseStore,
    Projection,
    ProjectionsModule,
    RunnerSettings,
    handles,
)
from dockyard.projections.memory import InMemoryCheckpointStore, InMemoryLeaseStore
from dockyard.retry import RetryPolicy
from dockyard.sagas import (
    Saga,
    SagaControl,
    Sagas,
    SagaSettings,
    SagasModule,
    SagaStatus,
    SagaStep,
    step,
)
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.testing import wait_for_projections
from otel_sdk import Otel, otel_sdk


@pytest.fixture
def otel() -> Iterator[Otel]:
    yield from otel_sdk()


# -- sagas --------------------------------------------------------------------------------


@dataclass
class Checkout:
    order_id: str


@dataclass
class Failures:
    left: dict[str, int] = field(default_factory=dict)


class Reserve(SagaStep[Checkout]):
    async def act(self, state: Checkout) -> None:
        return None


class Charge(SagaStep[Checkout]):
    def __init__(self, failures: Failures) -> None:
        self._failures = failures

    async def act(self, state: Checkout) -> None:
        if self._failures.left.get("charge", 0):
            self._failures.left["charge"] -= 1
            raise RuntimeError("card declined")


CHECKOUT = Saga(
    "checkout", version=1, state=Checkout, steps=[step("reserve", Reserve), step("charge", Charge)]
)
NO_WAIT = RetryPolicy(max_attempts=2, initial_delay=0.0, jitter=False)


def saga_app(otel: Otel, failures: Failures) -> App:
    @module(providers=[object_(failures, provides=Failures)], exports=[Failures])
    class Shop: ...

    sagas = SagasModule.register(
        sagas=[CHECKOUT],
        imports=[Shop],
        settings=SagaSettings(retry=NO_WAIT, compensation_retry=NO_WAIT, max_poll_interval=0.02),
    )

    @module(imports=[Shop, sagas])
    class Root: ...

    return App.build(Root, telemetry=otel.telemetry)


async def test_each_saga_step_attempt_is_a_span_and_is_counted(otel: Otel) -> None:
    async with saga_app(otel, Failures({"charge": 1})) as app:
        async with app.scope() as scope:
            await (await scope.get(Sagas)).start(CHECKOUT, Checkout("o-1"), saga_id="o-1")
        control = await app.get(SagaControl)
        await control.run_due()
        assert (await control.get("o-1")).status is SagaStatus.COMPLETED
    steps = [s for s in otel.finished() if s.name.startswith("saga checkout ")]
    assert [(s.name, (s.attributes or {})["dockyard.outcome"]) for s in steps] == [
        ("saga checkout reserve", "done"),
        ("saga checkout charge", "failed"),
        ("saga checkout charge", "done"),
    ]
    failed = dict(steps[1].attributes or {})
    assert steps[1].status.status_code is StatusCode.ERROR
    assert failed["error.type"] == "RuntimeError"
    assert (failed["dockyard.saga.id"], failed["dockyard.saga.attempt"]) == ("o-1", 1)
    counts = {
        (a["dockyard.saga.step"], a["dockyard.outcome"]): p.value
        for a, p in otel.points("dockyard.saga.steps")
    }
    assert counts == {("reserve", "done"): 1, ("charge", "failed"): 1, ("charge", "done"): 1}


async def test_a_running_saga_runner_reports_the_instances_by_status(otel: Otel) -> None:
    failures = Failures({})

    @module(providers=[object_(failures, provides=Failures)], exports=[Failures])
    class Shop: ...

    sagas = SagasModule.register(
        sagas=[CHECKOUT],
        imports=[Shop],
        # renewed (and measured) every lease_ttl / 3
        settings=SagaSettings(lease_ttl=0.3, max_poll_interval=0.02),
    )

    @module(imports=[Shop, sagas])
    class Root: ...

    def by_status() -> dict[str, int]:
        points = otel.points("dockyard.saga.instances")
        return {a["dockyard.saga.status"]: p.value for a, p in points}

    telemetry = dataclasses.replace(otel.telemetry, backlog_interval=0.05)
    async with App.build(Root, telemetry=telemetry) as app:
        async with app.scope() as scope:
            await (await scope.get(Sagas)).start(CHECKOUT, Checkout("o-1"), saga_id="o-1")
        stop = asyncio.Event()
        worker = asyncio.create_task(app.run_worker(stop=stop))
        try:
            async with asyncio.timeout(60):  # a guard against a hang; it takes ~0.2 s
                while by_status().get("completed") != 1:  # noqa: ASYNC110 - polling a metric reader
                    await asyncio.sleep(0.02)
        finally:
            stop.set()
            await worker
    counts = by_status()
    assert set(counts) == {str(status) for status in SagaStatus}
    assert {k: v for k, v in counts.items() if v} == {"completed": 1}


# -- projections --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Deposited:
    account: str
    amount: int


@dataclass
class Balances:
    by_account: dict[str, int] = field(default_factory=dict)


class BalancesProjection(Projection):
    name = "balances"

    def __init__(self, balances: Balances) -> None:
        self._balances = balances

    @handles
    async def deposited(self, event: Deposited) -> None:
        totals = self._balances.by_account
        totals[event.account] = totals.get(event.account, 0) + event.amount


def projection_app(otel: Otel, balances: Balances) -> App:
    serializer = Serializer(TypeRegistry([Deposited]))

    @module(
        providers=[
            singleton(EventStore, lambda: InMemoryEventStore(serializer)),
            singleton(CheckpointStore, InMemoryCheckpointStore),
            singleton(LeaseStore, InMemoryLeaseStore),
            object_(balances, provides=Balances),
        ],
        exports=[EventStore, CheckpointStore, LeaseStore, Balances],
    )
    class Stores: ...

    projections = ProjectionsModule.register(
        projections=[BalancesProjection],
        imports=[Stores],
        settings=RunnerSettings(batch_size=2, lease_ttl=0.6),
    )

    @module(imports=[Stores, projections])
    class Root: ...

    return App.build(Root, telemetry=otel.telemetry)


async def test_each_catch_up_batch_is_a_span_and_idle_polls_make_none(otel: Otel) -> None:
    balances = Balances()
    async with projection_app(otel, balances) as app:
        stop = asyncio.Event()
        runners = [s for s in app.background_services() if isinstance(s, CatchUpRunner)]
        tasks = [asyncio.create_task(r.run(stop)) for r in runners]
        store = await app.get(EventStore)
        await store.append("Account-1", [Deposited("a", n) for n in (1, 2, 3)], ANY)
        await wait_for_projections(app)
        await asyncio.sleep(0.05)  # a few idle polls
        lag = {a["dockyard.projection"]: p.value for a, p in otel.points("dockyard.projection.lag")}
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert balances.by_account == {"a": 6}
    batches = [s for s in otel.finished() if s.name == "project balances"]
    assert sum((s.attributes or {})["dockyard.projection.applied"] for s in batches) == 3  # type: ignore[misc]
    assert all((s.attributes or {})["dockyard.outcome"] == "applied" for s in batches)
    assert batches[-1].attributes is not None
    assert batches[-1].attributes["dockyard.projection.position"] == 3
    assert lag == {"balances": 0}  # read by the runner holding the lease, caught up
    [(attributes, point)] = otel.points("dockyard.projection.events")
    assert (attributes, point.value) == ({"dockyard.projection": "balances"}, 3)
