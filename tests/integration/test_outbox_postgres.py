"""The SQL outbox and inbox on PostgreSQL: the contract, the claim's plan, concurrent inboxes."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest
import pytest_asyncio
from sqlalchemy import text

from dockyard.outbox import (
    Destinations,
    Inbox,
    OutboxMessage,
    OutboxRelay,
    OutboxStatus,
    OutboxWriter,
    RelaySettings,
)
from dockyard.sql import Database, SqlInbox, SqlOutboxStore, SqlOutboxWriter
from dockyard.testing.contracts import OutboxContract, OutboxHarness
from dockyard.transport import TransportMessage
from dockyard.transport.memory import InMemoryTransport

pytestmark = pytest.mark.postgres


def sql_harness(database: Database) -> OutboxHarness:
    @asynccontextmanager
    async def transaction() -> AsyncIterator[tuple[OutboxWriter, Inbox]]:
        async with database.unit_of_work() as uow:
            yield SqlOutboxWriter(uow), SqlInbox(uow)

    return OutboxHarness(store=SqlOutboxStore(database), transaction=transaction)


class TestPostgresOutbox(OutboxContract):
    @pytest_asyncio.fixture
    async def outbox_factory(self, postgres_database: Database) -> AsyncIterator[OutboxHarness]:
        yield sql_harness(postgres_database)


@pytest.mark.parametrize(
    "destinations",
    [None, Destinations(("nats://",), scope="nats"), Destinations(("nats://",), exclude=True)],
    ids=["one transport", "a named transport's relay", "the first transport's relay"],
)
async def test_the_claim_reads_its_candidates_from_the_pending_index(
    postgres_database: Database, destinations: Destinations | None
) -> None:
    # The key locks no longer depend on the plan (test_outbox_claim_postgres.py); reading
    # the candidates in index order, not sorting every pending row, is what keeps it cheap.
    # With several transports, each relay's claim filters the same index scan.
    from dockyard.sql._outbox.store import _claim_statements, _destination_params

    claim, _ = _claim_statements("postgresql", destinations)
    async with postgres_database.unit_of_work() as uow:
        await uow.connection.execute(text("SET LOCAL enable_seqscan = off"))
        plan = await uow.connection.execute(
            text(f"EXPLAIN {claim.text}"),
            {"now": 0.0, "limit": 500, "window": 2_000, **_destination_params(destinations)},
        )
        lines = "\n".join(row[0] for row in plan)
    candidates = lines[: lines.index("keyed")]
    assert "ix_dockyard_outbox_pending" in candidates
    assert "Sort" not in candidates


async def test_concurrent_inbox_records_let_one_scope_win(postgres_database: Database) -> None:
    first_recorded = asyncio.Event()

    async def first() -> bool:
        async with postgres_database.unit_of_work() as uow:
            recorded = await SqlInbox(uow).record("m-1", "billing")
            first_recorded.set()
            await asyncio.sleep(0.2)  # the second scope waits on the key meanwhile
            return recorded

    async def second() -> bool:
        await first_recorded.wait()
        async with postgres_database.unit_of_work() as uow:
            return await SqlInbox(uow).record("m-1", "billing")

    assert list(await asyncio.gather(first(), second())) == [True, False]


class SlowBroker(InMemoryTransport):
    """Confirms a batch after a random pause, recording the order messages were accepted in
    and how many batches were in flight at once."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.accepted: list[TransportMessage] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.overlapped = asyncio.Event()

    async def publish_many(self, messages: Sequence[TransportMessage], /) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if self.in_flight >= 2:
            self.overlapped.set()
        try:
            if not self.overlapped.is_set():
                # The first batch waits for a second one, however slow the claims are on a
                # loaded machine (a pipelined relay sends one while this one is unconfirmed);
                # the bound only keeps a relay that never pipelines from hanging the test.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.overlapped.wait(), 30)
            await asyncio.sleep(self.rng.uniform(0.0, 0.01))
            self.accepted.extend(messages)
        finally:
            self.in_flight -= 1


async def test_a_pipelined_relay_keeps_each_keys_order(postgres_database: Database) -> None:
    # Keys six deep and short batches, so a key's run is often cut by the batch limit; the
    # next claims run while earlier batches wait for their confirms, which come in any order.
    # (More keys than a batch holds: a claim beside a batch in flight takes other keys.)
    messages = [
        OutboxMessage(
            f"m-{n:04d}", "orders", "Placed", b"{}", partition_key=f"k-{n % 40}",
            created_at=0.0, next_attempt_at=0.0,
        )
        for n in range(1_200)
    ]  # fmt: skip
    for start in range(0, len(messages), 100):
        async with postgres_database.unit_of_work() as uow:
            await SqlOutboxWriter(uow).add(messages[start : start + 100])
    store = SqlOutboxStore(postgres_database)
    assert store.claims_overlap
    broker = SlowBroker(seed=3)
    relays = [OutboxRelay(store, broker, RelaySettings(batch_size=25, pipeline=3)) for _ in "ab"]
    delivered = sum(await asyncio.gather(*(r.drain() for r in relays)))
    while (await store.counts())[OutboxStatus.PENDING]:  # one drain may end while the other
        delivered += await relays[0].drain()  # relay holds the last rows
    assert delivered == len(messages)
    assert sorted(m.message_id for m in broker.accepted) == [m.message_id for m in messages]
    for key in {m.partition_key for m in messages}:
        order = [m.message_id for m in broker.accepted if m.partition_key == key]
        assert order == sorted(order), f"{key} was reordered"
    assert broker.most_in_flight >= 2  # the batches did overlap
