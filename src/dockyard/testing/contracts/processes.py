"""``ProcessStoreContract``: what every process manager storage adapter must do.

Example:
    ```python
    class TestMyProcessStore(ProcessStoreContract):
        @pytest_asyncio.fixture
        async def process_store_factory(self) -> AsyncIterator[ProcessStoreHarness]:
            database = await start_my_database()
            yield ProcessStoreHarness(
                store=MyProcessStore(database),
                transaction=lambda: my_transaction(database),  # yields a ProcessWriter
            )
    ```
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from typing import Any

import pytest
import pytest_asyncio

from dockyard.sagas import ProcessRecord, ProcessStatus, ProcessStore, ProcessWriter

__all__ = ["ProcessStoreContract", "ProcessStoreHarness"]


@dataclass(frozen=True, slots=True)
class ProcessStoreHarness:
    """The adapter under test.

    Attributes:
        store: The app-wide reader.
        transaction: Opens one transaction and yields its writer; commits when the block exits
            without an error, rolls back when it raises.
    """

    store: ProcessStore
    transaction: Callable[[], AbstractAsyncContextManager[ProcessWriter]]


def process_record(
    key: str = "o-1", *, name: str = "fulfilment", version: int = 1
) -> ProcessRecord:
    """An instance as a start message creates it."""
    return ProcessRecord(
        name=name,
        key=key,
        definition_version=2,
        status=ProcessStatus.ACTIVE,
        state_type="contract.Fulfilment",
        state_schema=3,
        state=b'{"order_id":"o-1","log":["\\u00e9"]}',
        version=version,
        timeout_id="t-1",
        timeout_at=1700000000.5,
    )


def _stored(record: ProcessRecord | None) -> ProcessRecord | None:
    return None if record is None else replace(record, created_at=0.0, updated_at=0.0)


class ProcessStoreContract:
    """Subclass it as ``Test…`` and implement the ``process_store_factory`` fixture."""

    @pytest_asyncio.fixture
    async def process_store_factory(
        self,
        *_fixtures: Any,
        **_named_fixtures: Any,  # subclasses take the fixtures they need
    ) -> AsyncIterator[ProcessStoreHarness]:
        """Abstract: yield a ``ProcessStoreHarness`` on a fresh (or test-isolated) store."""
        raise NotImplementedError(
            f"{type(self).__name__} subclasses ProcessStoreContract but does not override the "
            "`process_store_factory` fixture. Hint: define it as an async fixture that yields "
            "a `ProcessStoreHarness` on the adapter under test."
        )
        yield  # type: ignore[unreachable]  # an async generator, like the overrides

    @pytest.fixture
    def processes(self, process_store_factory: ProcessStoreHarness) -> ProcessStoreHarness:
        return process_store_factory

    async def save(self, harness: ProcessStoreHarness, record: ProcessRecord) -> bool:
        async with harness.transaction() as writer:
            await writer.load(record.name, record.key)
            return await writer.save(record)

    async def test_a_created_instance_reads_back_as_written(
        self, processes: ProcessStoreHarness
    ) -> None:
        created = process_record()
        assert await self.save(processes, created)
        found = await processes.store.get("fulfilment", "o-1")
        assert _stored(found) == created
        assert found is not None
        assert found.created_at > 0
        assert found.updated_at >= found.created_at
        async with processes.transaction() as writer:
            assert _stored(await writer.load("fulfilment", "o-1")) == created
        assert await processes.store.get("fulfilment", "o-2") is None
        assert await processes.store.get("other", "o-1") is None  # keys are per name

    async def test_a_create_that_rolls_back_leaves_nothing(
        self, processes: ProcessStoreHarness
    ) -> None:
        async def fail() -> None:
            async with processes.transaction() as writer:
                assert await writer.save(process_record())
                raise RuntimeError("the handler failed")

        with pytest.raises(RuntimeError, match="the handler failed"):
            await fail()
        assert await processes.store.get("fulfilment", "o-1") is None
        assert await self.save(processes, process_record())

    async def test_creating_an_existing_instance_is_refused(
        self, processes: ProcessStoreHarness
    ) -> None:
        assert await self.save(processes, process_record())
        assert not await self.save(processes, replace(process_record(), state=b"{}"))
        found = await processes.store.get("fulfilment", "o-1")
        assert _stored(found) == process_record()

    async def test_a_replace_is_fenced_by_the_version(self, processes: ProcessStoreHarness) -> None:
        assert await self.save(processes, process_record())
        second = replace(
            process_record(version=2),
            status=ProcessStatus.COMPLETED,
            state=b"{}",
            timeout_id=None,
            timeout_at=None,
        )
        assert await self.save(processes, second)
        assert not await self.save(processes, replace(second, state=b"stale"))  # at 2, not 1
        assert not await self.save(processes, process_record(version=4))  # skips one
        assert not await self.save(processes, process_record("o-9", version=2))  # none to replace
        assert _stored(await processes.store.get("fulfilment", "o-1")) == second

    async def test_a_loaded_instance_is_held_until_the_transaction_ends(
        self, processes: ProcessStoreHarness
    ) -> None:
        assert await self.save(processes, process_record())
        read: list[ProcessRecord | None] = []
        second_loads = asyncio.Event()

        async def second() -> None:
            second_loads.set()
            async with processes.transaction() as writer:
                read.append(await writer.load("fulfilment", "o-1"))

        async with processes.transaction() as writer:
            assert await writer.load("fulfilment", "o-1") is not None
            waiting = asyncio.create_task(second())
            await second_loads.wait()
            await asyncio.sleep(0.05)  # a load that is not held would have returned by now
            assert await writer.save(replace(process_record(version=2), state=b"first"))
        await waiting
        assert [r.state if r else None for r in read] == [b"first"]  # it saw the commit

    # -- listings and retention -----------------------------------------------------------

    async def finished(self, harness: ProcessStoreHarness, key: str, status: ProcessStatus) -> None:
        assert await self.save(harness, process_record(key))
        ended = replace(process_record(key, version=2), status=status, timeout_id=None)
        assert await self.save(harness, ended)

    async def test_find_lists_oldest_first_filtered_and_paged(
        self, processes: ProcessStoreHarness
    ) -> None:
        for key in ("b", "a", "c"):
            assert await self.save(processes, process_record(key))
            await asyncio.sleep(0.01)  # created in this order
        assert await self.save(processes, process_record("a", name="other"))
        await self.finished(processes, "d", ProcessStatus.COMPLETED)
        listed = await processes.store.find()
        assert [(r.name, r.key) for r in listed] == [
            ("fulfilment", "b"),
            ("fulfilment", "a"),
            ("fulfilment", "c"),
            ("other", "a"),
            ("fulfilment", "d"),
        ]
        assert _stored(listed[0]) == process_record("b")
        named = await processes.store.find(name="fulfilment", status=ProcessStatus.ACTIVE)
        assert [r.key for r in named] == ["b", "a", "c"]
        done = await processes.store.find(status=ProcessStatus.COMPLETED)
        assert [(r.key, r.status) for r in done] == [("d", ProcessStatus.COMPLETED)]
        page = await processes.store.find(name="fulfilment", limit=2)
        assert [r.key for r in page] == ["b", "a"]
        rest = await processes.store.find(name="fulfilment", limit=2, after=("fulfilment", "a"))
        assert [r.key for r in rest] == ["c", "d"]
        assert await processes.store.find(status=ProcessStatus.CANCELLED) == []

    async def test_purge_deletes_old_finished_instances_in_batches_and_nothing_else(
        self, processes: ProcessStoreHarness
    ) -> None:
        for n in range(3):
            await self.finished(processes, f"done-{n}", ProcessStatus.COMPLETED)
            await self.finished(processes, f"gone-{n}", ProcessStatus.CANCELLED)
        assert await self.save(processes, process_record("active"))
        assert await processes.store.purge(3600.0, 100) == 0  # none is an hour old
        await asyncio.sleep(0.4)
        await self.finished(processes, "recent", ProcessStatus.COMPLETED)
        assert await processes.store.purge(0.3, 4) == 4  # at most a batch
        assert await processes.store.purge(0.3, 100) == 2
        assert await processes.store.purge(0.3, 100) == 0
        assert await processes.store.purge(0.3, 0) == 0
        left = sorted(r.key for r in await processes.store.find())
        assert left == ["active", "recent"]
        assert await processes.store.get("fulfilment", "done-0") is None
        assert await self.save(processes, process_record("done-0"))  # the key is free again
