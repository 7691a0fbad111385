"""The relay: order within a key, retries with backoff, dead letters, waking up, stopping,
pausing through a broker outage."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.exceptions import (
    BrokerPublishError,
    StoreUnavailableError,
    TransportUnavailableError,
)
from dockyard.outbox import (
    ClaimedBatch,
    OutboxMessage,
    OutboxRelay,
    OutboxStatus,
    RelaySettings,
)
from dockyard.outbox.memory import InMemoryOutboxStore
from dockyard.retry import RetryPolicy
from dockyard.transport import BatchPublisher, Subscription, Transport, TransportMessage
from dockyard.transport.memory import InMemoryTransport


class FlakyTransport(InMemoryTransport):
    """Fails the publishes whose message ids are in ``failing`` (or by a random draw)."""

    def __init__(
        self, *, failing: set[str] | None = None, rate: float = 0.0, seed: int = 0, turns: int = 0
    ) -> None:
        super().__init__()
        self.turns = turns  # event-loop turns each publish takes
        self.failing = failing or set()
        self.rate = rate
        self.rng = random.Random(seed)
        self.log: list[TransportMessage] = []

    async def publish(self, message: TransportMessage, /) -> None:
        for _ in range(self.turns):
            await asyncio.sleep(0)
        if message.message_id in self.failing or self.rng.random() < self.rate:
            raise ConnectionError(f"broker refused {message.message_id}")
        self.log.append(message)
        await super().publish(message)


class OneByOne:
    """Only the ``Transport`` port, no ``publish_many``: the relay publishes one by one."""

    def __init__(self, inner: InMemoryTransport) -> None:
        self.inner = inner

    async def publish(self, message: TransportMessage, /) -> None:
        await self.inner.publish(message)

    async def declare(self, destination: str, group: str) -> None:
        await self.inner.declare(destination, group)

    def subscribe(
        self, destination: str, group: str, *, prefetch: int = 1
    ) -> AbstractAsyncContextManager[Subscription]:
        return self.inner.subscribe(destination, group, prefetch=prefetch)

    async def close(self) -> None:
        await self.inner.close()


def both_ways(flaky: FlakyTransport, one_by_one: bool) -> Transport:
    return OneByOne(flaky) if one_by_one else flaky


BOTH_WAYS = pytest.mark.parametrize("one_by_one", [False, True], ids=["batch", "one-by-one"])


def outbox_message(n: int, key: str | None) -> OutboxMessage:
    now = time.time()
    return OutboxMessage(
        f"m-{n}", "orders", "Placed", b"%d" % n, partition_key=key, created_at=now,
        next_attempt_at=now,
    )  # fmt: skip


def no_wait(max_attempts: int = 3) -> RelaySettings:
    return RelaySettings(
        batch_size=3, retry=RetryPolicy(max_attempts=max_attempts, initial_delay=0.0)
    )


@BOTH_WAYS
async def test_a_failure_holds_back_its_key_and_lets_other_keys_through(one_by_one: bool) -> None:
    store = InMemoryOutboxStore()
    store.append([outbox_message(0, "a"), outbox_message(1, "b"), outbox_message(2, "a")])
    transport = FlakyTransport(failing={"m-0"})
    relay = OutboxRelay(
        store,
        both_ways(transport, one_by_one),
        RelaySettings(retry=RetryPolicy(initial_delay=60, jitter=False)),
    )
    result = await relay.relay_once()
    assert (result.claimed, result.delivered, result.retried, result.dead) == (3, 1, 1, 0)
    assert [m.message_id for m in transport.log] == ["m-1"]
    failed = await store.get("m-0")
    assert failed is not None
    assert (failed.attempts, failed.last_error) == (1, "ConnectionError: broker refused m-0")
    assert failed.next_attempt_at > time.time() + 1  # backing off
    assert (await relay.relay_once()).claimed == 0  # m-2 waits behind m-0's retry
    held = await store.get("m-2")
    assert held is not None
    assert (held.status, held.attempts) == (OutboxStatus.PENDING, 0)  # untouched


class Batching(InMemoryTransport):
    """Records each ``publish_many`` call; fails the whole call when told to."""

    def __init__(self, *, broken: bool = False) -> None:
        super().__init__()
        self.calls: list[list[str]] = []
        self.broken = broken

    async def publish_many(self, messages: Sequence[TransportMessage], /) -> None:
        self.calls.append([m.message_id for m in messages])
        if self.broken:
            raise ConnectionError("connection lost")
        await super().publish_many(messages)


async def test_a_batch_goes_out_in_one_publish_many_call() -> None:
    store = InMemoryOutboxStore()
    store.append([outbox_message(n, f"k-{n % 2}") for n in range(6)])
    transport = Batching()
    assert isinstance(transport, BatchPublisher)
    result = await OutboxRelay(store, transport, RelaySettings(batch_size=10)).relay_once()
    assert (result.claimed, result.delivered) == (6, 6)
    assert transport.calls == [[f"m-{n}" for n in range(6)]]
    assert transport.published == 6


async def test_a_failed_publish_many_fails_the_head_of_each_key_and_keeps_the_rest() -> None:
    store = InMemoryOutboxStore()
    keys = ["a", "b", "a", None, None]
    store.append([outbox_message(n, key) for n, key in enumerate(keys)])
    settings = RelaySettings(batch_size=10, retry=RetryPolicy(initial_delay=60))
    relay = OutboxRelay(store, Batching(broken=True), settings)
    result = await relay.relay_once()
    assert (result.claimed, result.delivered, result.retried) == (5, 0, 4)
    attempts = {m: (await store.get(m)) for m in ("m-0", "m-1", "m-2", "m-3", "m-4")}
    assert {m: o.attempts for m, o in attempts.items() if o is not None} == {
        "m-0": 1, "m-1": 1, "m-2": 0, "m-3": 1, "m-4": 1,
    }  # fmt: skip
    assert attempts["m-0"] is not None
    assert attempts["m-0"].last_error == "ConnectionError: connection lost"


async def test_the_last_attempt_makes_a_dead_letter_and_its_key_moves_on() -> None:
    store = InMemoryOutboxStore()
    store.append([outbox_message(0, "a"), outbox_message(1, "a")])
    transport = FlakyTransport(failing={"m-0"})
    relay = OutboxRelay(store, transport, no_wait(max_attempts=3))
    assert await relay.drain() == 1
    dead = await store.dead_letters()
    assert [(d.message_id, d.attempts, d.status) for d in dead] == [("m-0", 3, OutboxStatus.DEAD)]
    assert [m.message_id for m in transport.log] == ["m-1"]


@settings(max_examples=40, deadline=None)
@given(
    keys=st.lists(st.sampled_from(["a", "b", "c", "d", None]), min_size=1, max_size=40),
    rate=st.sampled_from([0.0, 0.3, 0.6]),
    seed=st.integers(0, 1000),
    batch=st.integers(1, 7),
    one_by_one=st.booleans(),
    pipeline=st.integers(1, 3),
)
def test_the_relay_never_loses_nor_reorders_within_a_key(
    keys: list[str | None], rate: float, seed: int, batch: int, one_by_one: bool, pipeline: int
) -> None:
    async def scenario() -> None:
        store = InMemoryOutboxStore()
        store.append([outbox_message(n, key) for n, key in enumerate(keys)])
        transport = FlakyTransport(rate=rate, seed=seed, turns=3)  # batches overlap
        retry = RetryPolicy(max_attempts=1_000, initial_delay=0.0)
        settings = RelaySettings(batch_size=batch, retry=retry, pipeline=pipeline)
        relay = OutboxRelay(store, both_ways(transport, one_by_one), settings)
        for _ in range(10_000):
            if (await store.counts())[OutboxStatus.PENDING] == 0:
                break
            await relay.drain()
        published = [m.message_id for m in transport.log]
        assert sorted(published) == sorted(f"m-{n}" for n in range(len(keys)))  # once each
        by_key: dict[str | None, list[int]] = defaultdict(list)
        for m in transport.log:
            by_key[m.partition_key].append(int(m.message_id[2:]))
        for key, order in by_key.items():
            if key is not None:
                assert order == sorted(order)

    asyncio.run(scenario())


async def test_run_wakes_on_commit_and_returns_when_stopped() -> None:
    store = InMemoryOutboxStore()
    transport = InMemoryTransport()
    relay = OutboxRelay(store, transport, RelaySettings(idle_poll_interval=30))
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    await asyncio.sleep(0.05)  # idle now, waiting for a wake-up
    started = time.perf_counter()
    store.append([outbox_message(0, None)])
    async with transport.subscribe("orders", "billing") as subscription:
        await asyncio.wait_for(anext(aiter(subscription)), 1)
    assert time.perf_counter() - started < 1.0  # woken, not polled after 30 s
    stop.set()
    await asyncio.wait_for(task, 1)
    assert relay.name == "outbox-relay"


async def test_delivered_messages_are_deleted_after_the_retention() -> None:
    store = InMemoryOutboxStore()
    store.append([outbox_message(0, None)])
    relay = OutboxRelay(store, InMemoryTransport(), RelaySettings(retention=0.0))
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    for _ in range(200):
        if await store.get("m-0") is None:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await task
    assert await store.get("m-0") is None


class CountingStore(InMemoryOutboxStore):
    """Counts how many claims are open at once (the pipeline's depth, as the store sees it)."""

    def __init__(self) -> None:
        super().__init__()
        self.open = 0
        self.most_open = 0
        self.claims: list[tuple[int, int]] = []  # (claims open beside it, messages it took)

    @contextlib.asynccontextmanager
    async def _claim(self, limit: int, now: float) -> AsyncIterator[ClaimedBatch]:
        async with super()._claim(limit, now) as batch:
            self.claims.append((self.open, len(batch.messages)))
            self.open += 1
            self.most_open = max(self.most_open, self.open)
            try:
                yield batch
            finally:
                self.open -= 1


class SlowConfirms(FlakyTransport):
    """A batch's confirms take many event-loop turns (a claim from memory takes a few)."""

    async def publish_many(self, messages: Sequence[TransportMessage], /) -> None:
        for _ in range(50):
            await asyncio.sleep(0)
        await super().publish_many(messages)


@pytest.mark.parametrize("pipeline", [1, 2, 3])
async def test_the_next_batch_is_claimed_while_one_is_published(pipeline: int) -> None:
    store = CountingStore()
    store.append([outbox_message(n, f"k-{n % 30}") for n in range(60)])
    transport = SlowConfirms()
    relay = OutboxRelay(store, transport, RelaySettings(batch_size=5, pipeline=pipeline))
    assert await relay.drain() == 60
    assert store.most_open == pipeline
    assert store.open == 0
    assert sorted(m.message_id for m in transport.log) == sorted(f"m-{n}" for n in range(60))


async def test_a_short_claim_beside_a_batch_in_flight_claims_again_alone() -> None:
    # Two keys, batches of 4: the second claim finds only what the first does not hold, comes
    # back short, and must not end the drain while rows of the first one's keys remain.
    store = CountingStore()
    store.append([outbox_message(n, "a" if n < 12 else "b") for n in range(14)])
    transport = SlowConfirms()
    relay = OutboxRelay(store, transport, RelaySettings(batch_size=4, pipeline=2))
    assert await relay.drain() == 14
    assert (await store.counts())[OutboxStatus.PENDING] == 0


async def test_with_fewer_keys_than_a_batch_the_relay_stops_claiming_beside_one() -> None:
    # Every batch holds both keys: a claim beside it finds nothing (and on PostgreSQL reads
    # every pending row to learn that), so after the first such claim the drain goes on
    # one batch at a time.
    store = CountingStore()
    store.append([outbox_message(n, "a" if n % 2 else "b") for n in range(40)])
    relay = OutboxRelay(store, SlowConfirms(), RelaySettings(batch_size=4, pipeline=2))
    assert await relay.drain() == 40
    beside = [taken for open_beside, taken in store.claims if open_beside]
    assert beside == [0]


async def test_a_failing_claim_lets_the_batch_in_flight_commit_and_goes_up() -> None:
    class FailsSecondClaim(CountingStore):
        asked = 0

        def claim(self, limit: int, now: float, /) -> AbstractAsyncContextManager[ClaimedBatch]:
            self.asked += 1
            if self.asked == 2:
                raise StoreUnavailableError("claim outbox messages", "connection refused")
            return super().claim(limit, now)

    store = FailsSecondClaim()
    store.append([outbox_message(n, f"k-{n}") for n in range(8)])
    transport = SlowConfirms()
    relay = OutboxRelay(store, transport, RelaySettings(batch_size=4, pipeline=2))
    with pytest.raises(StoreUnavailableError):
        await relay.drain()
    assert store.open == 0
    counts = await store.counts()  # the first batch finished and committed; nothing else ran
    assert (counts[OutboxStatus.DELIVERED], counts[OutboxStatus.PENDING]) == (4, 4)


def test_pipeline_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="pipeline"):
        RelaySettings(pipeline=0)


