"""``CheckpointStoreContract`` and ``LeaseStoreContract``: what every adapter must do.

Example:
    ```python
    class TestMyCheckpointStore(CheckpointStoreContract):
        @pytest_asyncio.fixture
        async def checkpoint_store_factory(self) -> AsyncIterator[CheckpointStoreFactory]:
            database = await start_my_database()

            @asynccontextmanager
            async def session() -> AsyncIterator[CheckpointStore]:
                async with database.unit_of_work() as uow:  # commits on exit
                    yield MyCheckpointStore(uow)

            yield session
            await database.close()
    ```
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

import pytest_asyncio

from dockyard.projections import Checkpoint, CheckpointStore, Failure, LeaseStore

__all__ = [
    "CheckpointStoreContract",
    "CheckpointStoreFactory",
    "LeaseStoreContract",
]

CheckpointStoreFactory = Callable[[], AbstractAsyncContextManager[CheckpointStore]]
"""Opens one session on the store under test; for SQL adapters a unit of work that commits
when the block exits without an error. Checkpoints are shared by all sessions of one test."""


def _name() -> str:
    return f"projection-{uuid.uuid4().hex[:12]}"


class CheckpointStoreContract:
    """The behaviour every ``CheckpointStore`` adapter must show."""

    @pytest_asyncio.fixture
    async def checkpoint_store_factory(
        self, *_fixtures: Any, **_named_fixtures: Any
    ) -> AsyncIterator[CheckpointStoreFactory]:
        """Abstract: yield a factory of sessions on a fresh (or test-isolated) store."""
        raise NotImplementedError(
            f"{type(self).__name__} subclasses CheckpointStoreContract but does not override "
            "the `checkpoint_store_factory` fixture. Hint: define it as an async fixture that "
            "yields a factory of sessions on the store under test."
        )
        yield  # type: ignore[unreachable]  # an async generator, like the overrides

    async def test_an_unknown_projection_is_at_position_zero(
        self, checkpoint_store_factory: CheckpointStoreFactory
    ) -> None:
        name = _name()
        async with checkpoint_store_factory() as store:
            checkpoint = await store.load(name)
        assert (checkpoint.name, checkpoint.position, checkpoint.failure) == (name, 0, None)

    async def test_a_saved_checkpoint_reads_back_in_a_later_session(
        self, checkpoint_store_factory: CheckpointStoreFactory
    ) -> None:
        name = _name()
        reset_at = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
        async with checkpoint_store_factory() as store:
            await store.save(Checkpoint(name, 42, applied_since_reset=7, reset_at=reset_at))
        async with checkpoint_store_factory() as store:
            loaded = await store.load(name)
        assert (loaded.position, loaded.applied_since_reset, loaded.failure) == (42, 7, None)
        assert loaded.reset_at == reset_at
        assert loaded.updated_at is not None

    async def test_saving_again_replaces_the_position_and_clears_a_failure(
        self, checkpoint_store_factory: CheckpointStoreFactory
    ) -> None:
        name = _name()
        failed_at = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
        failure = Failure(11, "ValueError: boom", 5, failed_at)
        async with checkpoint_store_factory() as store:
            await store.save(Checkpoint(name, 10, failure))
        async with checkpoint_store_factory() as store:
            assert (await store.load(name)).failure == failure
            await store.save(Checkpoint(name, 11))
        async with checkpoint_store_factory() as store:
            loaded = await store.load(name)
        assert (loaded.position, loaded.failure) == (11, None)

    async def test_lock_returns_the_checkpoint_and_creates_a_missing_one(
        self, checkpoint_store_factory: CheckpointStoreFactory
    ) -> None:
        name, other = _name(), _name()
        async with checkpoint_store_factory() as store:
            await store.save(Checkpoint(name, 5))
        async with checkpoint_store_factory() as store:
            assert (await store.lock(name)).position == 5
            assert (await store.lock(other)).position == 0
        async with checkpoint_store_factory() as store:
            names = {c.name for c in await store.load_all()}
        assert {name, other} <= names

    async def test_a_pause_reads_back_and_clears(
        self, checkpoint_store_factory: CheckpointStoreFactory
    ) -> None:
        name = _name()
        paused_at = datetime(2024, 5, 1, 13, 0, tzinfo=UTC)
        async with checkpoint_store_factory() as store:
            await store.save(Checkpoint(name, 4, paused_at=paused_at))
        async with checkpoint_store_factory() as store:
            assert (await store.load(name)).paused_at == paused_at
            assert (await store.lock(name)).paused_at == paused_at
            await store.save(Checkpoint(name, 4))
        async with checkpoint_store_factory() as store:
            assert (await store.load(name)).paused_at is None

    async def test_projections_do_not_share_checkpoints(
        self, checkpoint_store_factory: CheckpointStoreFactory
    ) -> None:
        first, second = sorted([_name(), _name()])
        async with checkpoint_store_factory() as store:
            await store.save(Checkpoint(first, 3))
            await store.save(Checkpoint(second, 9))
        async with checkpoint_store_factory() as store:
            loaded = [c for c in await store.load_all() if c.name in (first, second)]
        assert [(c.name, c.position) for c in loaded] == [(first, 3), (second, 9)]


class LeaseStoreContract:
    """The behaviour every ``LeaseStore`` adapter must show."""

    @pytest_asyncio.fixture
    async def lease_store(
        self, *_fixtures: Any, **_named_fixtures: Any
    ) -> AsyncIterator[LeaseStore]:
        """Abstract: yield the lease store under test."""
        raise NotImplementedError(
            f"{type(self).__name__} subclasses LeaseStoreContract but does not override the "
            "`lease_store` fixture. Hint: define it as an async fixture that yields the store."
        )
        yield  # type: ignore[unreachable]  # an async generator, like the overrides

    async def test_a_free_lease_is_granted_and_held_against_others(
        self, lease_store: LeaseStore
    ) -> None:
        name = _name()
        assert await lease_store.acquire(name, "a", 10)
        assert not await lease_store.acquire(name, "b", 10)
        holder = await lease_store.holder(name)
        assert holder is not None
        assert (holder.name, holder.owner) == (name, "a")

    async def test_the_holder_renews_it(self, lease_store: LeaseStore) -> None:
        name = _name()
        assert await lease_store.acquire(name, "a", 10)
        first = await lease_store.holder(name)
        assert await lease_store.acquire(name, "a", 20)
        renewed = await lease_store.holder(name)
        assert first is not None
        assert renewed is not None
        assert renewed.expires_at > first.expires_at

    async def test_released_by_its_owner_it_is_free_at_once(self, lease_store: LeaseStore) -> None:
        name = _name()
        assert await lease_store.acquire(name, "a", 10)
        await lease_store.release(name, "b")  # not the owner: nothing happens
        assert not await lease_store.acquire(name, "b", 10)
        await lease_store.release(name, "a")
        assert await lease_store.holder(name) is None
        assert await lease_store.acquire(name, "b", 10)

    async def test_an_expired_lease_goes_to_the_next_asker(self, lease_store: LeaseStore) -> None:
        name = _name()
        assert await lease_store.acquire(name, "a", 0.2)
        await asyncio.sleep(0.3)
        assert await lease_store.holder(name) is None
        assert await lease_store.acquire(name, "b", 10)
        assert not await lease_store.acquire(name, "a", 10)

    async def test_leases_of_different_projections_are_independent(
        self, lease_store: LeaseStore
    ) -> None:
        first, second = _name(), _name()
        assert await lease_store.acquire(first, "a", 10)
        assert await lease_store.acquire(second, "b", 10)
