"""Any event store gets the projections' fast path by implementing ``LogHeadReader``.

Projections need the head of the global log and the lag of a checkpoint. A store that is a
``LogHeadReader`` is asked for them; any other store is scanned through ``read_all``. Both
give the same answers; only the first reads no events to give them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence

from memory_projections import SERIALIZER, Deposited, Renamed

from dockyard.app import App
from dockyard.di import object_
from dockyard.eventsourcing import (
    ANY,
    AppendResult,
    EventStore,
    ExpectedVersion,
    LogHeadReader,
    OpenAppend,
    RecordedEvent,
)
from dockyard.eventsourcing.memory import InMemoryEventStore
from dockyard.modules import module
from dockyard.projections import (
    CheckpointStore,
    LeaseStore,
    Projection,
    ProjectionControl,
    ProjectionsModule,
    handles,
)
from dockyard.projections.memory import InMemoryCheckpointStore, InMemoryLeaseStore
from dockyard.testing import wait_for_projections


class ThirdPartyStore:
    """Someone else's ``EventStore`` (here over an in-memory one), counting reads of the log."""

    def __init__(self) -> None:
        self.events = InMemoryEventStore(SERIALIZER)
        self.log_reads = 0

    async def append(
        self,
        stream_id: str,
        events: Sequence[object],
        expected_version: int | ExpectedVersion,
        *,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        return await self.events.append(
            stream_id, events, expected_version, idempotency_key=idempotency_key
        )

    async def read_stream(
        self,
        stream_id: str,
        from_version: int = 0,
        limit: int | None = None,
        backwards: bool = False,
        *,
        skip_unknown: bool = False,
    ) -> Sequence[RecordedEvent]:
        return await self.events.read_stream(
            stream_id, from_version, limit, backwards, skip_unknown=skip_unknown
        )

    async def read_all(
        self,
        after_position: int = 0,
        limit: int = 1000,
        event_types: Collection[str | type] | None = None,
        *,
        skip_unknown: bool = False,
    ) -> Sequence[RecordedEvent]:
        self.log_reads += 1
        return await self.events.read_all(
            after_position, limit, event_types, skip_unknown=skip_unknown
        )

    async def delete_stream(self, stream_id: str) -> None:
        await self.events.delete_stream(stream_id)

    async def truncate_before(self, stream_id: str, version: int) -> None:
        await self.events.truncate_before(stream_id, version)


class IndexedThirdPartyStore(ThirdPartyStore):
    """The same store keeping an index of its positions: a ``LogHeadReader``."""

    def __init__(self) -> None:
        super().__init__()
        self.positions: list[int] = []
        self.asked: dict[str, int] = defaultdict(int)
        self.blocker: OpenAppend | None = None

    async def append(
        self,
        stream_id: str,
        events: Sequence[object],
        expected_version: int | ExpectedVersion,
        *,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        result = await super().append(
            stream_id, events, expected_version, idempotency_key=idempotency_key
        )
        self.positions.extend(range(result.first_position, result.last_position + 1))
        return result

    async def log_heads(self) -> tuple[int, int]:
        self.asked["log_heads"] += 1
        head = self.positions[-1] if self.positions else 0
        return head, head

    async def count_after(self, position: int) -> int:
        self.asked["count_after"] += 1
        return sum(1 for p in self.positions if p > position)

    async def held_back_by(self) -> OpenAppend | None:
        self.asked["held_back_by"] += 1
        return self.blocker


class Totals(Projection):
    totals: dict[str, int] = {}  # noqa: RUF012 - the read model, reset per app

    @handles
    async def deposited(self, event: Deposited) -> None:
        self.totals[event.account] = self.totals.get(event.account, 0) + event.amount

    async def reset(self) -> None:
        self.totals.clear()


def build(store: EventStore) -> App:
    Totals.totals = {}

    @module(
        providers=[
            object_(store, provides=EventStore),
            object_(InMemoryCheckpointStore(), provides=CheckpointStore),
            object_(InMemoryLeaseStore(), provides=LeaseStore),
        ],
        exports=[EventStore, CheckpointStore, LeaseStore],
    )
    class Stores: ...

    @module(imports=[Stores, ProjectionsModule.register(projections=[Totals], imports=[Stores])])
    class Root: ...

    return App.build(Root)


async def head_and_lag(app: App) -> tuple[int, int, int, OpenAppend | None]:
    control = await app.get(ProjectionControl)
    status = await control.status_of("Totals")
    return await control.head(), status.position, status.lag, status.held_back_by


async def test_the_protocol_is_the_capability_not_the_class() -> None:
    assert isinstance(IndexedThirdPartyStore(), LogHeadReader)
    assert not isinstance(ThirdPartyStore(), LogHeadReader)
    assert isinstance(InMemoryEventStore(), LogHeadReader)


async def test_a_store_that_reads_its_log_head_is_asked_and_not_scanned() -> None:
    store = IndexedThirdPartyStore()
    app = build(store)
    async with app:
        await store.append("Account-1", [Deposited("a", 1), Deposited("a", 2)], ANY)
        await store.append("Account-2", [Renamed("a", "Ada")], ANY)  # not handled
        await wait_for_projections(app)
        assert Totals.totals == {"a": 3}
        await store.append("Account-1", [Deposited("a", 4)], ANY)
        store.log_reads = 0
        # the head and the lag come from the store's index: no event is read for them
        assert await head_and_lag(app) == (4, 3, 1, None)
        assert store.log_reads == 0
        assert store.asked["log_heads"] > 0
        assert store.asked["count_after"] > 0
        # and whatever holds readers back is the store's to say
        store.blocker = OpenAppend(3, 4242, 12.5, "idle in transaction", "reporting")
        assert (await head_and_lag(app))[3] == store.blocker
        store.blocker = None
        await wait_for_projections(app)
        assert await head_and_lag(app) == (4, 4, 0, None)
        assert Totals.totals == {"a": 7}


async def test_a_store_without_it_is_scanned_with_the_same_answers() -> None:
    store = ThirdPartyStore()
    app = build(store)
    async with app:
        await store.append("Account-1", [Deposited("a", 1), Deposited("a", 2)], ANY)
        await store.append("Account-2", [Renamed("a", "Ada")], ANY)  # not handled
        await wait_for_projections(app)
        assert Totals.totals == {"a": 3}
        await store.append("Account-1", [Deposited("a", 4)], ANY)
        store.log_reads = 0
        assert await head_and_lag(app) == (4, 3, 1, None)
        assert store.log_reads > 0  # the fallback scans the log through read_all
        await wait_for_projections(app)
        # the checkpoint passed the unhandled event at position 3 and reached the head
        assert await head_and_lag(app) == (4, 4, 0, None)
        assert Totals.totals == {"a": 7}
