"""Operating saga instances: skip a parked step, purge finished instances (by hand and by the
worker's runner), draw one instance's path. On the in-memory backend, and on SQLite where the
store does the work."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import pytest
from checkout_sagas import CHECKOUT, NO_WAIT, Checkout, Journal, Notify, Ship, build, run, start

from diagram_syntax import check_dot, check_mermaid
from dockyard.exceptions import SagaNotFoundError, SagaStateError
from dockyard.sagas import (
    Saga,
    SagaControl,
    SagaRecord,
    SagaSettings,
    SagaStatus,
    StepAction,
    pivot,
    step,
)
from dockyard.sagas.memory import InMemorySagaBackend
from dockyard.sql import SqlModule


def trail(record: SagaRecord) -> list[tuple[str, str]]:
    return [(e.step, e.kind.value) for e in record.log]


# -- skip ---------------------------------------------------------------------------------


async def test_skip_after_the_pivot_goes_on_with_the_next_step() -> None:
    journal = Journal(fail={"notify": -1})
    async with build(journal) as app:
        record = await run(app, CHECKOUT, "o-1")
        assert (record.status, record.step) == (SagaStatus.FAILED, "notify")
        control = await app.get(SagaControl)
        skipped = await control.skip("o-1", by="ann", reason="mailed by hand")
        assert (skipped.status, skipped.step) == (SagaStatus.COMPLETED, None)
        record = await control.get("o-1")
    assert record.status is SagaStatus.COMPLETED
    last = record.log[-1]
    assert (last.step, last.kind.value, last.note) == (
        "notify",
        "skipped",
        "by ann: mailed by hand",
    )
    assert journal.calls.count("notify") == 2  # the skipped step never ran again


async def test_skip_of_a_middle_step_runs_the_steps_after_it() -> None:
    journal = Journal(fail={"ship": -1, "undo charge": -1})
    async with build(journal) as app:
        record = await run(app, CHECKOUT, "o-1")
        assert (record.step, record.action) == ("charge", StepAction.COMPENSATE)
        control = await app.get(SagaControl)
        # the refund was made by hand: skip it, compensation goes on with `reserve`
        await control.skip("o-1", reason="refunded by hand")
        assert await control.run_due() == 1
        record = await control.get("o-1")
    assert record.status is SagaStatus.COMPENSATED
    assert trail(record)[-3:] == [
        ("charge", "parked"),
        ("charge", "skipped"),
        ("reserve", "compensated"),
    ]
    assert record.log[-2].note == "refunded by hand"
    assert journal.calls[-1] == "undo reserve"


async def test_skip_of_a_step_after_the_pivot_runs_the_steps_after_it() -> None:
    delivery = Saga(
        "delivery",
        version=1,
        state=Checkout,
        steps=[pivot("announce", Notify), step("ship", Ship), step("notify", Notify)],
    )
    journal = Journal(fail={"ship": -1})
    async with build(journal, sagas=[delivery]) as app:
        record = await run(app, delivery, "o-1")
        assert (record.status, record.step) == (SagaStatus.FAILED, "ship")
        control = await app.get(SagaControl)
        skipped = await control.skip("o-1")
        assert (skipped.status, skipped.step) == (SagaStatus.RUNNING, "notify")
        assert await control.run_due() == 1
        record = await control.get("o-1")
    assert record.status is SagaStatus.COMPLETED
    assert trail(record)[-3:] == [("ship", "parked"), ("ship", "skipped"), ("notify", "completed")]
    assert journal.calls == ["notify", "ship", "ship", "notify"]
    state = control.state(record)
    assert isinstance(state, Checkout)
    assert state.done == ["notify", "notify"]  # ship never completed


async def test_skip_only_touches_parked_instances() -> None:
    async with build(Journal()) as app:
        record = await run(app, CHECKOUT, "o-1")
        assert record.status is SagaStatus.COMPLETED
        control = await app.get(SagaControl)
        with pytest.raises(SagaStateError, match="Cannot skip saga `o-1`: it is completed"):
            await control.skip("o-1")
        with pytest.raises(SagaNotFoundError):
            await control.skip("o-404")


# -- purge --------------------------------------------------------------------------------


async def test_purge_finished_deletes_old_finished_instances_and_keeps_the_rest() -> None:
    journal = Journal(fail={"notify": -1})
    backend = InMemorySagaBackend()
    async with build(journal, backend=backend) as app:
        control = await app.get(SagaControl)
        await run(app, CHECKOUT, "parked")
        journal.fail.clear()
        for n in range(5):
            await run(app, CHECKOUT, f"done-{n}")
        assert await control.purge_finished(timedelta(hours=1)) == 0
        backend.store.clock = lambda: time.time() + 7200  # two hours on
        assert await control.purge_finished(timedelta(hours=1), batch=2) == 5
        assert [r.saga_id for r in await control.list()] == ["parked"]
        with pytest.raises(ValueError, match="older_than >= 0"):
            await control.purge_finished(-1)


async def test_the_worker_purges_finished_instances_by_itself(tmp_path: Path) -> None:
    sql = SqlModule.register(f"sqlite+aiosqlite:///{tmp_path / 'sagas.db'}", create_tables=True)
    journal = Journal(fail={"notify": -1})
    settings = SagaSettings(
        retry=NO_WAIT, retain_finished=timedelta(0), purge_batch=2, max_poll_interval=0.02
    )
    async with build(journal, sql=sql, settings=settings) as app:
        control = await app.get(SagaControl)
        await run(app, CHECKOUT, "parked")
        journal.fail.clear()
        for n in range(5):
            await run(app, CHECKOUT, f"done-{n}")
        assert len(await control.list()) == 6
        stop = asyncio.Event()
        worker = asyncio.create_task(app.run_worker(stop=stop))
        try:
            async with asyncio.timeout(60):
                while len(await control.list()) > 1:  # noqa: ASYNC110 - polls the store
                    await asyncio.sleep(0.02)
        finally:
            stop.set()
            await worker
        assert [r.saga_id for r in await control.list()] == ["parked"]


def test_retention_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="retain_finished must not be negative"):
        SagaSettings(retain_finished=timedelta(seconds=-1))
    with pytest.raises(ValueError, match="purge_batch"):
        SagaSettings(purge_batch=0)


# -- the path of one instance -------------------------------------------------------------


async def test_the_diagram_of_an_instance_shows_the_path_it_took() -> None:
    journal = Journal(fail={"charge": 2, "ship": -1, "undo charge-backup": 2})
    async with build(journal) as app:
        record = await run(app, CHECKOUT, "o-1")
        assert record.status is SagaStatus.FAILED
        control = await app.get(SagaControl)
        parked = await control.instance_diagram("o-1")
        journal.fail.clear()
        await control.retry("o-1", by="ann")
        await control.run_due()
        finished = await control.instance_diagram("o-1")
        dot = await control.instance_diagram("o-1", format="dot")
    assert parked == "\n".join(
        [
            "stateDiagram-v2",
            '    state "reserve" as step0',
            '    state "charge" as step1',
            '    state "charge-backup" as step2',
            '    state "ship" as step3',
            '    state "undo charge-backup" as undo4',
            '    state "failed (parked) (now)" as failed',
            "    [*] --> step0",
            "    step0 --> step1 : done",
            "    step1 --> step2 : gave up after 2 attempts",
            "    step2 --> step3 : done",
            "    step3 --> undo4 : gave up after 2 attempts",
            "    undo4 --> failed : gave up after 2 attempts",
        ]
    )
    assert finished.splitlines()[6:] == [
        '    state "undo reserve" as undo5',
        '    state "failed (parked)" as failed',
        '    state "compensated" as compensated',
        "    [*] --> step0",
        "    step0 --> step1 : done",
        "    step1 --> step2 : gave up after 2 attempts",
        "    step2 --> step3 : done",
        "    step3 --> undo4 : gave up after 2 attempts",
        "    undo4 --> failed : gave up after 2 attempts",
        "    failed --> undo4 : retried (by ann)",
        "    undo4 --> undo5 : done",
        "    undo5 --> compensated : done",
        "    compensated --> [*]",
    ]
    for drawn in (parked, finished):
        check_mermaid(drawn)
    check_dot(dot)


async def test_the_diagram_of_a_running_instance_marks_where_it_is() -> None:
    async with build(Journal()) as app:
        await start(app, CHECKOUT, "o-1")
        control = await app.get(SagaControl)
        drawn = await control.instance_diagram("o-1")
    assert drawn == "\n".join(
        ["stateDiagram-v2", '    state "reserve (now)" as step0', "    [*] --> step0"]
    )
    check_mermaid(drawn)
