"""Process managers on memory, SQLite and PostgreSQL, through the public API: created by a
start message, updated by key, completed, missing instances, timeouts and their races."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from process_managers import (
    TIMEOUTS,
    Fulfilment,
    OrderPlaced,
    OrderShipped,
    PaymentOverdue,
    PaymentReceived,
    fulfilment,
)

from dockyard import App, module
from dockyard.consumer import ConsumerModule, ErrorPolicies, listen, retry_later
from dockyard.exceptions import (
    InvalidSagaError,
    ProcessNotFoundError,
    ProcessStateError,
    ProcessVersionError,
)
from dockyard.modules import DynamicModule
from dockyard.outbox import (
    Cancellation,
    Outbox,
    OutboxMessage,
    OutboxModule,
    OutboxStatus,
    OutboxStore,
)
from dockyard.sagas import (
    ProcessControl,
    Processes,
    ProcessInstance,
    ProcessManager,
    ProcessManagersModule,
    ProcessSettings,
    ProcessStatus,
    starts,
)
from dockyard.testing.pytest import isolated_database
from dockyard.transport.memory import InMemoryTransport
from services import POSTGRES_URL, require_service

ORDERS = "orders"


@dataclass
class Shop:
    app: App
    process: ProcessManager[Fulfilment]

    async def get(self, key: str) -> ProcessInstance[Fulfilment] | None:
        async with self.app.scope() as scope:
            processes = await scope.get(Processes)
            return await processes.get(self.process, key)

    async def log(self, key: str) -> list[str]:
        found = await self.get(key)
        assert found is not None
        return found.state.log

    async def outbox_store(self) -> OutboxStore:
        store: OutboxStore = await self.app.container.get(OutboxStore)
        return store

    async def dead_letter(self, message: object) -> tuple[str, OutboxMessage]:
        """Send ``message`` as from a broker (outbox, relay, consumer) and wait until it is
        the one dead letter: its message id and the letter."""
        async with self.app.scope() as scope:
            sent = await (await scope.get(Outbox)).add(message, destination=ORDERS)
        store = await self.outbox_store()

        async def dead() -> bool:
            return bool(await store.dead_letters())

        await self.until(dead)
        [letter] = await store.dead_letters()
        return sent, letter

    async def until(self, done: Callable[[], Awaitable[bool]]) -> None:
        """Run the app's worker (relay, consumers) until ``done()``."""
        stop = asyncio.Event()
        worker = asyncio.create_task(self.app.run_worker(stop=stop))
        try:
            async with asyncio.timeout(30):
                while not await done():  # noqa: ASYNC110 - polls the store
                    await asyncio.sleep(0.01)
        finally:
            stop.set()
            await worker


Build = Callable[..., AsyncIterator[Shop]]


