"""What a saga instance goes through, on the in-memory backend: each path of the issue."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import pytest
from checkout_sagas import (
    CHECKOUT,
    Charge,
    Checkout,
    Journal,
    Notify,
    Reserve,
    build,
    checkout_saga,
    run,
    start,
)

from dockyard import App
from dockyard.exceptions import (
    SagaAlreadyStartedError,
    SagaNotFoundError,
    SagaNotRegisteredError,
    SagaStateError,
)
from dockyard.retry import RetryPolicy
from dockyard.sagas import (
    Saga,
    SagaControl,
    SagaLogKind,
    SagaRecord,
    Sagas,
    SagaSettings,
    SagasModule,
    SagaStatus,
    SagaStep,
    StepAction,
    step,
)
from dockyard.sagas._engine import SagaEngine
from dockyard.sagas._registry import SagaRegistry
from dockyard.sagas.memory import InMemorySagaBackend, InMemorySagaStore
from dockyard.serialization import Serializer, TypeRegistry, event_type


def trail(record: SagaRecord) -> list[tuple[str, str, int]]:
    return [(e.step, e.kind.value, e.attempt) for e in record.log]


SLOW = SagaSettings(retry=RetryPolicy(5, initial_delay=3600, jitter=False))
"""A failed attempt is retried in an hour: the instance waits at its step (a redeploy comes)."""


async def stalled_at_charge(backend: InMemorySagaBackend, *order_ids: str) -> Journal:
    """Run ``order_ids`` on the first deployment until each waits to retry `charge`, then move
    the store's clock past the retry (the second deployment is up by then)."""
    journal = Journal(fail={"charge": len(order_ids)})
    async with build(journal, backend=backend, settings=SLOW) as first:
        for order_id in order_ids:
            record = await run(first, CHECKOUT, order_id)
            assert (record.status, record.step, record.attempts) == (
                SagaStatus.RUNNING,
                "charge",
                1,
            )
    backend.store.clock = lambda: time.time() + 7200
    return journal


async def test_the_happy_path_runs_each_step_once_and_logs_it() -> None:
    journal = Journal()
    async with build(journal) as app:
        record = await run(app, CHECKOUT, "o-1")
        control = await app.get(SagaControl)
        state = control.state(record)
    assert record.status is SagaStatus.COMPLETED
    assert (record.step, record.owner, record.error) == (None, None, None)
    assert trail(record) == [
        ("reserve", "completed", 1),
        ("charge", "completed", 1),
        ("ship", "completed", 1),
        ("notify", "completed", 1),
    ]
    assert journal.calls == ["reserve", "charge", "ship", "notify"]
    assert state == Checkout("o-1", done=["reserve", "charge", "ship", "notify"])
    assert journal.keys == ["checkout:o-1:reserve"]  # SagaStepContext.idempotency_key


async def test_a_failure_before_the_pivot_compensates_completed_steps_newest_first() -> None:
    journal = Journal(fail={"ship": -1})
    async with build(journal) as app:
        record = await run(app, CHECKOUT, "o-1")
        state = (await app.get(SagaControl)).state(record)
    assert record.status is SagaStatus.COMPENSATED
    assert record.error == "StepFailedError: ship failed"
    assert journal.calls == ["reserve", "charge", "ship", "ship", "undo charge", "undo reserve"]
    assert trail(record)[-4:] == [
        ("ship", "failed", 1),
        ("ship", "failed", 2),
        ("charge", "compensated", 1),
        ("reserve", "compensated", 1),
    ]
    assert isinstance(state, Checkout)
    assert state.done == ["reserve", "charge", "undo charge", "undo reserve"]


async def test_a_first_step_that_gives_up_leaves_nothing_to_compensate() -> None:
    journal = Journal(fail={"reserve": -1})
    async with build(journal) as app:
        record = await run(app, CHECKOUT, "o-1")
    assert record.status is SagaStatus.COMPENSATED
    assert journal.calls == ["reserve", "reserve"]


