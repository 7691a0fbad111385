"""``SagaStoreContract``: what every saga storage adapter must do.

Example:
    ```python
    class TestMySagaStore(SagaStoreContract):
        @pytest_asyncio.fixture
        async def saga_store_factory(self) -> AsyncIterator[SagaStoreHarness]:
            database = await start_my_database()
            yield SagaStoreHarness(
                store=MySagaStore(database),
                transaction=lambda: my_transaction(database),  # yields a SagaWriter
            )
    ```
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from typing import Any

import pytest
import pytest_asyncio

from dockyard.sagas import (
    SagaLogEntry,
    SagaLogKind,
    SagaRecord,
    SagaStatus,
    SagaStore,
    SagaWriter,
    StepAction,
)

__all__ = ["SagaStoreContract", "SagaStoreHarness"]


@dataclass(frozen=True, slots=True)
class SagaStoreHarness:
    """The adapter under test.

    Attributes:
        store: The app-wide store (claims, leases, listings, operator changes, purges).
        transaction: Opens one transaction and yields its writer; commits when the block exits
            without an error, rolls back when it raises.
    """

    store: SagaStore
    transaction: Callable[[], AbstractAsyncContextManager[SagaWriter]]


def record(
    saga_id: str | None = None,
    *,
    name: str = "checkout",
    owner: str | None = None,
    status: SagaStatus = SagaStatus.RUNNING,
) -> SagaRecord:
    """A new instance at its first step, as ``Sagas.start`` makes it."""
    return SagaRecord(
        saga_id=saga_id or uuid.uuid4().hex,
        name=name,
        definition_version=3,
        status=status,
        step="reserve",
        action=StepAction.ACT,
        attempts=0,
        state_type="contract.Checkout",
        state_schema=2,
        state=b'{"order_id":"o-1","items":["\\u00e9",1]}',
        version=1,
        owner=owner,
    )


_STEP_DONE = SagaLogEntry("reserve", SagaLogKind.COMPLETED, 1, 1700000000.25)
_STEP_FAILED = SagaLogEntry("charge", SagaLogKind.FAILED, 2, 1700000001.5, "ValueError: é\nx")
_STEP_SKIPPED = SagaLogEntry("charge", SagaLogKind.SKIPPED, 0, 1700000002.0, note="by ann: ü")


class SagaStoreContract:
    """Subclass it as ``Test…`` and implement the ``saga_store_factory`` fixture."""

    @pytest_asyncio.fixture
    async def saga_store_factory(
        self,
        *_fixtures: Any,
        **_named_fixtures: Any,  # subclasses take the fixtures they need
    ) -> AsyncIterator[SagaStoreHarness]:
        """Abstract: yield a ``SagaStoreHarness`` on a fresh (or test-isolated) store."""
        raise NotImplementedError(
            f"{type(self).__name__} subclasses SagaStoreContract but does not override the "
            "`saga_store_factory` fixture. Hint: define it as an async fixture that yields a "
            "`SagaStoreHarness` on the adapter under test."
        )
        yield  # type: ignore[unreachable]  # an async generator, like the overrides

    @pytest.fixture
    def sagas(self, saga_store_factory: SagaStoreHarness) -> SagaStoreHarness:
        return saga_store_factory

    async def add(self, harness: SagaStoreHarness, *records: SagaRecord) -> None:
        async with harness.transaction() as writer:
            for one in records:
                assert await writer.add(one, lease_ttl=30.0 if one.owner else None)

    async def checkpoint(
        self,
        harness: SagaStoreHarness,
        new: SagaRecord,
        owner: str,
        *,
        due_in: float = 0.0,
        lease_ttl: float = 30.0,
    ) -> bool:
        async with harness.transaction() as writer:
            return await writer.checkpoint(new, owner=owner, due_in=due_in, lease_ttl=lease_ttl)

    # -- starting ------------------------------------------------------------------------

    async def test_an_added_instance_reads_back_as_written(self, sagas: SagaStoreHarness) -> None:
        added = record()
        await self.add(sagas, added)
        found = await sagas.store.get(added.saga_id)
        assert found is not None
        assert replace(found, due_at=0.0, created_at=0.0, updated_at=0.0) == added
        assert found.created_at > 0
        assert found.due_at >= found.created_at - 1  # due at once (clocks may differ a little)
        assert await sagas.store.get("nope") is None

    async def test_an_add_that_rolls_back_leaves_nothing_and_frees_the_id(
        self, sagas: SagaStoreHarness
    ) -> None:
        added = record()

        async def fail() -> None:
            async with sagas.transaction() as writer:
                assert await writer.add(added)
                raise RuntimeError("the command failed")

        with pytest.raises(RuntimeError, match="the command failed"):
            await fail()
        assert await sagas.store.get(added.saga_id) is None
        assert await sagas.store.claim(["checkout"], "r", 10, 30.0) == []
        await self.add(sagas, added)
        assert await sagas.store.get(added.saga_id) is not None

    async def test_an_existing_id_is_not_added_again(self, sagas: SagaStoreHarness) -> None:
        first = record()
        await self.add(sagas, first)
        async with sagas.transaction() as writer:
            assert not await writer.add(replace(first, name="other", state=b"{}"))
        found = await sagas.store.get(first.saga_id)
        assert found is not None
        assert (found.name, found.state) == ("checkout", first.state)

    async def test_on_commit_runs_after_the_commit_and_never_after_a_rollback(
        self, sagas: SagaStoreHarness
    ) -> None:
        called: list[str] = []

        async def start(saga_id: str, *, fail: bool) -> None:
            async with sagas.transaction() as writer:
                added = await writer.add(record(saga_id), on_commit=lambda: called.append(saga_id))
                assert added
                assert called == []
                if fail:
                    raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError):
            await start("rolled-back", fail=True)
        await start("committed", fail=False)
        assert called == ["committed"]

    async def test_a_writer_reads_the_instance_in_its_transaction(
        self, sagas: SagaStoreHarness
    ) -> None:
        """What a reply to a remote step reads before its fenced checkpoint."""
        added = record(owner="awaiting-reply")
        await self.add(sagas, added)
        async with sagas.transaction() as writer:
            assert await writer.get("nope") is None
            found = await writer.get(added.saga_id)
            assert found is not None
            assert replace(found, lease_until=None, due_at=0.0, created_at=0.0, updated_at=0.0) == (
                added
            )
            moved = replace(found, step="charge", version=found.version + 1, owner=None)
            assert await writer.checkpoint(moved, owner="awaiting-reply", lease_ttl=None)
            again = await writer.get(added.saga_id)  # its own checkpoint, not yet committed
            assert again is not None
            assert (again.step, again.version, again.owner) == ("charge", 2, None)
        stored = await sagas.store.get(added.saga_id)
        assert stored is not None
        assert (stored.step, stored.version, stored.owner) == ("charge", 2, None)

    # -- claims and leases ----------------------------------------------------------------

    async def test_a_claim_takes_due_unheld_instances_of_the_named_sagas(
        self, sagas: SagaStoreHarness
    ) -> None:
        wanted = [record() for _ in range(3)]
        other_saga = record(name="refund")
        finished = record(status=SagaStatus.COMPLETED)
        parked = record(status=SagaStatus.FAILED)
        await self.add(sagas, *wanted, other_saga, finished, parked)
        claimed = await sagas.store.claim(["checkout"], "runner-a", 10, 30.0)
        assert sorted(r.saga_id for r in claimed) == sorted(r.saga_id for r in wanted)
        for taken in claimed:
            assert (taken.owner, taken.version) == ("runner-a", 2)
            assert taken.lease_until is not None
        assert await sagas.store.claim(["checkout"], "runner-b", 10, 30.0) == []
        refunds = await sagas.store.claim(["refund", "other"], "runner-b", 10, 30.0)
        assert [r.saga_id for r in refunds] == [other_saga.saga_id]

    async def test_a_claim_takes_at_most_limit_and_concurrent_claims_never_share(
        self, sagas: SagaStoreHarness
    ) -> None:
        added = [record() for _ in range(12)]
        await self.add(sagas, *added)
        assert len(await sagas.store.claim(["checkout"], "runner-a", 2, 30.0)) == 2
        batches = await asyncio.gather(
            *(sagas.store.claim(["checkout"], f"runner-{n}", 3, 30.0) for n in range(5))
        )
        taken = [r.saga_id for batch in batches for r in batch]
        assert len(taken) == len(set(taken)) == 10

    async def test_an_instance_added_held_is_not_claimed_until_its_lease_ends(
        self, sagas: SagaStoreHarness
    ) -> None:
        held = record(owner="runner-a")
        async with sagas.transaction() as writer:
            assert await writer.add(held, lease_ttl=0.3)
        found = await sagas.store.get(held.saga_id)
        assert found is not None
        assert found.owner == "runner-a"
        assert await sagas.store.claim(["checkout"], "runner-b", 10, 30.0) == []
        await asyncio.sleep(0.5)
        claimed = await sagas.store.claim(["checkout"], "runner-b", 10, 30.0)
        assert [(r.saga_id, r.owner) for r in claimed] == [(held.saga_id, "runner-b")]

    async def test_renew_extends_only_the_owners_leases(self, sagas: SagaStoreHarness) -> None:
        mine, theirs = record(), record()
        await self.add(sagas, mine, theirs)
        await sagas.store.claim(["checkout"], "runner-a", 1, 0.3)
        claimed_b = await sagas.store.claim(["checkout"], "runner-b", 1, 30.0)
        held_a = next(r.saga_id for r in (mine, theirs) if r.saga_id != claimed_b[0].saga_id)
        renewed = await sagas.store.renew("runner-a", [mine.saga_id, theirs.saga_id], 30.0)
        assert renewed == [held_a]
        await asyncio.sleep(0.5)  # past the first lease: the renewal keeps it
        assert await sagas.store.claim(["checkout"], "runner-c", 10, 30.0) == []
        assert await sagas.store.renew("runner-a", [], 30.0) == []

    async def test_a_claim_never_takes_back_what_the_claimant_is_holding(
        self, sagas: SagaStoreHarness
    ) -> None:
        running, dropped = record(), record()
        await self.add(sagas, running, dropped)
        assert len(await sagas.store.claim(["checkout"], "runner-a", 2, 0.2)) == 2
        await asyncio.sleep(0.4)  # both leases lapsed: a late heartbeat
        again = await sagas.store.claim(
            ["checkout"], "runner-a", 10, 30.0, holding=[running.saga_id]
        )
        assert [r.saga_id for r in again] == [dropped.saga_id]  # the one it no longer works on
        row = await sagas.store.get(running.saga_id)
        assert row is not None
        assert (row.owner, row.version) == ("runner-a", running.version + 1)  # its fence holds
        taken = await sagas.store.claim(["checkout"], "runner-b", 10, 30.0)  # a lapsed lease
        assert [(r.saga_id, r.owner) for r in taken] == [(running.saga_id, "runner-b")]

    async def test_release_frees_instances_for_the_next_claim(
        self, sagas: SagaStoreHarness
    ) -> None:
        first, second, third = record(), record(), record()
        await self.add(sagas, first, second, third)
        assert len(await sagas.store.claim(["checkout"], "runner-a", 10, 30.0)) == 3
        await sagas.store.release("runner-b", None)  # not the owner: nothing happens
        await sagas.store.release("runner-a", [first.saga_id])
        again = await sagas.store.claim(["checkout"], "runner-b", 10, 30.0)
        assert [r.saga_id for r in again] == [first.saga_id]
        await sagas.store.release("runner-a", None)
        rest = await sagas.store.claim(["checkout"], "runner-c", 10, 30.0)
        assert sorted(r.saga_id for r in rest) == sorted([second.saga_id, third.saga_id])

    # -- checkpoints: the fence -----------------------------------------------------------

    async def test_a_checkpoint_by_the_holder_at_the_version_it_read_is_written(
        self, sagas: SagaStoreHarness
    ) -> None:
        await self.add(sagas, record())
        (held,) = await sagas.store.claim(["checkout"], "runner-a", 1, 30.0)
        new = replace(
            held,
            step="charge",
            attempts=2,
            state=b'{"order_id":"o-1","charged":true}',
            version=held.version + 1,
            error="ValueError: é",
            log=(_STEP_DONE, _STEP_FAILED, _STEP_SKIPPED),
        )
        assert await self.checkpoint(sagas, new, "runner-a")
        found = await sagas.store.get(held.saga_id)
        assert found is not None
        assert found.log == (_STEP_DONE, _STEP_FAILED, _STEP_SKIPPED)
        assert (found.step, found.attempts, found.version, found.owner) == (
            "charge",
            2,
            held.version + 1,
            "runner-a",
        )
        assert (found.state, found.error) == (new.state, "ValueError: é")

    async def test_a_checkpoint_at_a_stale_version_or_by_another_owner_is_refused(
        self, sagas: SagaStoreHarness
    ) -> None:
        await self.add(sagas, record())
        (held,) = await sagas.store.claim(["checkout"], "runner-a", 1, 30.0)
        moved = replace(held, step="charge", version=held.version + 1)
        assert not await self.checkpoint(sagas, moved, "runner-b")
        assert not await self.checkpoint(sagas, replace(moved, version=held.version), "runner-a")
        assert await self.checkpoint(sagas, moved, "runner-a")
        assert not await self.checkpoint(sagas, moved, "runner-a")  # the same version twice
        found = await sagas.store.get(held.saga_id)
        assert found is not None
        assert (found.step, found.version) == ("charge", held.version + 1)

    async def test_a_checkpoint_that_rolls_back_is_not_written(
        self, sagas: SagaStoreHarness
    ) -> None:
        await self.add(sagas, record())
        (held,) = await sagas.store.claim(["checkout"], "runner-a", 1, 30.0)

        async def fail() -> None:
            async with sagas.transaction() as writer:
                new = replace(held, step="charge", version=held.version + 1)
                assert await writer.checkpoint(new, owner="runner-a", lease_ttl=30.0)
                raise RuntimeError("the step's commit failed")

        with pytest.raises(RuntimeError):
            await fail()
        found = await sagas.store.get(held.saga_id)
        assert found is not None
        assert (found.step, found.version) == ("reserve", held.version)

    async def test_a_runner_whose_lease_was_taken_over_cannot_checkpoint(
        self, sagas: SagaStoreHarness
    ) -> None:
        await self.add(sagas, record())
        (stale,) = await sagas.store.claim(["checkout"], "paused", 1, 0.2)
        await asyncio.sleep(0.4)  # paused past its lease
        (taken,) = await sagas.store.claim(["checkout"], "runner-b", 1, 30.0)
        assert taken.version == stale.version + 1
        assert not await self.checkpoint(sagas, replace(stale, version=stale.version + 1), "paused")
        assert await self.checkpoint(sagas, replace(taken, version=taken.version + 1), "runner-b")

    async def test_a_released_checkpoint_is_due_after_its_delay(
        self, sagas: SagaStoreHarness
    ) -> None:
        soon, later = record(), record()
        await self.add(sagas, soon, later)
        claimed = await sagas.store.claim(["checkout"], "runner-a", 2, 30.0)
        for held in claimed:
            delay = 0.0 if held.saga_id == soon.saga_id else 3600.0
            released = replace(held, attempts=1, owner=None, version=held.version + 1)
            assert await self.checkpoint(sagas, released, "runner-a", due_in=delay)
        found = await sagas.store.get(later.saga_id)
        assert found is not None
        assert found.owner is None
        assert found.lease_until is None
        again = await sagas.store.claim(["checkout"], "runner-b", 10, 30.0)
        assert [r.saga_id for r in again] == [soon.saga_id]

    async def test_a_finished_instance_is_never_claimed_again(
        self, sagas: SagaStoreHarness
    ) -> None:
        await self.add(sagas, record())
        (held,) = await sagas.store.claim(["checkout"], "runner-a", 1, 30.0)
        done = replace(
            held, status=SagaStatus.COMPLETED, step=None, owner=None, version=held.version + 1
        )
        assert await self.checkpoint(sagas, done, "runner-a")
        assert await sagas.store.claim(["checkout"], "runner-b", 10, 30.0) == []

    # -- listings and operator changes ----------------------------------------------------

    async def test_find_filters_by_name_and_status_and_pages_oldest_first(
        self, sagas: SagaStoreHarness
    ) -> None:
        added = []
        for n in range(5):
            one = record(f"s-{n}", name="refund" if n == 2 else "checkout")
            if n == 3:
                one = replace(one, status=SagaStatus.FAILED)
            await self.add(sagas, one)  # one transaction each: creation order is n
            added.append(one.saga_id)
            await asyncio.sleep(0.01)
        assert [r.saga_id for r in await sagas.store.find()] == added
        assert [r.saga_id for r in await sagas.store.find(name="refund")] == ["s-2"]
        failed = await sagas.store.find(status=SagaStatus.FAILED)
        assert [r.saga_id for r in failed] == ["s-3"]
        both = await sagas.store.find(name="checkout", status=SagaStatus.RUNNING)
        assert [r.saga_id for r in both] == ["s-0", "s-1", "s-4"]
        page = await sagas.store.find(limit=2)
        rest = await sagas.store.find(limit=10, after=page[-1].saga_id)
        assert [r.saga_id for r in page + rest] == added

    async def test_counts_cover_every_status(self, sagas: SagaStoreHarness) -> None:
        assert set((await sagas.store.counts()).values()) == {0}
        for n, status in enumerate(
            [SagaStatus.RUNNING, SagaStatus.RUNNING, SagaStatus.FAILED, SagaStatus.COMPLETED]
        ):
            await self.add(sagas, replace(record(f"c-{n}"), status=status))
        counts = await sagas.store.counts()
        assert set(counts) == set(SagaStatus)
        assert counts[SagaStatus.RUNNING] == 2
        assert counts[SagaStatus.FAILED] == 1
        assert counts[SagaStatus.COMPLETED] == 1
        assert sum(counts.values()) == 4

    async def test_update_changes_an_unheld_instance_at_the_version_it_read(
        self, sagas: SagaStoreHarness
    ) -> None:
        parked = record(status=SagaStatus.FAILED)
        await self.add(sagas, parked)
        resumed = replace(parked, status=SagaStatus.RUNNING, version=parked.version + 1)
        assert await sagas.store.update(resumed)
        assert not await sagas.store.update(resumed)  # stale now
        (claimed,) = await sagas.store.claim(["checkout"], "runner-a", 1, 30.0)
        assert claimed.saga_id == parked.saga_id
        held = replace(claimed, status=SagaStatus.CANCELLED, version=claimed.version + 1)
        assert not await sagas.store.update(held)  # a runner holds it

    # -- retention ------------------------------------------------------------------------

    async def test_purge_deletes_old_finished_instances_in_batches_and_nothing_else(
        self, sagas: SagaStoreHarness
    ) -> None:
        finished = [
            replace(record(f"done-{n}"), status=status)
            for n, status in enumerate(
                [SagaStatus.COMPLETED, SagaStatus.COMPENSATED, SagaStatus.CANCELLED] * 2
            )
        ]
        kept = [
            replace(record(f"kept-{n}"), status=status)
            for n, status in enumerate(
                [SagaStatus.RUNNING, SagaStatus.COMPENSATING, SagaStatus.FAILED]
            )
        ]
        await self.add(sagas, *finished, *kept)
        assert await sagas.store.purge(3600.0, 100) == 0  # none is an hour old
        await asyncio.sleep(0.4)
        recent = replace(record("done-recent"), status=SagaStatus.COMPLETED)
        await self.add(sagas, recent)
        assert await sagas.store.purge(0.3, 4) == 4  # at most a batch
        assert await sagas.store.purge(0.3, 100) == 2
        assert await sagas.store.purge(0.3, 100) == 0
        left = sorted(r.saga_id for r in await sagas.store.find())
        assert left == sorted([recent.saga_id, *(r.saga_id for r in kept)])
        assert await sagas.store.purge(0.3, 0) == 0
