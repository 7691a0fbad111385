"""``OutboxContract``: what every outbox and inbox adapter must do.

Example:
    ```python
    class TestMyOutbox(OutboxContract):
        @pytest_asyncio.fixture
        async def outbox_factory(self) -> AsyncIterator[OutboxHarness]:
            database = await start_my_database()
            yield OutboxHarness(
                store=MyOutboxStore(database),
                transaction=lambda: my_transaction(database),  # yields (writer, inbox)
            )
    ```
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from dockyard.outbox import Inbox, OutboxMessage, OutboxStatus, OutboxStore, OutboxWriter

__all__ = ["OutboxContract", "OutboxHarness"]


@dataclass(frozen=True, slots=True)
class OutboxHarness:
    """The adapter under test.

    Attributes:
        store: The app-wide store (claims, dead letters).
        transaction: Opens one transaction and yields its ``(writer, inbox)``; commits when
            the block exits without an error, rolls back when it raises.

    Whether two claims can be open at once is the store's own ``claims_overlap`` (``False``
    for SQLite, whose second claim waits for the first one's write lock).
    """

    store: OutboxStore
    transaction: Callable[[], AbstractAsyncContextManager[tuple[OutboxWriter, Inbox]]]


def message(
    key: str | None = None, *, destination: str = "orders", at: float | None = None
) -> OutboxMessage:
    """A pending message, due now (or at ``at``)."""
    now = time.time() if at is None else at
    return OutboxMessage(
        message_id=str(uuid.uuid4()),
        destination=destination,
        type_name="contract.Placed",
        payload=b'{"n":1}',
        schema_version=2,
        headers={"correlation-id": "c-1", "traceparent": "00-abc-def-01"},
        partition_key=key,
        created_at=now,
        next_attempt_at=now,
    )


class OutboxContract:
    """Subclass it as ``Test…`` and implement the ``outbox_factory`` fixture."""

    @pytest_asyncio.fixture
    async def outbox_factory(
        self,
        *_fixtures: Any,
        **_named_fixtures: Any,  # subclasses take the fixtures they need
    ) -> AsyncIterator[OutboxHarness]:
        """Abstract: yield an ``OutboxHarness`` on a fresh (or test-isolated) store."""
        raise NotImplementedError(
            f"{type(self).__name__} subclasses OutboxContract but does not override the "
            "`outbox_factory` fixture. Hint: define it as an async fixture that yields an "
            "`OutboxHarness` on the adapter under test."
        )
        yield  # type: ignore[unreachable]  # an async generator, like the overrides

    @pytest.fixture
    def outbox(self, outbox_factory: OutboxHarness) -> OutboxHarness:
        return outbox_factory

    async def write(self, harness: OutboxHarness, *messages: OutboxMessage) -> None:
        async with harness.transaction() as (writer, _):
            await writer.add(messages)

    async def claim_ids(self, harness: OutboxHarness, limit: int = 100) -> list[str]:
        async with harness.store.claim(limit, time.time()) as batch:
            return [m.message_id for m in batch.messages]

    # -- writing ---------------------------------------------------------------------------

    async def test_committed_messages_round_trip(self, outbox: OutboxHarness) -> None:
        first, second = message("k-1"), message(None)
        await self.write(outbox, first, second)
        async with outbox.store.claim(10, time.time()) as batch:
            claimed = list(batch.messages)
        assert claimed == [first, second]
        assert claimed[0].headers == {"correlation-id": "c-1", "traceparent": "00-abc-def-01"}
        assert claimed[0].payload == b'{"n":1}'
        assert claimed[0].schema_version == 2

    async def test_rolled_back_messages_are_never_claimed(self, outbox: OutboxHarness) -> None:
        async def fail() -> None:
            async with outbox.transaction() as (writer, _):
                await writer.add([message("k-1")])
                raise RuntimeError("handler failed")

        with pytest.raises(RuntimeError, match="handler failed"):
            await fail()
        assert await self.claim_ids(outbox) == []
        assert await outbox.store.get("nope") is None

    async def test_a_commit_wakes_listeners(self, outbox: OutboxHarness) -> None:
        async with outbox.store.listen() as wake:
            wake.clear()
            await self.write(outbox, message())
            await asyncio.wait_for(wake.wait(), 5)

    # -- claiming --------------------------------------------------------------------------

    async def test_claims_in_order_and_respects_the_limit(self, outbox: OutboxHarness) -> None:
        written = [message(f"k-{i % 3}") for i in range(7)]
        await self.write(outbox, *written)
        assert await self.claim_ids(outbox, limit=4) == [m.message_id for m in written[:4]]

    async def test_delivered_messages_are_not_claimed_again(self, outbox: OutboxHarness) -> None:
        first, second = message("k"), message("k")
        await self.write(outbox, first, second)
        async with outbox.store.claim(1, time.time()) as batch:
            await batch.delivered([m.message_id for m in batch.messages], time.time())
        assert await self.claim_ids(outbox) == [second.message_id]
        delivered = await outbox.store.get(first.message_id)
        assert delivered is not None
        assert delivered.status is OutboxStatus.DELIVERED
        counts = await outbox.store.counts()
        assert counts[OutboxStatus.DELIVERED] == 1
        assert counts[OutboxStatus.PENDING] == 1

    async def test_a_failed_batch_leaves_every_message_pending(self, outbox: OutboxHarness) -> None:
        written = message("k")
        await self.write(outbox, written)

        async def crash() -> None:
            async with outbox.store.claim(10, time.time()) as batch:
                await batch.delivered([written.message_id], time.time())
                raise ConnectionError("relay lost its broker mid-batch")

        with pytest.raises(ConnectionError):
            await crash()
        assert await self.claim_ids(outbox) == [written.message_id]

    async def test_concurrent_claims_never_share_a_message_or_a_key(
        self, outbox: OutboxHarness
    ) -> None:
        if not outbox.store.claims_overlap:
            pytest.skip("this adapter runs one claim at a time (claims_overlap is False)")
        a1, b1, a2, free = message("a"), message("b"), message("a"), message(None)
        await self.write(outbox, a1, b1, a2, free)
        async with outbox.store.claim(2, time.time()) as first:
            assert [m.message_id for m in first.messages] == [a1.message_id, b1.message_id]
            async with outbox.store.claim(10, time.time()) as second:
                # `a2` waits behind `a1`, held by the first claim; the keyless one is free
                assert [m.message_id for m in second.messages] == [free.message_id]
            await first.delivered([a1.message_id, b1.message_id], time.time())
        assert await self.claim_ids(outbox) == [a2.message_id, free.message_id]

    async def test_a_retry_holds_back_later_messages_of_its_key(
        self, outbox: OutboxHarness
    ) -> None:
        k1, other, k2 = message("k"), message("other"), message("k")
        await self.write(outbox, k1, other, k2)
        now = time.time()
        async with outbox.store.claim(1, now) as batch:
            await batch.failed(k1.message_id, "ConnectionError: broker down", 1, now + 60)
        assert await self.claim_ids(outbox) == [other.message_id]
        retried = await outbox.store.get(k1.message_id)
        assert retried is not None
        assert (retried.attempts, retried.last_error) == (1, "ConnectionError: broker down")
        assert await outbox.store.next_due() == pytest.approx(min(now + 60, k2.next_attempt_at))
        async with outbox.store.claim(10, now + 61) as batch:
            ids = [m.message_id for m in batch.messages]
        assert ids == [k1.message_id, other.message_id, k2.message_id]

    # -- dead letters ----------------------------------------------------------------------

    async def test_dead_letters_are_listed_replayed_and_purged(self, outbox: OutboxHarness) -> None:
        doomed = [message("k", destination="orders"), message(None, destination="mail")]
        await self.write(outbox, *doomed)
        async with outbox.store.claim(10, time.time()) as batch:
            for m in batch.messages:
                await batch.dead(m.message_id, "ValueError: too big", 10)
        dead = await outbox.store.dead_letters()
        assert [d.message_id for d in dead] == [d.message_id for d in doomed]
        assert {(d.status, d.last_error, d.attempts) for d in dead} == {
            (OutboxStatus.DEAD, "ValueError: too big", 10)
        }
        assert await self.claim_ids(outbox) == []
        assert [d.destination for d in await outbox.store.dead_letters(destination="mail")] == [
            "mail"
        ]
        page = await outbox.store.dead_letters(after=doomed[0].message_id)
        assert [d.message_id for d in page] == [doomed[1].message_id]

        replayed = await outbox.store.replay([doomed[0].message_id], time.time())
        assert replayed == [doomed[0].message_id]
        assert await self.claim_ids(outbox) == [doomed[0].message_id]
        back = await outbox.store.get(doomed[0].message_id)
        assert back is not None
        assert (back.status, back.attempts, back.last_error) == (OutboxStatus.PENDING, 0, None)

        assert await outbox.store.purge_dead(None) == [doomed[1].message_id]
        assert await outbox.store.dead_letters() == []
        assert await outbox.store.replay(None, time.time()) == []

    async def test_a_consumer_dead_letter_replaces_a_delivered_row(
        self, outbox: OutboxHarness
    ) -> None:
        sent = message("k")
        await self.write(outbox, sent)
        async with outbox.store.claim(10, time.time()) as batch:
            await batch.delivered([sent.message_id], time.time())
        failed = OutboxMessage(
            **{
                **{f: getattr(sent, f) for f in OutboxMessage.__dataclass_fields__},
                "status": OutboxStatus.DEAD,
                "attempts": 5,
                "last_error": "consumer:orders:billing: KeyError: 'sku'",
            }
        )
        await outbox.store.add_dead_letter(failed)
        await outbox.store.add_dead_letter(message(None))
        dead = await outbox.store.dead_letters()
        assert dead[0].message_id == sent.message_id
        assert dead[0].last_error == "consumer:orders:billing: KeyError: 'sku'"
        assert len(dead) == 2

    async def test_delivered_messages_are_purged_after_retention(
        self, outbox: OutboxHarness
    ) -> None:
        old, recent = message(), message()
        await self.write(outbox, old, recent)
        now = time.time()
        async with outbox.store.claim(10, now) as batch:
            await batch.delivered([old.message_id], now - 100)
            await batch.delivered([recent.message_id], now)
        assert await outbox.store.purge_delivered(now - 50) == 1
        assert await outbox.store.get(old.message_id) is None
        assert await outbox.store.get(recent.message_id) is not None

    # -- inbox -----------------------------------------------------------------------------

    async def test_the_inbox_records_each_message_once_per_handler(
        self, outbox: OutboxHarness
    ) -> None:
        async with outbox.transaction() as (_, inbox):
            assert await inbox.record("m-1", "billing") is True
            assert await inbox.record("m-1", "shipping") is True
        async with outbox.transaction() as (_, inbox):
            assert await inbox.record("m-1", "billing") is False

    async def test_a_rolled_back_inbox_record_is_forgotten(self, outbox: OutboxHarness) -> None:
        async def fail() -> None:
            async with outbox.transaction() as (_, inbox):
                assert await inbox.record("m-2", "billing") is True
                raise RuntimeError("the handler failed")

        with pytest.raises(RuntimeError, match="the handler failed"):
            await fail()
        async with outbox.transaction() as (_, inbox):
            assert await inbox.record("m-2", "billing") is True
