"""Remote steps: the command goes with the checkpoint, the reply resumes the instance with its
inbox record; duplicates, wrong steps, failure replies and timeouts — in memory, on SQLite and
on PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import pytest_asyncio
from remote_sagas import (
    ORDER,
    Order,
    RequestShipment,
    ShipOrder,
    Shipped,
    Shipping,
    deliver,
    instance,
    order_saga,
    run_due,
    sent,
    shop,
    start,
)

from diagram_syntax import check_dot, check_mermaid
from dockyard.consumer import Outcome
from dockyard.exceptions import InvalidSagaError
from dockyard.modules import DynamicModule
from dockyard.outbox import OutboxMessage
from dockyard.sagas import (
    RemoteStep,
    Saga,
    SagaControl,
    SagaRecord,
    SagasModule,
    SagaStatus,
    SagaStep,
    SagaStore,
    StepAction,
    remote,
    step,
)
from dockyard.sagas._diagram import dot
from dockyard.sagas._engine import SagaEngine
from dockyard.sagas._registry import SagaRegistry
from dockyard.sagas.memory import InMemorySagaBackend
from dockyard.serialization import Serializer
from dockyard.testing.pytest import isolated_database
from services import POSTGRES_URL, require_service


@pytest_asyncio.fixture(
    params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def sql(
    request: pytest.FixtureRequest, tmp_path: object
) -> AsyncIterator[DynamicModule | None]:
    """``None`` (everything in memory), or an ``SqlModule`` on a database of this test's."""
    if request.param == "memory":
        yield None
        return
    url = None
    if request.param == "postgres":
        require_service("postgres")
        url = POSTGRES_URL
    async with isolated_database(url, tmp_path) as found:  # type: ignore[arg-type]
        yield found.sql_module() if url is None else found.sql_module(pool_size=3, max_overflow=2)


def trail(record: SagaRecord) -> list[tuple[str, str, int]]:
    return [(e.step, e.kind.value, e.attempt) for e in record.log]


def only(messages: list[OutboxMessage], type_name: str) -> OutboxMessage:
    assert [m.type_name for m in messages] == [type_name]
    return messages[0]


async def test_the_command_goes_with_the_checkpoint_and_the_reply_resumes(
    sql: DynamicModule | None,
) -> None:
    shipping = Shipping()
    async with shop(shipping, sql=sql) as app:
        await start(app, "o-1")
        await run_due(app)
        waiting = await instance(app, "o-1")
        assert (waiting.status, waiting.step, waiting.action) == (
            SagaStatus.RUNNING,
            "ship",
            StepAction.AWAIT_REPLY,
        )
        assert waiting.owner == "awaiting-reply"  # no runner holds it
        assert trail(waiting) == [("reserve", "completed", 1), ("ship", "sent", 1)]

        command = only(await sent(app), "ShipOrder")
        assert command.destination == "shipping"
        assert command.message_id == f"order:o-1:ship:{waiting.version - 1}"
        assert {
            k: command.headers[k] for k in command.headers if k.startswith("dockyard-saga")
        } == {
            "dockyard-saga-id": "o-1",
            "dockyard-saga": "order",
            "dockyard-saga-step": "ship",
        }
        assert command.headers["idempotency-key"] == "order:o-1:ship"
        await run_due(app)
        assert await instance(app, "o-1") == waiting  # nothing runs it while it waits

        assert await deliver(app, [command]) == [Outcome.HANDLED]  # shipping answers
        reply = only(await sent(app), "Shipped")
        assert reply.headers["dockyard-saga-id"] == "o-1"  # inherited from the command
        assert await deliver(app, [reply]) == [Outcome.HANDLED]
        resumed = await instance(app, "o-1")
        assert (resumed.status, resumed.step, resumed.action, resumed.owner) == (
            SagaStatus.RUNNING,
            "notify",
            StepAction.ACT,
            None,
        )

        await run_due(app)
        done = await instance(app, "o-1")
        state = (await app.get(SagaControl)).state(done)
    assert done.status is SagaStatus.COMPLETED
    assert trail(done) == [
        ("reserve", "completed", 1),
        ("ship", "sent", 1),
        ("ship", "completed", 1),
        ("notify", "completed", 1),
    ]
    assert isinstance(state, Order)
    assert (state.done, state.tracking) == (
        ["reserve", "shipped", "notify"],
        "t-o-1",
    )
    assert shipping.keys == ["order:o-1:ship"]