async def test_a_compensation_that_gives_up_parks_the_saga_as_failed_and_retry_resumes() -> None:
    journal = Journal(fail={"ship": -1, "undo charge": -1})
    async with build(journal) as app:
        record = await run(app, CHECKOUT, "o-1")
        assert record.status is SagaStatus.FAILED  # never reported as compensated
        assert (record.step, record.action) == ("charge", StepAction.COMPENSATE)
        assert record.error == "StepFailedError: undo charge failed"
        assert trail(record)[-3:] == [
            ("charge", "compensation_failed", 1),
            ("charge", "compensation_failed", 2),
            ("charge", "parked", 2),
        ]
        assert "undo reserve" not in journal.calls
        control = await app.get(SagaControl)
        assert await control.run_due() == 0  # parked: nobody claims it

        journal.fail.clear()  # the refund service is back
        resumed = await control.retry("o-1")
        assert (resumed.status, resumed.attempts) == (SagaStatus.COMPENSATING, 0)
        await control.run_due()
        record = await control.get("o-1")
    assert record.status is SagaStatus.COMPENSATED
    assert journal.calls[-2:] == ["undo charge", "undo reserve"]
    assert [e.kind for e in record.log][-3:] == [
        SagaLogKind.RETRIED,
        SagaLogKind.COMPENSATED,
        SagaLogKind.COMPENSATED,
    ]


async def test_after_the_pivot_a_failure_retries_forward_and_never_compensates() -> None:
    journal = Journal(fail={"notify": -1})
    async with build(journal) as app:
        record = await run(app, CHECKOUT, "o-1")
        assert record.status is SagaStatus.FAILED
        assert (record.step, record.action) == ("notify", StepAction.ACT)
        assert not [c for c in journal.calls if c.startswith("undo")]
        control = await app.get(SagaControl)
        journal.fail.clear()
        await control.retry("o-1")
        await control.run_due()
        record = await control.get("o-1")
    assert record.status is SagaStatus.COMPLETED
    assert journal.calls == ["reserve", "charge", "ship", "notify", "notify", "notify"]


async def test_the_fallback_runs_from_the_pre_step_state_and_is_what_gets_compensated() -> None:
    journal = Journal(fail={"charge": -1, "ship": -1})
    async with build(journal) as app:
        record = await run(app, CHECKOUT, "o-1")
        state = (await app.get(SagaControl)).state(record)
    assert record.status is SagaStatus.COMPENSATED
    assert journal.calls == [
        "reserve",
        "charge",
        "charge",
        "charge-backup",
        "ship",
        "ship",
        "undo charge-backup",
        "undo reserve",
    ]
    assert ("charge-backup", "completed", 1) in trail(record)
    # what the failed `charge` attempts wrote into the state was rolled back with them
    assert isinstance(state, Checkout)
    assert state.done == ["reserve", "charge-backup", "undo charge-backup", "undo reserve"]


async def test_a_start_whose_scope_rolls_back_leaves_no_instance() -> None:
    journal = Journal()
    async with build(journal) as app:

        async def place_and_fail() -> None:
            async with app.scope() as scope:
                sagas = await scope.get(Sagas)
                await sagas.start(CHECKOUT, Checkout("o-1"), saga_id="o-1")
                raise RuntimeError("the command failed after starting the saga")

        with pytest.raises(RuntimeError, match="command failed"):
            await place_and_fail()
        control = await app.get(SagaControl)
        assert await control.list() == []
        assert await control.run_due() == 0
        with pytest.raises(SagaNotFoundError):
            await control.get("o-1")
        await start(app, CHECKOUT, "o-1")  # the id is free: nothing was kept of the first
        assert len(await control.list()) == 1
    assert journal.calls == []


