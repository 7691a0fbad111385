"""``SnapshotStoreContract``: what every ``SnapshotStore`` adapter must do."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from dockyard.eventsourcing import SnapshotStore
from dockyard.exceptions import InvalidStreamIdError
from dockyard.serialization import Serializer, event_type

__all__ = ["SnapshotStoreContract", "SnapshotStoreFactory"]

SnapshotStoreFactory = Callable[[Serializer], AbstractAsyncContextManager[SnapshotStore]]
"""Opens one session on the snapshot store under test (a committing unit of work for SQL)."""


@event_type("contract.balance", schema_version=1)
@dataclass(frozen=True, slots=True)
class BalanceV1:
    cents: int


@event_type("contract.balance", schema_version=2)
@dataclass(frozen=True, slots=True)
class BalanceV2:
    cents: int
    currency: str


@dataclass(frozen=True, slots=True)
class OtherState:
    cents: int


class SnapshotStoreContract:
    """The behaviour every ``SnapshotStore`` adapter must show; subclass and provide the factory."""

    @pytest_asyncio.fixture
    async def snapshot_store_factory(
        self,
        *_fixtures: Any,
        **_named_fixtures: Any,  # subclasses take the fixtures they need
    ) -> AsyncIterator[SnapshotStoreFactory]:
        """Abstract: yield a factory of sessions on a fresh or test-isolated snapshot store."""
        raise NotImplementedError(
            f"{type(self).__name__} subclasses SnapshotStoreContract but does not override the "
            "`snapshot_store_factory` fixture. Hint: define it as an async fixture that yields a "
            "factory of sessions on the store under test."
        )
        yield  # type: ignore[unreachable]  # an async generator, like the overrides

    @pytest.mark.parametrize(
        "stream_id", ["", "x" * 256, "Account-\x00-1", "Account-\ud800"], ids=str.__len__
    )
    async def test_stream_ids_no_store_can_hold_are_refused(
        self, snapshot_store_factory: SnapshotStoreFactory, stream_id: str
    ) -> None:
        """The event stores' one rule (``check_stream_id``), on snapshots too."""
        async with snapshot_store_factory(Serializer()) as store:
            with pytest.raises(InvalidStreamIdError):
                await store.save(stream_id, 1, BalanceV1(1))
            with pytest.raises(InvalidStreamIdError):
                await store.load(stream_id, BalanceV1)
            with pytest.raises(InvalidStreamIdError):
                await store.delete(stream_id)

    async def test_the_latest_snapshot_is_loaded(
        self, snapshot_store_factory: SnapshotStoreFactory
    ) -> None:
        stream = f"Account-{uuid.uuid4()}"
        async with snapshot_store_factory(Serializer()) as store:
            assert await store.load(stream, BalanceV1) is None
            await store.save(stream, 10, BalanceV1(100))
        async with snapshot_store_factory(Serializer()) as store:
            await store.save(stream, 20, BalanceV1(250))
        async with snapshot_store_factory(Serializer()) as store:
            snapshot = await store.load(stream, BalanceV1)
        assert snapshot is not None
        assert (snapshot.stream_id, snapshot.stream_version) == (stream, 20)
        assert snapshot.state == BalanceV1(250)
        assert snapshot.schema_version == 1
        assert snapshot.recorded_at.tzinfo is not None

    async def test_an_older_snapshot_never_replaces_a_newer_one(
        self, snapshot_store_factory: SnapshotStoreFactory
    ) -> None:
        stream = f"Account-{uuid.uuid4()}"
        async with snapshot_store_factory(Serializer()) as store:
            await store.save(stream, 20, BalanceV1(200))
        async with snapshot_store_factory(Serializer()) as store:
            await store.save(stream, 10, BalanceV1(100))  # a slow writer, late
        async with snapshot_store_factory(Serializer()) as store:
            snapshot = await store.load(stream, BalanceV1)
        assert snapshot is not None
        assert (snapshot.stream_version, snapshot.state) == (20, BalanceV1(200))

    async def test_a_snapshot_of_an_older_schema_or_other_type_is_ignored(
        self, snapshot_store_factory: SnapshotStoreFactory
    ) -> None:
        stream = f"Account-{uuid.uuid4()}"
        async with snapshot_store_factory(Serializer()) as store:
            await store.save(stream, 5, BalanceV1(100))
        # one serializer per reader: BalanceV1 and BalanceV2 share one stable name
        async with snapshot_store_factory(Serializer()) as store:
            assert await store.load(stream, BalanceV2) is None
            assert await store.load(stream, OtherState) is None
        async with snapshot_store_factory(Serializer()) as store:
            assert await store.load(stream, BalanceV1) is not None

    async def test_a_deleted_snapshot_is_gone(
        self, snapshot_store_factory: SnapshotStoreFactory
    ) -> None:
        stream, neighbour = f"Account-{uuid.uuid4()}", f"Account-{uuid.uuid4()}"
        async with snapshot_store_factory(Serializer()) as store:
            await store.save(stream, 1, BalanceV1(1))
            await store.save(neighbour, 1, BalanceV1(2))
        async with snapshot_store_factory(Serializer()) as store:
            await store.delete(stream)
            await store.delete(f"Account-{uuid.uuid4()}")  # deleting nothing is fine
        async with snapshot_store_factory(Serializer()) as store:
            assert await store.load(stream, BalanceV1) is None
            loaded = await store.load(neighbour, BalanceV1)
        assert loaded is not None
        assert loaded.state == BalanceV1(2)

    @pytest.mark.parametrize("size", [1, 1024 * 1024])
    async def test_states_of_any_size_round_trip(
        self, snapshot_store_factory: SnapshotStoreFactory, size: int
    ) -> None:
        stream = f"Account-{uuid.uuid4()}"
        state = BalanceV2(size, "€" * size)
        async with snapshot_store_factory(Serializer()) as store:
            await store.save(stream, 3, state)
            loaded = await store.load(stream, BalanceV2)
        assert loaded is not None
        assert loaded.state == state