async def test_a_duplicate_reply_is_a_no_op_and_a_second_one_is_dropped(
    sql: DynamicModule | None, caplog: pytest.LogCaptureFixture
) -> None:
    async with shop(Shipping(), sql=sql) as app:
        await start(app, "o-1")
        await run_due(app)
        await deliver(app, await sent(app))
        reply = only(await sent(app), "Shipped")
        assert await deliver(app, [reply]) == [Outcome.HANDLED]
        applied = await instance(app, "o-1")

        assert await deliver(app, [reply]) == [Outcome.DUPLICATE]  # the inbox has it
        again = replace(reply, message_id="another-answer")  # the service answered twice
        with caplog.at_level(logging.WARNING, "dockyard.sagas"):
            assert await deliver(app, [again]) == [Outcome.HANDLED]
        assert await instance(app, "o-1") == applied  # neither changed it
    assert "reply Shipped for step ship dropped: the instance is running, not awaiting" in (
        caplog.text
    )


async def test_a_reply_for_another_step_is_dropped_and_the_right_one_still_resumes(
    sql: DynamicModule | None, caplog: pytest.LogCaptureFixture
) -> None:
    async with shop(Shipping(), sql=sql) as app:
        await start(app, "o-1")
        await run_due(app)
        await deliver(app, await sent(app))
        reply = only(await sent(app), "Shipped")
        waiting = await instance(app, "o-1")

        stale = replace(
            reply,
            message_id="for-reserve",
            headers={**reply.headers, "dockyard-saga-step": "reserve"},
        )
        unknown = replace(
            reply, message_id="for-nobody", headers={**reply.headers, "dockyard-saga-id": "o-9"}
        )
        with caplog.at_level(logging.WARNING, "dockyard.sagas"):
            assert await deliver(app, [stale, unknown]) == [Outcome.HANDLED, Outcome.HANDLED]
        assert await instance(app, "o-1") == waiting

        assert await deliver(app, [reply]) == [Outcome.HANDLED]
        assert (await instance(app, "o-1")).step == "notify"
    assert "reply Shipped for step reserve dropped: the instance is running, awaiting a " in (
        caplog.text
    )
    assert "saga o-9: reply Shipped for step ship dropped: no such instance" in caplog.text


async def test_a_failing_on_reply_rolls_back_with_the_replys_inbox_record(
    sql: DynamicModule | None,
) -> None:
    RequestShipment.failures_left = 1
    try:
        async with shop(Shipping(), sql=sql) as app:
            await start(app, "o-1")
            await run_due(app)
            await deliver(app, await sent(app))
            reply = only(await sent(app), "Shipped")
            waiting = await instance(app, "o-1")
            assert await deliver(app, [reply]) == [Outcome.RETRY]  # the consumer's policy
            assert await instance(app, "o-1") == waiting
            # Not a duplicate: its inbox record rolled back with the checkpoint.
            assert await deliver(app, [reply]) == [Outcome.HANDLED]
            resumed = await instance(app, "o-1")
    finally:
        RequestShipment.failures_left = 0
    assert (resumed.step, trail(resumed)[-1]) == ("notify", ("ship", "completed", 1))