async def test_one_id_one_instance_even_once_finished() -> None:
    journal = Journal()
    async with build(journal) as app:
        await run(app, CHECKOUT, "o-1")
        async with app.scope() as scope:
            sagas = await scope.get(Sagas)
            with pytest.raises(SagaAlreadyStartedError, match="`o-1` already exists"):
                await sagas.start(CHECKOUT, Checkout("o-1"), saga_id="o-1")
            handle = await sagas.start(CHECKOUT, Checkout("o-1"), saga_id="o-1", if_exists="return")
            fresh = await sagas.start(CHECKOUT, Checkout("o-2"))
        assert (handle.saga_id, handle.created) == ("o-1", False)
        assert fresh.created
        assert len(fresh.saga_id) == 32
        await (await app.get(SagaControl)).run_due()
    assert journal.calls.count("reserve") == 2  # o-1 once, o-2 once: o-1 never replayed


async def test_starting_a_saga_the_app_does_not_register_is_refused() -> None:
    other = Saga("refund", version=1, state=Checkout, steps=[step("notify", Notify)])
    async with build(Journal()) as app, app.scope() as scope:
        sagas = await scope.get(Sagas)
        with pytest.raises(SagaNotRegisteredError, match="Saga `refund` is not registered"):
            await sagas.start(other, Checkout("o-1"))
        with pytest.raises(SagaNotRegisteredError):  # same name, other definition
            await sagas.start(checkout_saga(version=2), Checkout("o-1"))


async def test_a_redeploy_with_the_same_name_and_version_resumes_in_flight_instances() -> None:
    backend = InMemorySagaBackend()  # the database both deployments share
    journal = await stalled_at_charge(backend, "o-1")

    class FixedCharge(SagaStep[Checkout]):  # new code behind the same step name
        def __init__(self, journal: Journal) -> None:
            self._journal = journal

        async def act(self, state: Checkout) -> None:
            self._journal.hit("charge v1.1")
            state.done.append("charge v1.1")

    redeployed = Saga(
        "checkout",
        version=1,
        state=Checkout,
        steps=[step("reserve", Reserve), step("charge", FixedCharge), step("notify", Notify)],
    )
    async with build(journal, [redeployed], backend=backend) as second:
        control = await second.get(SagaControl)
        await control.run_due()
        record = await control.get("o-1")
    assert record.status is SagaStatus.COMPLETED
    assert journal.calls == ["reserve", "charge", "charge v1.1", "notify"]


async def test_an_incompatible_version_parks_old_instances_with_a_clear_error() -> None:
    backend = InMemorySagaBackend()
    journal = await stalled_at_charge(backend, "o-1", "o-2")

    async with build(journal, [checkout_saga(version=2)], backend=backend) as second:
        control = await second.get(SagaControl)
        await control.run_due()
        parked = await control.list(status=SagaStatus.FAILED)
        assert [r.saga_id for r in parked] == ["o-1", "o-2"]
        assert parked[0].error == (
            "SagaVersionError: Saga `o-1` was started as `checkout` version 1, and this app "
            "runs version 2, which does not declare it can resume it. Hint: add "
            "`compatible_with=(1,)` to the definition if its steps can resume such an "
            "instance, or run the old version to finish it; then "
            "`await control.retry('o-1')`."
        )
        assert parked[0].step == "charge"  # where it stopped, untouched

    compatible = checkout_saga(version=2, compatible_with=[1])
    async with build(journal, [compatible], backend=backend) as third:
        control = await third.get(SagaControl)
        await control.retry("o-1")
        await control.retry("o-2")
        await control.run_due()
        assert {r.status for r in await control.list()} == {SagaStatus.COMPLETED}


async def test_steps_renamed_without_a_new_version_park_instead_of_running_the_wrong_step() -> None:
    backend = InMemorySagaBackend()
    journal = await stalled_at_charge(backend, "o-1")
    renamed = Saga(
        "checkout",
        version=1,
        state=Checkout,
        steps=[step("reserve", Reserve), step("pay", Charge), step("notify", Notify)],
    )
    async with build(journal, [renamed], backend=backend) as second:
        control = await second.get(SagaControl)
        await control.run_due()
        record = await control.get("o-1")
    assert record.status is SagaStatus.FAILED
    assert record.error is not None
    assert "is at step `charge`, which `checkout` version 1 does not have" in record.error
    assert journal.calls == ["reserve", "charge"]