@pytest_asyncio.fixture(
    params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def shop(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Shop]:
    async with open_shop(request.param, tmp_path) as opened:
        yield opened


class open_shop:  # noqa: N801 - reads as a function in `async with`
    def __init__(
        self,
        kind: str,
        tmp_path: Path,
        *,
        missing: str = "ignore",
        settings: ProcessSettings | None = None,
        version: int = 1,
        compatible_with: tuple[int, ...] = (),
    ) -> None:
        self.kind, self.tmp_path, self.missing = kind, tmp_path, missing
        self.settings = settings
        self.version, self.compatible_with = version, compatible_with
        self._exit: Any = None

    async def __aenter__(self) -> Shop:
        process = fulfilment(
            missing=self.missing, version=self.version, compatible_with=self.compatible_with
        )
        fast = ErrorPolicies(default=retry_later(2, initial_delay=0.0))
        imports: list[Any] = [
            OutboxModule.register(transport=InMemoryTransport()),
            ConsumerModule.register(
                endpoints=[
                    listen(TIMEOUTS, group="fulfilment", policies=fast),
                    listen(ORDERS, group="fulfilment", policies=fast),
                ]
            ),
            ProcessManagersModule.register(processes=[process], settings=self.settings),
        ]
        if self.kind != "memory":
            url = None
            if self.kind == "postgres":
                require_service("postgres")
                url = POSTGRES_URL
            self._database = isolated_database(url, self.tmp_path)
            isolated = await self._database.__aenter__()
            sql: DynamicModule = (
                isolated.sql_module()
                if isolated.schema is None
                else isolated.sql_module(pool_size=3, max_overflow=2)
            )
            imports.insert(0, sql)

        @module(imports=imports)
        class Root: ...

        self._app = App.build(Root)
        await self._app.__aenter__()
        return Shop(self._app, process)

    async def __aexit__(self, *exc: object) -> None:
        await self._app.__aexit__(None, None, None)
        if self.kind != "memory":
            await self._database.__aexit__(None, None, None)


async def test_a_start_message_creates_the_instance_and_others_update_it_by_key(
    shop: Shop,
) -> None:
    assert await shop.get("o-1") is None
    await shop.app.publish(OrderPlaced("o-1"))
    await shop.app.publish(OrderPlaced("o-2"))
    await shop.app.publish(PaymentReceived("o-1", 5))
    await shop.app.publish(PaymentReceived("o-2", 7))
    await shop.app.publish(PaymentReceived("o-1", 1))

    first, second = await shop.get("o-1"), await shop.get("o-2")
    assert first is not None
    assert second is not None
    assert first.status is ProcessStatus.ACTIVE
    assert first.state == Fulfilment("o-1", 6, ["placed", "paid 5", "paid 1"])
    assert second.state == Fulfilment("o-2", 7, ["placed", "paid 7"])
    assert (first.version, second.version) == (3, 2)


async def test_a_start_message_for_an_active_instance_continues_it(shop: Shop) -> None:
    await shop.app.publish(OrderPlaced("o-1"))
    await shop.app.publish(OrderPlaced("o-1"))
    assert await shop.log("o-1") == ["placed", "placed again"]


async def test_a_completed_instance_ignores_later_messages_even_a_start(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    await shop.app.publish(OrderPlaced("o-1"))
    await shop.app.publish(OrderShipped("o-1"))
    with caplog.at_level(logging.INFO, "dockyard.sagas.processes"):
        await shop.app.publish(PaymentReceived("o-1", 5))
        await shop.app.publish(OrderPlaced("o-1"))

    done = await shop.get("o-1")
    assert done is not None
    assert done.status is ProcessStatus.COMPLETED
    assert done.state.log == ["placed", "shipped"]
    assert "process fulfilment o-1: completed, PaymentReceived ignored" in caplog.messages
    assert "process fulfilment o-1: completed, OrderPlaced ignored" in caplog.messages


async def test_a_message_for_a_missing_instance_is_ignored_with_a_log_line(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "dockyard.sagas.processes"):
        await shop.app.publish(PaymentReceived("nope", 5))
    assert await shop.get("nope") is None
    assert caplog.messages == [
        "process fulfilment: no active instance nope, PaymentReceived ignored"
    ]


async def test_a_start_that_fails_leaves_no_instance(shop: Shop) -> None:
    with pytest.raises(RuntimeError, match="could not be placed"):
        await shop.app.publish(OrderPlaced("o-1", pay_within=60, fail=True))
    assert await shop.get("o-1") is None
    counts = await (await shop.outbox_store()).counts()
    assert counts[OutboxStatus.SCHEDULED] == 0  # its timeout went with it


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_a_message_for_a_missing_instance_is_dead_lettered_when_configured(
    kind: str, tmp_path: Path
) -> None:
    async with open_shop(kind, tmp_path, missing="dead_letter") as shop:
        with pytest.raises(ProcessNotFoundError, match="no active instance `nope`"):
            await shop.app.publish(PaymentReceived("nope", 5))  # in-process: the caller's error

        sent, letter = await shop.dead_letter(PaymentReceived("nope", 5))
        assert letter.message_id == sent
        assert letter.attempts == 1
        assert "ProcessNotFoundError" in (letter.last_error or "")
        assert await shop.get("nope") is None


async def test_an_instance_of_an_incompatible_version_is_never_applied(tmp_path: Path) -> None:
    """A redeploy with a new ``version``: an instance started under the old one is not handed
    to the new handlers (in process: the caller's error; from a broker: a dead letter at once,
    replayable) unless the definition declares it compatible; then it goes on."""
    async with open_shop("sqlite", tmp_path) as shop:
        await shop.app.publish(OrderPlaced("o-1"))

    async with open_shop("sqlite", tmp_path, version=2) as shop:
        with pytest.raises(ProcessVersionError) as raised:
            await shop.app.publish(PaymentReceived("o-1", 5))
        assert str(raised.value) == (
            "Process manager `fulfilment` instance `o-1` was started under version 1; this "
            "app's definition is version 2, which does not accept it, so the "
            "`PaymentReceived` was not applied. Hint: if version 2's handlers can go on "
            "with a version 1 instance (its state upcast by the serializer), declare "
            "`compatible_with=(1,)` and replay the dead letter; otherwise let the old code "
            "finish the old instances before deploying version 2."
        )
        assert await shop.log("o-1") == ["placed"]

        sent, letter = await shop.dead_letter(PaymentReceived("o-1", 7))
        assert (letter.message_id, letter.attempts) == (sent, 1)
        assert "ProcessVersionError" in (letter.last_error or "")
        found = await shop.get("o-1")
        assert found is not None
        assert (found.state.log, found.status) == (["placed"], ProcessStatus.ACTIVE)

    async with open_shop("sqlite", tmp_path, version=2, compatible_with=(1,)) as shop:
        await shop.app.publish(PaymentReceived("o-1", 5))
        assert await shop.log("o-1") == ["placed", "paid 5"]
        control = await shop.app.get(ProcessControl)
        assert (await control.get("fulfilment", "o-1")).definition_version == 2


def test_a_process_manager_cannot_list_its_own_version_as_compatible() -> None:
    with pytest.raises(InvalidSagaError) as raised:
        ProcessManagersModule.register(processes=[fulfilment(version=2, compatible_with=(2,))])
    assert raised.value.problems == (
        "Process manager `fulfilment` lists its own version 2 in `compatible_with`",
    )


async def test_the_timeout_fires_when_due(shop: Shop) -> None:
    await shop.app.publish(OrderPlaced("o-1", pay_within=0.05))
    pending = await shop.get("o-1")
    assert pending is not None
    assert pending.timeout_id is not None
    assert pending.timeout_at is not None

    async def completed() -> bool:
        found = await shop.get("o-1")
        return found is not None and found.status is ProcessStatus.COMPLETED

    await shop.until(completed)
    done = await shop.get("o-1")
    assert done is not None
    assert done.state.log == ["placed", "overdue"]
    assert (done.timeout_id, done.timeout_at) == (None, None)


async def test_a_timeout_never_fires_after_completion(shop: Shop) -> None:
    await shop.app.publish(OrderPlaced("o-1", pay_within=3600))
    pending = await shop.get("o-1")
    assert pending is not None
    timeout_id = pending.timeout_id
    assert timeout_id is not None
    await shop.app.publish(OrderShipped("o-1"))

    # completing cancelled the scheduled message in the same transaction
    async with shop.app.scope() as scope:
        outbox = await scope.get(Outbox)
        assert await outbox.cancel(timeout_id) is Cancellation.NOT_FOUND
    # and had it been published already, it arrives to a completed instance: nothing happens
    await shop.app.publish(PaymentOverdue("o-1"), message_id=timeout_id)
    assert await shop.log("o-1") == ["placed", "shipped"]


async def test_only_the_pending_timeout_fires(shop: Shop) -> None:
    await shop.app.publish(OrderPlaced("o-1", pay_within=3600))
    first = await shop.get("o-1")
    await shop.app.publish(OrderPlaced("o-1", pay_within=3600))  # replaces the timeout
    second = await shop.get("o-1")
    assert first is not None
    assert second is not None
    assert first.timeout_id is not None
    assert second.timeout_id not in {None, first.timeout_id}

    await shop.app.publish(PaymentOverdue("o-1"), message_id=first.timeout_id)  # replaced
    await shop.app.publish(PaymentOverdue("o-1"))  # not a timeout this instance set
    assert await shop.log("o-1") == ["placed", "placed again"]
    await shop.app.publish(PaymentOverdue("o-1"), message_id=second.timeout_id)
    assert await shop.log("o-1") == ["placed", "placed again", "overdue"]
    counts = await (await shop.outbox_store()).counts()
    assert counts[OutboxStatus.SCHEDULED] == 1  # the first one was cancelled when replaced


async def test_a_timeout_racing_a_message_has_one_winner(shop: Shop) -> None:
    keys = [f"o-{n}" for n in range(20)]
    timeouts: dict[str, str] = {}
    for key in keys:
        await shop.app.publish(OrderPlaced(key, pay_within=3600))
        found = await shop.get(key)
        assert found is not None
        assert found.timeout_id is not None
        timeouts[key] = found.timeout_id

    await asyncio.gather(
        *(shop.app.publish(PaymentOverdue(key), message_id=timeouts[key]) for key in keys),
        *(shop.app.publish(OrderShipped(key)) for key in keys),
    )
    winners = {key: (await shop.log(key))[1:] for key in keys}
    assert all(won in (["overdue"], ["shipped"]) for won in winners.values()), winners


def test_definitions_are_checked_all_at_once() -> None:
    class NotAHandler:
        pass

    broken = ProcessManager(
        "",
        version=0,
        state=Fulfilment,
        handlers=[
            starts(OrderPlaced, NotAHandler, key="order_id"),  # type: ignore[arg-type]
            starts(OrderPlaced, NotAHandler),  # type: ignore[arg-type]
        ],
        timeout_destination=None,
    )
    with pytest.raises(InvalidSagaError) as raised:
        ProcessManagersModule.register(processes=[fulfilment(), fulfilment(), broken])
    not_a_handler = (
        f"Process manager ``, start OrderPlaced: the handler `{NotAHandler!r}` is not a "
        "ProcessHandler"
    )
    assert raised.value.problems == (
        "two process managers are named `fulfilment`",
        "Process manager ``: its name must be a non-empty string",
        "Process manager ``: its version must be a positive int, got 0",
        not_a_handler,
        "Process manager ``, start OrderPlaced: the message type is routed twice",
        not_a_handler,
    )


def test_a_process_manager_draws_itself() -> None:
    assert fulfilment().diagram() == (
        "stateDiagram-v2\n"
        '    state "active" as active\n'
        "    [*] --> active : OrderPlaced\n"
        "    active --> active : PaymentReceived\n"
        "    active --> active : OrderShipped\n"
        "    active --> active : PaymentOverdue (timeout)\n"
        "    active --> [*] : complete()"
    )


# -- operating instances: ProcessControl ------------------------------------------------------


async def test_instances_are_listed_and_shown(shop: Shop) -> None:
    await shop.app.publish(OrderPlaced("o-1", pay_within=3600))
    await shop.app.publish(OrderPlaced("o-2"))
    await shop.app.publish(OrderShipped("o-2"))
    await shop.app.publish(OrderPlaced("o-3"))
    control = await shop.app.get(ProcessControl)
    assert control.names == ["fulfilment"]

    listed = await control.list()
    assert [(r.key, r.status) for r in listed] == [
        ("o-1", ProcessStatus.ACTIVE),
        ("o-2", ProcessStatus.COMPLETED),
        ("o-3", ProcessStatus.ACTIVE),
    ]
    assert [r.key for r in await control.list(status=ProcessStatus.COMPLETED)] == ["o-2"]
    first_page = await control.list(name="fulfilment", limit=2)
    assert [r.key for r in first_page] == ["o-1", "o-2"]
    last = (first_page[-1].name, first_page[-1].key)
    assert [r.key for r in await control.list(name="fulfilment", after=last)] == ["o-3"]
    assert await control.list(name="other") == []

    shown = await control.get("fulfilment", "o-1")
    assert shown.timeout_id is not None
    assert control.state(shown) == Fulfilment("o-1", 0, ["placed"])
    with pytest.raises(ProcessNotFoundError, match="has no instance `o-404`"):
        await control.get("fulfilment", "o-404")


async def test_a_cancelled_instance_ignores_later_messages_and_its_timeout_is_cancelled(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    await shop.app.publish(OrderPlaced("o-1", pay_within=3600))
    pending = await shop.get("o-1")
    assert pending is not None
    timeout_id = pending.timeout_id
    assert timeout_id is not None
    control = await shop.app.get(ProcessControl)

    cancelled = await control.cancel("fulfilment", "o-1")
    assert (cancelled.status, cancelled.timeout_id, cancelled.timeout_at) == (
        ProcessStatus.CANCELLED,
        None,
        None,
    )
    assert cancelled.version == pending.version + 1
    async with shop.app.scope() as scope:  # cancelled with the instance, in its transaction
        assert await (await scope.get(Outbox)).cancel(timeout_id) is Cancellation.NOT_FOUND
    counts = await (await shop.outbox_store()).counts()
    assert counts[OutboxStatus.SCHEDULED] == 0

    with caplog.at_level(logging.INFO, "dockyard.sagas.processes"):
        await shop.app.publish(PaymentReceived("o-1", 5))
        await shop.app.publish(OrderPlaced("o-1"))  # a start message does not restart it
        await shop.app.publish(PaymentOverdue("o-1"), message_id=timeout_id)
    assert "process fulfilment o-1: cancelled, OrderPlaced ignored" in caplog.messages
    found = await shop.get("o-1")
    assert found is not None
    assert (found.status, found.state.log) == (ProcessStatus.CANCELLED, ["placed"])

    with pytest.raises(ProcessStateError, match="it is cancelled, not active"):
        await control.cancel("fulfilment", "o-1")
    await shop.app.publish(OrderPlaced("o-2"))
    await shop.app.publish(OrderShipped("o-2"))
    with pytest.raises(ProcessStateError, match="it is completed, not active"):
        await control.cancel("fulfilment", "o-2")
    with pytest.raises(ProcessNotFoundError, match="has no instance `o-404`"):
        await control.cancel("fulfilment", "o-404")


async def test_finished_instances_are_purged_and_active_ones_kept(shop: Shop) -> None:
    for key in ("o-1", "o-2", "o-3"):
        await shop.app.publish(OrderPlaced(key))
    await shop.app.publish(OrderShipped("o-1"))
    control = await shop.app.get(ProcessControl)
    await control.cancel("fulfilment", "o-2")

    assert await control.purge_finished(timedelta(days=1)) == 0
    await asyncio.sleep(0.05)
    assert await control.purge_finished(0.01, batch=1) == 2  # a batch at a time, all of them
    assert [r.key for r in await control.list()] == ["o-3"]
    with pytest.raises(ValueError, match="older_than >= 0"):
        await control.purge_finished(-1)
    # a late start message for a purged key starts it again: retention is for keys done with
    await shop.app.publish(OrderPlaced("o-1"))
    assert await shop.log("o-1") == ["placed"]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_the_worker_purges_finished_instances_with_retain_finished(
    kind: str, tmp_path: Path
) -> None:
    settings = ProcessSettings(retain_finished=timedelta(0), purge_interval=0.05)
    async with open_shop(kind, tmp_path, settings=settings) as shop:
        await shop.app.publish(OrderPlaced("o-1"))
        await shop.app.publish(OrderShipped("o-1"))
        await shop.app.publish(OrderPlaced("o-2"))
        control = await shop.app.get(ProcessControl)

        async def purged() -> bool:
            return [r.key for r in await control.list()] == ["o-2"]

        await shop.until(purged)
        assert "process-retention" in [s.name for s in shop.app.health().services]


def test_process_settings_are_checked() -> None:
    with pytest.raises(ValueError, match=r"ProcessSettings\.retain_finished must not be negative"):
        ProcessSettings(retain_finished=timedelta(seconds=-1))
    with pytest.raises(ValueError, match=r"ProcessSettings\.purge_interval must be > 0"):
        ProcessSettings(purge_interval=0)
