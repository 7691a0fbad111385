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
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from dockyard.outbox import (
    Cancellation,
    Inbox,
    OutboxMessage,
    OutboxStatus,
    OutboxStore,
    OutboxWriter,
    Promotion,
)

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
    key: str | None = None,
    *,
    destination: str = "orders",
    at: float | None = None,
    due: float | None = None,
) -> OutboxMessage:
    """A pending message, due now (or at ``at``); scheduled for ``due`` if given."""
    now = time.time() if at is None else at
    if due is not None:
        return dataclasses.replace(
            message(key, destination=destination, at=now),
            next_attempt_at=due,
            status=OutboxStatus.SCHEDULED,
        )
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

    # -- scheduled messages (docs/design/scheduled-messages.md) -----------------------------

    async def cancel(self, harness: OutboxHarness, message_id: str) -> Cancellation:
        async with harness.transaction() as (writer, _):
            return await writer.cancel(message_id)

    async def test_a_scheduled_message_waits_until_it_is_promoted(
        self, outbox: OutboxHarness
    ) -> None:
        now = time.time()
        later = message("k", due=now + 60)
        await self.write(outbox, later)
        assert await self.claim_ids(outbox) == []
        found = await outbox.store.get(later.message_id)
        assert found == later
        assert (await outbox.store.counts())[OutboxStatus.SCHEDULED] == 1
        assert await outbox.store.next_due() == pytest.approx(now + 60)
        early = await outbox.store.promote(now + 59, 10)
        assert early.count == 0
        assert early.next_due == pytest.approx(now + 60)
        assert await outbox.store.promote(now + 60, 10) == Promotion(1, None)
        assert await outbox.store.promote(now + 60, 10) == Promotion(0, None)
        promoted = await outbox.store.get(later.message_id)
        assert promoted is not None
        assert promoted.status is OutboxStatus.PENDING
        assert (promoted.payload, promoted.headers) == (later.payload, later.headers)
        async with outbox.store.claim(10, now + 60) as batch:
            assert [m.message_id for m in batch.messages] == [later.message_id]
        counts = await outbox.store.counts()
        assert (counts[OutboxStatus.SCHEDULED], counts[OutboxStatus.PENDING]) == (0, 1)

    async def test_a_scheduled_message_does_not_hold_back_its_key(
        self, outbox: OutboxHarness
    ) -> None:
        later, now_ = message("k", due=time.time() + 3600), message("k")
        await self.write(outbox, later, now_)
        assert await self.claim_ids(outbox) == [now_.message_id]

    async def test_promoted_messages_join_their_keys_order_when_due(
        self, outbox: OutboxHarness
    ) -> None:
        now = time.time()
        first = message("k")
        due_last, due_first, due_first_too = (
            message("k", due=now + 20),
            message("k", due=now + 10),
            message("k", due=now + 10),  # same due time: scheduling order
        )
        await self.write(outbox, first, due_last, due_first, due_first_too)
        second = message("k")
        await self.write(outbox, second)
        taken = await outbox.store.promote(now + 30, 2)  # the limit, in due order
        assert taken.count == 2
        assert taken.next_due == pytest.approx(now + 20)
        assert await outbox.store.promote(now + 30, 2) == Promotion(1, None)
        async with outbox.store.claim(10, now + 30) as batch:
            ids = [m.message_id for m in batch.messages]
        expected = [first, second, due_first, due_first_too, due_last]
        assert ids == [m.message_id for m in expected]

    async def test_cancelling_a_scheduled_message(self, outbox: OutboxHarness) -> None:
        now = time.time()
        later = message("k", due=now + 60)
        await self.write(outbox, later)
        assert await self.cancel(outbox, later.message_id) is Cancellation.CANCELLED
        assert await outbox.store.get(later.message_id) is None
        assert await outbox.store.promote(now + 61, 10) == Promotion(0, None)
        assert await outbox.store.next_due() is None
        assert await self.cancel(outbox, later.message_id) is Cancellation.NOT_FOUND

    async def test_cancelling_pending_published_and_unknown_messages(
        self, outbox: OutboxHarness
    ) -> None:
        sent, waiting, dead = message("k"), message("k"), message(None)
        await self.write(outbox, sent, waiting, dead)
        async with outbox.store.claim(1, time.time()) as batch:
            await batch.delivered([sent.message_id], time.time())
        async with outbox.store.claim(10, time.time()) as batch:
            await batch.dead(dead.message_id, "ValueError: too big", 10)
        assert await self.cancel(outbox, sent.message_id) is Cancellation.ALREADY_PUBLISHED
        assert await self.cancel(outbox, waiting.message_id) is Cancellation.CANCELLED
        assert await self.cancel(outbox, dead.message_id) is Cancellation.CANCELLED
        assert await self.cancel(outbox, "never-written") is Cancellation.NOT_FOUND
        assert await self.claim_ids(outbox) == []
        assert await outbox.store.dead_letters() == []
        delivered = await outbox.store.get(sent.message_id)
        assert delivered is not None
        assert delivered.status is OutboxStatus.DELIVERED

    async def test_a_rolled_back_cancel_cancels_nothing(self, outbox: OutboxHarness) -> None:
        later, waiting = message("k", due=time.time() + 60), message("j")

        async def cancel_then_fail() -> None:
            async with outbox.transaction() as (writer, _):
                assert await writer.cancel(later.message_id) is Cancellation.CANCELLED
                assert await writer.cancel(waiting.message_id) is Cancellation.CANCELLED
                assert await writer.cancel(later.message_id) is Cancellation.NOT_FOUND  # gone
                raise RuntimeError("the handler failed")

        await self.write(outbox, later, waiting)
        with pytest.raises(RuntimeError, match="the handler failed"):
            await cancel_then_fail()
        assert await self.claim_ids(outbox) == [waiting.message_id]
        assert await outbox.store.get(later.message_id) == later

    async def test_a_message_cancelled_by_the_scope_that_wrote_it_is_never_written(
        self, outbox: OutboxHarness
    ) -> None:
        later, now_ = message("k", due=time.time() + 60), message("k")
        async with outbox.transaction() as (writer, _):
            await writer.add([later, now_])
            assert await writer.cancel(later.message_id) is Cancellation.CANCELLED
            assert await writer.cancel(now_.message_id) is Cancellation.CANCELLED
            assert await writer.cancel(now_.message_id) is Cancellation.NOT_FOUND
        assert await outbox.store.get(later.message_id) is None
        assert await outbox.store.get(now_.message_id) is None

    async def test_a_cancel_in_progress_holds_back_the_message_and_its_key(
        self, outbox: OutboxHarness
    ) -> None:
        if not outbox.store.claims_overlap:
            pytest.skip("this adapter's open scope holds the one write lock a claim needs")
        first, second, other = message("k"), message("k"), message("j")
        later = message("j", due=time.time() + 1)
        await self.write(outbox, first, second, other, later)
        async with outbox.transaction() as (writer, _):
            assert await writer.cancel(first.message_id) is Cancellation.CANCELLED
            assert await writer.cancel(later.message_id) is Cancellation.CANCELLED
            # neither `first` nor `second` behind it, until the scope ends; nor is `later`
            # promoted meanwhile
            assert await self.claim_ids(outbox) == [other.message_id]
            assert (await outbox.store.promote(time.time() + 2, 10)).count == 0
        assert await self.claim_ids(outbox) == [second.message_id, other.message_id]

    @pytest.mark.parametrize("published", [True, False])
    async def test_cancelling_a_message_in_flight_waits_for_its_batch(
        self, outbox: OutboxHarness, published: bool
    ) -> None:
        written = message("k")
        await self.write(outbox, written)
        async with outbox.store.claim(10, time.time()) as batch:
            assert [m.message_id for m in batch.messages] == [written.message_id]
            cancelling = asyncio.create_task(self.cancel(outbox, written.message_id))
            await asyncio.sleep(0.05)  # the cancel waits for the batch (if it got that far)
            if published:
                await batch.delivered([written.message_id], time.time())
            else:
                await batch.failed(written.message_id, "ConnectionError: no", 1, time.time())
        expected = Cancellation.ALREADY_PUBLISHED if published else Cancellation.CANCELLED
        assert await asyncio.wait_for(cancelling, 30) is expected

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

    async def test_dead_letters_are_filtered_and_counted(self, outbox: OutboxHarness) -> None:
        def dead(n: int, destination: str, type_name: str, error: str) -> OutboxMessage:
            return dataclasses.replace(
                message(None, destination=destination, at=1_000.0 + n),
                type_name=type_name,
                status=OutboxStatus.DEAD,
                attempts=3,
                last_error=error,
            )

        letters = [
            dead(0, "orders", "shop.Placed", "ConnectionError: broker gone"),
            dead(1, "mail", "shop.Placed", "ValueError: 100% too_big"),
            dead(2, "orders", "shop.Paid", "consumer:orders:billing: KeyError: 'sku'"),
            dead(3, "orders", "shop.Placed", "connectionerror: Broker GONE again"),
        ]
        for letter in letters:
            await outbox.store.add_dead_letter(letter)
        await self.write(outbox, message(None, destination="orders"))  # pending: never listed

        async def ids(**filters: Any) -> list[int]:
            found = await outbox.store.dead_letters(**filters)
            count = await outbox.store.count_dead_letters(
                **{k: v for k, v in filters.items() if k not in {"limit", "after"}}
            )
            numbers = [[m.message_id for m in letters].index(f.message_id) for f in found]
            if "limit" not in filters and "after" not in filters:
                assert count == len(numbers), filters
            return numbers

        assert await ids() == [0, 1, 2, 3]
        assert await ids(destination="orders") == [0, 2, 3]
        assert await ids(type_name="shop.Placed") == [0, 1, 3]
        assert await ids(since=1_002.0) == [2, 3]
        assert await ids(error="BROKER gone") == [0, 3]
        assert await ids(error="100%") == [1]  # LIKE's wildcards are plain text here
        assert await ids(error="%") == [1]
        assert await ids(error="o_b") == [1]  # `too_big` has it; nothing matches `_` as any
        assert await ids(destination="orders", type_name="shop.Placed", error="gone") == [0, 3]
        assert await ids(destination="orders", limit=2) == [0, 2]
        assert await ids(destination="orders", after=letters[2].message_id) == [3]
        assert await outbox.store.count_dead_letters(destination="orders") == 3
        assert await outbox.store.count_dead_letters(destination="nowhere") == 0

    async def test_oldest_pending_is_the_oldest_message_waiting_for_the_relay(
        self, outbox: OutboxHarness
    ) -> None:
        assert await outbox.store.oldest_pending() is None
        now = time.time()
        await self.write(
            outbox,
            message(None, at=now - 30),
            message(None, at=now - 5),
            message(None, at=now - 600, due=now + 3_600),  # scheduled: not waiting yet
        )
        await outbox.store.add_dead_letter(message(None, at=now - 900))  # dead: not waiting
        assert await outbox.store.oldest_pending() == pytest.approx(now - 30)

    async def test_counts_by_destination_cover_every_status(self, outbox: OutboxHarness) -> None:
        now = time.time()
        await self.write(
            outbox,
            message(None, destination="orders"),
            message(None, destination="orders"),
            message(None, destination="mail", due=now + 3_600),
        )
        await outbox.store.add_dead_letter(message(None, destination="audit"))
        counts = await outbox.store.counts_by_destination()
        assert list(counts) == ["audit", "mail", "orders"]
        assert dict(counts["orders"]) == {
            OutboxStatus.SCHEDULED: 0,
            OutboxStatus.PENDING: 2,
            OutboxStatus.DELIVERED: 0,
            OutboxStatus.DEAD: 0,
        }
        assert counts["mail"][OutboxStatus.SCHEDULED] == 1
        assert counts["audit"][OutboxStatus.DEAD] == 1
        total = {status: sum(c[status] for c in counts.values()) for status in OutboxStatus}
        assert total == dict(await outbox.store.counts())

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

    async def test_inbox_records_past_their_retention_are_purged(
        self, outbox: OutboxHarness
    ) -> None:
        async with outbox.transaction() as (_, inbox):
            assert await inbox.record("m-3", "billing") is True
            assert await inbox.record("m-3", "shipping") is True
        assert await outbox.store.purge_handled(time.time() - 60) == 0
        async with outbox.transaction() as (_, inbox):
            assert await inbox.record("m-3", "billing") is False  # still remembered
        assert await outbox.store.purge_handled(time.time() + 1) == 2
        async with outbox.transaction() as (_, inbox):
            assert await inbox.record("m-3", "billing") is True  # forgotten: handled again