async def test_upcasters_migrate_stored_state() -> None:
    @event_type("Order")
    @dataclass
    class OrderV1:
        order_id: str

    @event_type("Order", schema_version=2)
    @dataclass
    class Order:
        order_id: str
        currency: str

    seen: list[Order] = []

    class Pay(SagaStep[Order]):
        async def act(self, state: Order) -> None:
            seen.append(state)

    class Hold(SagaStep[OrderV1]):
        async def act(self, state: OrderV1) -> None:
            raise RuntimeError("held")

    backend = InMemorySagaBackend()
    old = Saga("order", version=1, state=OrderV1, steps=[step("pay", Hold)])
    async with build(Journal(), [old], backend=backend, settings=SLOW) as first:
        async with first.scope() as scope:
            await (await scope.get(Sagas)).start(old, OrderV1("o-1"), saga_id="o-1")
        await (await first.get(SagaControl)).run_due()
    backend.store.clock = lambda: time.time() + 7200

    registry = TypeRegistry()

    @registry.upcaster("Order", from_version=1)
    def add_currency(data: dict[str, object]) -> dict[str, object]:
        return {**data, "currency": "EUR"}

    new = Saga("order", version=1, state=Order, steps=[step("pay", Pay)])
    async with build(Journal(), [new], backend=backend, serializer=Serializer(registry)) as app:
        await (await app.get(SagaControl)).run_due()
    assert seen == [Order("o-1", "EUR")]


async def test_cancel_ends_a_parked_instance_and_operators_only_touch_parked_ones() -> None:
    journal = Journal(fail={"notify": -1})
    async with build(journal) as app:
        record = await run(app, CHECKOUT, "o-1")
        control = await app.get(SagaControl)
        cancelled = await control.cancel("o-1")
        assert cancelled.status is SagaStatus.CANCELLED
        assert (await control.get("o-1")).log[-1].kind is SagaLogKind.CANCELLED
        with pytest.raises(SagaStateError, match="Cannot retry saga `o-1`: it is cancelled"):
            await control.retry("o-1")
        with pytest.raises(SagaStateError, match="Cannot cancel saga `o-1`: it is cancelled"):
            await control.cancel("o-1")
        with pytest.raises(SagaNotFoundError, match="No saga instance has the id `nope`"):
            await control.retry("nope")
        assert await control.run_due() == 0
    assert record.status is SagaStatus.FAILED


async def test_list_filters_by_saga_and_status_and_pages_in_creation_order() -> None:
    other = Saga("refund", version=1, state=Checkout, steps=[step("notify", Notify)])
    journal = Journal(fail={"ship": -1})
    async with build(journal, [CHECKOUT, other]) as app:
        for n in range(3):
            await start(app, CHECKOUT, f"c-{n}")
        async with app.scope() as scope:
            await (await scope.get(Sagas)).start(other, Checkout("r-0"), saga_id="r-0")
        control = await app.get(SagaControl)
        await control.run_due()
        everything = await control.list()
        refunds = await control.list(name="refund")
        compensated = await control.list(name="checkout", status=SagaStatus.COMPENSATED)
        first_page = await control.list(limit=2)
        second_page = await control.list(limit=2, after=first_page[-1].saga_id)
    assert [r.saga_id for r in everything] == ["c-0", "c-1", "c-2", "r-0"]
    assert [(r.saga_id, r.status) for r in refunds] == [("r-0", SagaStatus.COMPLETED)]
    assert [r.saga_id for r in compensated] == ["c-0", "c-1", "c-2"]
    assert [r.saga_id for r in first_page + second_page] == ["c-0", "c-1", "c-2", "r-0"]