async def test_a_failure_reply_fails_the_attempt_then_retries_then_compensates(
    sql: DynamicModule | None,
) -> None:
    shipping = Shipping(refuse=2)
    async with shop(shipping, sql=sql) as app:
        await start(app, "o-1")
        await run_due(app)
        first = only(await sent(app), "ShipOrder")
        await deliver(app, [first])
        assert await deliver(app, [only(await sent(app), "ShipmentRefused")]) == [Outcome.HANDLED]
        refused = await instance(app, "o-1")
        assert (refused.action, refused.owner) == (StepAction.AWAIT_REPLY, None)  # due now

        await run_due(app)  # the failed attempt, then the retry: sent again
        second = only(await sent(app), "ShipOrder")
        assert second.message_id != first.message_id  # not a redelivery for the receiver
        assert second.headers["idempotency-key"] == first.headers["idempotency-key"]
        await deliver(app, [second])
        await deliver(app, [only(await sent(app), "ShipmentRefused")])
        await run_due(app)
        record = await instance(app, "o-1")
        state = (await app.get(SagaControl)).state(record)
    assert record.status is SagaStatus.COMPENSATED
    assert trail(record) == [
        ("reserve", "completed", 1),
        ("ship", "sent", 1),
        ("ship", "failed", 1),
        ("ship", "sent", 2),
        ("ship", "failed", 2),
        ("reserve", "compensated", 1),
    ]
    assert record.log[2].error is not None
    assert record.log[2].error.startswith("FailureReplyError: failure reply ShipmentRefused")
    assert isinstance(state, Order)
    assert state.done == ["reserve", "undo reserve"]
    assert shipping.keys == ["order:o-1:ship", "order:o-1:ship"]


async def test_no_reply_within_the_timeout_fails_the_step_and_a_late_reply_is_dropped() -> None:
    backend = InMemorySagaBackend()
    async with shop(Shipping(), saga_backend=backend) as app:
        await start(app, "o-1")
        await run_due(app)
        commands = await sent(app)
        await run_due(app)
        assert (await instance(app, "o-1")).action is StepAction.AWAIT_REPLY  # not yet

        backend.store.clock = lambda: time.time() + 3601  # past the first send's timeout
        await run_due(app)  # fails, sends again (due at once, on the moved clock)
        commands += await sent(app)
        backend.store.clock = lambda: time.time() + 7202
        await run_due(app)
        record = await instance(app, "o-1")
        assert await deliver(app, commands) == [Outcome.HANDLED, Outcome.HANDLED]
        late = await sent(app)
        assert await deliver(app, late) == [Outcome.HANDLED, Outcome.HANDLED]
        assert await instance(app, "o-1") == record
    assert record.status is SagaStatus.COMPENSATED
    assert trail(record) == [
        ("reserve", "completed", 1),
        ("ship", "sent", 1),
        ("ship", "failed", 1),
        ("ship", "sent", 2),
        ("ship", "failed", 2),
        ("reserve", "compensated", 1),
    ]
    assert record.log[2].error == "ReplyTimeoutError: no reply to step `ship` within 3600s"


async def test_the_timeout_is_the_awaiting_lease_on_sql(sql: DynamicModule | None) -> None:
    """A short timeout, waited for on the database's clock: the claim takes it once due."""
    saga = order_saga(timeout=0.05)
    async with shop(Shipping(), saga, sql=sql) as app:
        await start(app, "o-1", saga)
        record = await instance(app, "o-1")
        for _ in range(2000):  # until both sends timed out (each waits 50 ms)
            await run_due(app)
            record = await instance(app, "o-1")
            if record.status is not SagaStatus.RUNNING:
                break
            await asyncio.sleep(0.01)
        assert [m.type_name for m in await sent(app)] == ["ShipOrder", "ShipOrder"]
    assert record.status is SagaStatus.COMPENSATED
    assert [(e.step, e.kind.value) for e in record.log][-2:] == [
        ("ship", "failed"),
        ("reserve", "compensated"),
    ]


class Broken(RemoteStep[Order]):
    async def command(self, state: Order) -> object:
        raise RuntimeError("cannot build the command")