# -- a broker outage ------------------------------------------------------------------------

_WAIT = 30.0


def numbered(n: int, key: str | None) -> OutboxMessage:
    now = time.time()
    return OutboxMessage(
        f"m-{n:03d}", "orders", "Placed", b"%d" % n, partition_key=key, created_at=now,
        next_attempt_at=now,
    )  # fmt: skip


class CountingTransport(InMemoryTransport):
    """Counts the publishes (single or batch) refused because it was offline."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0
        self.refused_changed = asyncio.Event()

    async def publish(self, message: TransportMessage, /) -> None:
        try:
            await super().publish(message)
        except TransportUnavailableError:
            self._count()
            raise

    async def publish_many(self, messages: Sequence[TransportMessage], /) -> None:
        try:
            await super().publish_many(messages)
        except TransportUnavailableError:
            self._count()
            raise

    def _count(self) -> None:
        self.refused += 1
        self.refused_changed.set()

    async def wait_refused(self, times: int) -> None:
        async def until() -> None:
            while self.refused < times:
                self.refused_changed.clear()
                await self.refused_changed.wait()

        await asyncio.wait_for(until(), _WAIT)


async def _take(subscription: Subscription, count: int) -> list[TransportMessage]:
    got: list[TransportMessage] = []
    async for delivery in subscription:
        got.append(delivery.message)
        await delivery.ack()
        if len(got) == count:
            break
    return got


def strict() -> RelaySettings:
    # Two attempts and no backoff: any attempt counted for the outage makes a dead letter.
    return RelaySettings(
        batch_size=4,
        retry=RetryPolicy(max_attempts=2, initial_delay=0.0),
        outage_pause=0.01,
        max_outage_pause=0.05,
        max_poll_interval=0.01,
    )


@pytest.mark.parametrize("one_by_one", [False, True], ids=["batch", "one-by-one"])
async def test_an_outage_counts_no_attempts_and_makes_no_dead_letters(
    one_by_one: bool, caplog: pytest.LogCaptureFixture
) -> None:
    store = InMemoryOutboxStore()
    messages = [numbered(n, f"k-{n % 3}") for n in range(12)]
    store.append(messages)
    transport = CountingTransport()
    await transport.declare("orders", "billing")
    transport.go_offline()
    relay = OutboxRelay(store, OneByOne(transport) if one_by_one else transport, strict())
    stop = asyncio.Event()
    caplog.set_level(logging.INFO, logger="dockyard.outbox")
    task = asyncio.create_task(relay.run(stop))
    try:
        await transport.wait_refused(10)  # ten tries, each would have been an attempt
        assert await store.dead_letters() == []
        for sent in messages:
            stored = await store.get(sent.message_id)
            assert stored is not None
            assert (stored.status, stored.attempts) == (OutboxStatus.PENDING, 0)
        transport.go_online()
        async with transport.subscribe("orders", "billing", prefetch=len(messages)) as received:
            got = await asyncio.wait_for(_take(received, len(messages)), _WAIT)
    finally:
        stop.set()
        await asyncio.wait_for(task, _WAIT)
    assert (await store.counts())[OutboxStatus.DELIVERED] == len(messages)
    for key in ("k-0", "k-1", "k-2"):
        order = [m.message_id for m in got if m.partition_key == key]
        assert order == sorted(order)
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    warning = (
        "outbox-relay: the transport is unavailable; relaying is paused until it answers "
        "(no attempts are counted meanwhile): The in-memory broker is unavailable: it was "
        "taken offline (go_offline()). Nothing was refused: the relay pauses and publishes "
        "again once the broker answers, without counting an attempt against any message. "
        "Hint: check that the broker runs and is reachable from this process (URL, network, "
        "credentials)."
    )
    assert [text for level, text in lines if level >= logging.WARNING] == [warning]
    recovered = [text for level, text in lines if level == logging.INFO]
    assert len(recovered) == 1
    assert recovered[0].startswith("outbox-relay: the transport is available again after ")


async def test_relay_once_during_an_outage_leaves_every_message_as_it_was() -> None:
    store = InMemoryOutboxStore()
    store.append([numbered(0, "a"), numbered(1, None), numbered(2, "a")])
    transport = InMemoryTransport()
    transport.go_offline()
    result = await OutboxRelay(store, transport, strict()).relay_once()
    assert (result.claimed, result.delivered, result.retried, result.dead) == (3, 0, 0, 0)
    assert result.unavailable == 2  # the head of key a, and the unkeyed one
    for n in range(3):
        stored = await store.get(f"m-{n:03d}")
        assert stored is not None
        assert (stored.attempts, stored.last_error) == (0, None)


class Refusing(InMemoryTransport):
    """Refuses one message as a broker would (too large, unroutable, nacked)."""

    async def publish(self, message: TransportMessage, /) -> None:
        if message.message_id == "m-000":
            raise BrokerPublishError("in-memory", message.destination, "message too large")
        await super().publish(message)


async def test_a_refused_message_still_becomes_a_dead_letter_with_the_reason() -> None:
    store = InMemoryOutboxStore()
    store.append([numbered(0, "a"), numbered(1, "a")])
    relay = OutboxRelay(store, Refusing(), strict())
    assert await relay.drain() == 1
    dead = await store.dead_letters()
    assert [(d.message_id, d.attempts) for d in dead] == [("m-000", 2)]
    assert dead[0].last_error is not None
    assert "message too large" in dead[0].last_error


def test_outage_pauses_must_be_positive_and_ordered() -> None:
    with pytest.raises(ValueError, match="outage_pause"):
        RelaySettings(outage_pause=0.0)
    with pytest.raises(ValueError, match="outage_pause"):
        RelaySettings(outage_pause=2.0, max_outage_pause=1.0)