async def test_a_runner_in_the_worker_runs_what_is_started_in_its_process_without_a_claim() -> None:
    journal = Journal()
    backend = InMemorySagaBackend()
    async with build(journal, backend=backend) as app:
        stop = asyncio.Event()
        worker = asyncio.create_task(app.run_worker(stop=stop))
        try:
            seen_owner: list[str | None] = []
            async with asyncio.timeout(30):
                while not app.health().services:  # noqa: ASYNC110 - polls the worker
                    await asyncio.sleep(0.01)
                await start(app, CHECKOUT, "o-1")
                record = await backend.store.get("o-1")
                assert record is not None
                seen_owner.append(record.owner)
                control = await app.get(SagaControl)
                while (await control.get("o-1")).status is not SagaStatus.COMPLETED:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        finally:
            stop.set()
            await worker
        assert [r.owner for r in await control.list()] == [None]  # released on stop
    assert seen_owner[0] is not None  # inserted already held by this process's runner
    assert journal.calls == ["reserve", "charge", "ship", "notify"]


async def test_a_step_whose_lease_was_taken_over_has_its_checkpoint_refused() -> None:
    journal = Journal()
    backend = InMemorySagaBackend()
    entered, release = asyncio.Event(), asyncio.Event()

    class Slow(SagaStep[Checkout]):
        async def act(self, state: Checkout) -> None:
            entered.set()
            await release.wait()
            state.done.append("slow")

    saga = Saga("slow", version=1, state=Checkout, steps=[step("slow", Slow)])
    async with build(journal, [saga], backend=backend) as app:
        async with app.scope() as scope:
            await (await scope.get(Sagas)).start(saga, Checkout("o-1"), saga_id="o-1")
        paused = await backend.store.claim(["slow"], "paused-runner", 1, 10.0)
        component = app.graph.get(SagasModule).component
        registry = await app.container.get(SagaRegistry, component=component)
        engine = SagaEngine(registry, app.container, "paused-runner")
        stale = asyncio.create_task(engine.advance(paused[0]))
        await entered.wait()
        backend.store.clock = lambda: time.time() + 60  # its lease ran out meanwhile
        control = await app.get(SagaControl)
        release.set()
        assert await control.run_due() == 1  # the new owner runs the step and completes it
        assert await stale is None  # the paused runner's checkpoint is refused
        record = await control.get("o-1")
    assert record.status is SagaStatus.COMPLETED
    assert trail(record) == [("slow", "completed", 1)]


async def test_a_step_longer_than_the_lease_keeps_its_instance_by_heartbeat() -> None:
    backend = InMemorySagaBackend()
    entered, release = asyncio.Event(), asyncio.Event()

    class Long(SagaStep[Checkout]):
        async def act(self, state: Checkout) -> None:
            entered.set()
            await release.wait()

    saga = Saga("long", version=1, state=Checkout, steps=[step("long", Long)])
    settings = SagaSettings(lease_ttl=3.0, max_poll_interval=0.02)
    async with build(Journal(), [saga], backend=backend, settings=settings) as app:
        stop = asyncio.Event()
        worker = asyncio.create_task(app.run_worker(stop=stop))
        try:
            async with asyncio.timeout(60):
                while not app.health().services:  # noqa: ASYNC110 - polls the worker
                    await asyncio.sleep(0.01)
                async with app.scope() as scope:
                    await (await scope.get(Sagas)).start(saga, Checkout("o-1"), saga_id="o-1")
                await entered.wait()
                control = await app.get(SagaControl)
                leases: list[float] = []
                while len(leases) < 3:  # renewed twice while the step runs
                    lease = (await control.get("o-1")).lease_until
                    assert lease is not None
                    if not leases or lease > leases[-1]:
                        leases.append(lease)
                    await asyncio.sleep(0.05)
                assert await control.run_due() == 0  # still held: nobody else takes it
                release.set()
                while (await control.get("o-1")).status is not SagaStatus.COMPLETED:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        finally:
            release.set()
            stop.set()
            await worker
        record = await control.get("o-1")
    assert [(e.step, e.kind.value, e.attempt) for e in record.log] == [("long", "completed", 1)]