async def test_a_send_that_fails_writes_no_command(sql: DynamicModule | None) -> None:
    saga = Saga(
        "order",
        version=1,
        state=Order,
        steps=[
            remote("ship", Broken, destination="shipping", replies=[Shipped], timeout=60),
        ],
        retry=ORDER.retry,
    )
    async with shop(Shipping(), saga, sql=sql) as app:
        await start(app, "o-1", saga)
        await run_due(app)
        record = await instance(app, "o-1")
        assert await sent(app) == []
    assert record.status is SagaStatus.COMPENSATED
    assert trail(record) == [("ship", "failed", 1), ("ship", "failed", 2)]


def test_remote_steps_are_checked_when_registered() -> None:
    class Local(SagaStep[Order]):
        async def act(self, state: Order) -> None: ...

    saga = Saga(
        "bad",
        version=1,
        state=Order,
        steps=[
            step("plain", RequestShipment),
            remote("no-reply", RequestShipment, destination="", replies=[], timeout=0),
            remote(
                "both",
                Local,  # type: ignore[arg-type]
                destination="d",
                replies=[Shipped],
                failures=[Shipped],
                timeout=1,
            ),
        ],
    )
    with pytest.raises(InvalidSagaError) as raised:
        SagasModule.register(sagas=[saga])
    assert list(raised.value.problems) == [
        (
            "Saga `bad`: step `plain` is run by `RequestShipment`, a `RemoteStep`; declare it with "
            "`remote('plain', RequestShipment, destination=..., replies=[...], timeout=...)`"
        ),
        "Saga `bad`: the remote step `no-reply` has no destination for its command",
        "Saga `bad`: the remote step `no-reply` names no reply type in `replies`",
        (
            "Saga `bad`: the remote step `no-reply` has timeout 0; give the seconds to wait for a "
            "reply (a finite number > 0)"
        ),
        (
            "Saga `bad`: the remote step `both` is run by `Local`, which is not a `RemoteStep` "
            "subclass"
        ),
        "Saga `bad`: the remote step `both` lists `Shipped` in both `replies` and `failures`",
    ]


def test_the_diagram_draws_the_wait_its_reply_and_its_failures() -> None:
    drawn = ORDER.diagram()
    assert 'state "awaiting reply (ship)" as s1_awaiting' in drawn
    assert "s1 --> s1_awaiting : command sent" in drawn
    assert "s1_awaiting --> s2 : Shipped" in drawn
    assert "s1_awaiting --> undo_s0 : gave up (ShipmentRefused or timeout)" in drawn
    assert "s1 --> s2" not in drawn
    check_mermaid(drawn)
    check_dot(dot(ORDER))


def test_the_command_and_reply_types_are_plain_messages() -> None:
    serializer = Serializer()
    for message in (ShipOrder("o-1"), Shipped("o-1", "t")):
        encoded = serializer.serialize(message)
        assert serializer.deserialize(encoded.type_name, 1, encoded.data) == message


async def test_the_command_commits_with_the_send_checkpoint_or_not_at_all(
    sql: DynamicModule | None,
) -> None:
    """A runner that lost the instance between its claim and its send writes no command."""
    async with shop(Shipping(), sql=sql) as app:
        await start(app, "o-1")
        component = app.graph.get(SagasModule).component
        registry = await app.container.get(SagaRegistry, component=component)
        store = await app.container.get(SagaStore, component=component)
        [claimed] = await store.claim(["order"], "paused", 1, 30.0)
        paused = SagaEngine(registry, app.container, "paused")
        at_ship = await paused.advance(claimed)  # `reserve` done; `ship` is next
        assert at_ship is not None
        assert at_ship.step == "ship"
        await store.release("paused", None)
        [taken] = await store.claim(["order"], "other", 1, 30.0)  # taken over meanwhile

        assert await paused.advance(at_ship) is None  # its checkpoint is refused: rolled back
        assert await sent(app) == []
        assert await SagaEngine(registry, app.container, "other").advance(taken) is None
        assert [m.type_name for m in await sent(app)] == ["ShipOrder"]
        record = await instance(app, "o-1")
    assert trail(record) == [("reserve", "completed", 1), ("ship", "sent", 1)]