class _CountedClaims:
    """Counts the claims on the in-memory store (its class's ``claim``, wrapped)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        claim = InMemorySagaStore.claim

        async def counted(store: InMemorySagaStore, *args: Any, **options: Any) -> list[SagaRecord]:
            self.count += 1
            return await claim(store, *args, **options)

        monkeypatch.setattr(InMemorySagaStore, "claim", counted)


async def test_a_runner_whose_lease_lapsed_mid_step_never_attempts_the_step_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its heartbeat came late (it waited for a pooled connection behind the steps): the
    runner's own next claims must not pick up the instance it is still running."""
    backend = InMemorySagaBackend()
    claims = _CountedClaims(monkeypatch)
    attempts, release = [], asyncio.Event()

    class Long(SagaStep[Checkout]):
        async def act(self, state: Checkout) -> None:
            attempts.append(state.order_id)
            await release.wait()

    saga = Saga("long", version=1, state=Checkout, steps=[step("long", Long)])
    settings = SagaSettings(lease_ttl=3600.0, max_poll_interval=0.01)  # no heartbeat comes
    async with build(Journal(), [saga], backend=backend, settings=settings) as app:
        stop = asyncio.Event()
        worker = asyncio.create_task(app.run_worker(stop=stop))
        try:
            async with asyncio.timeout(60):
                while not app.health().services:  # noqa: ASYNC110 - polls the worker
                    await asyncio.sleep(0.01)
                async with app.scope() as scope:
                    await (await scope.get(Sagas)).start(saga, Checkout("o-1"), saga_id="o-1")
                while not attempts:  # noqa: ASYNC110 - waits for the step
                    await asyncio.sleep(0.005)
                backend.store.clock = lambda: time.time() + 7200  # its lease lapsed
                before = claims.count
                while claims.count < before + 3:  # noqa: ASYNC110 - claims after the lapse
                    await asyncio.sleep(0.005)
                release.set()
                await _completed(app, "o-1")
        finally:
            release.set()
            stop.set()
            await worker
        record = await (await app.get(SagaControl)).get("o-1")
    assert attempts == ["o-1"]
    assert trail(record) == [("long", "completed", 1)]


async def _completed(app: App, saga_id: str) -> None:
    control = await app.get(SagaControl)
    while (await control.get(saga_id)).status is not SagaStatus.COMPLETED:  # noqa: ASYNC110
        await asyncio.sleep(0.005)


async def test_a_runner_does_not_claim_for_what_is_started_in_its_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = InMemorySagaBackend()
    claims = _CountedClaims(monkeypatch)
    settings = SagaSettings(max_poll_interval=60.0)  # after the first polls, hardly any
    async with build(Journal(), backend=backend, settings=settings) as app:
        stop = asyncio.Event()
        worker = asyncio.create_task(app.run_worker(stop=stop))
        try:
            async with asyncio.timeout(60):
                while not app.health().services:  # noqa: ASYNC110 - polls the worker
                    await asyncio.sleep(0.01)
                before = claims.count
                for n in range(30):
                    await start(app, CHECKOUT, f"o-{n}")
                    await _completed(app, f"o-{n}")
                during = claims.count - before
        finally:
            stop.set()
            await worker
    # handed off, never claimed: what is left are the polls, whose interval doubles from 5 ms
    # (about log2(elapsed / 5 ms) of them), never one or two per saga as it was
    assert during < 30, during


async def test_a_runner_busy_with_its_own_sagas_still_claims_those_started_elsewhere() -> None:
    backend = InMemorySagaBackend()
    settings = SagaSettings(max_poll_interval=0.05)
    async with (
        build(Journal(), backend=backend, settings=settings) as app,
        build(Journal(), backend=backend, settings=settings) as elsewhere,  # no runner
    ):
        stop = asyncio.Event()
        worker = asyncio.create_task(app.run_worker(stop=stop))
        try:
            async with asyncio.timeout(60):
                while not app.health().services:  # noqa: ASYNC110 - polls the worker
                    await asyncio.sleep(0.01)
                await start(elsewhere, CHECKOUT, "from-elsewhere")
                n = 0
                control = await app.get(SagaControl)
                # hand-offs wake the runner all the time: its claim must still come
                while (await control.get("from-elsewhere")).status is not SagaStatus.COMPLETED:
                    await start(app, CHECKOUT, f"here-{n}")
                    n += 1
                    await asyncio.sleep(0.001)
        finally:
            stop.set()
            await worker
