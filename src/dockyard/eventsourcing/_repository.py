"""Repositories: load an aggregate or a decider's state from its stream, save new events."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar, get_args, get_origin

from dockyard.eventsourcing._aggregate import Aggregate
from dockyard.eventsourcing._decider import Decider
from dockyard.eventsourcing._store import (
    NO_STREAM,
    AppendResult,
    EventStore,
    ExpectedVersion,
)
from dockyard.eventsourcing._store_snapshots import Snapshot, SnapshotStore
from dockyard.exceptions import AggregateNotFoundError
from dockyard.messaging._interfaces import IPublisher

__all__ = ["AggregateRepository", "DeciderRepository", "EventPublisher"]

A = TypeVar("A", bound=Aggregate)
S = TypeVar("S")
C = TypeVar("C")
E = TypeVar("E")

_PAGE = 10_000


class EventPublisher(Protocol):
    """What a repository publishes saved events through (``IPublisher`` satisfies it)."""

    async def publish(self, event: Any, /) -> None: ...


async def _read_from(store: EventStore, stream_id: str, from_version: int) -> list[object]:
    events: list[object] = []
    while True:
        page = await store.read_stream(stream_id, from_version, _PAGE)
        events.extend(recorded.data for recorded in page)
        if len(page) < _PAGE:
            return events
        from_version = page[-1].stream_version + 1


async def _publish(publisher: EventPublisher | None, events: Sequence[object]) -> None:
    if publisher is not None:
        for event in events:
            await publisher.publish(event)


class AggregateRepository(Generic[A]):
    """Loads and saves one aggregate type; saving publishes the new events in the same scope.

    Subclass it per aggregate (``class Orders(AggregateRepository[Order]): ...``) or pass
    ``aggregate_type``. With a snapshot store and ``snapshot_every=N`` a snapshot is taken each
    time the version crosses a multiple of N; the aggregate then needs ``to_snapshot()`` and a
    classmethod ``from_snapshot(aggregate_id, state)``.

    A subclass that does not write ``__init__`` shows dependency injection the constructor
    ``(store: EventStore, publisher: IPublisher)``, so ``scoped(Orders)`` works as it is; called
    directly it still takes every argument above. Write ``__init__`` to inject anything else
    (a ``SnapshotStore``, say).
    """

    aggregate_type: type[A]

    def __init__(
        self,
        store: EventStore,
        publisher: EventPublisher | None = None,
        *,
        aggregate_type: type[A] | None = None,
        snapshots: SnapshotStore | None = None,
        snapshot_every: int | None = None,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._snapshots = snapshots
        self._snapshot_every = snapshot_every
        if aggregate_type is not None:
            self.aggregate_type = aggregate_type
        elif not hasattr(self, "aggregate_type"):
            msg = f"{type(self).__name__} needs an aggregate type: subclass AggregateRepository[T]"
            raise TypeError(msg)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            if get_origin(base) is AggregateRepository:
                (aggregate_type,) = get_args(base)
                if isinstance(aggregate_type, type):
                    cls.aggregate_type = aggregate_type
        if cls.__init__ is AggregateRepository.__init__:
            cls.__init__ = _injectable_init()  # type: ignore[method-assign]

    def stream_id(self, aggregate_id: str) -> str:
        return f"{self.aggregate_type.stream_type}-{aggregate_id}"

    def create(self, aggregate_id: str) -> A:
        """A new aggregate at version 0; nothing is stored until :meth:`save`."""
        return self.aggregate_type(aggregate_id)

    async def get_or_none(self, aggregate_id: str) -> A | None:
        stream_id = self.stream_id(aggregate_id)
        aggregate: A | None = None
        if self._snapshots is not None:
            snapshot: Snapshot[Any] | None = await self._snapshots.load(
                stream_id, self._snapshot_type()
            )
            if snapshot is not None:
                from_snapshot = getattr(self.aggregate_type, "from_snapshot")  # noqa: B009
                aggregate = from_snapshot(aggregate_id, snapshot.state)
                aggregate.version = snapshot.stream_version
        version = 0 if aggregate is None else aggregate.version
        events = await _read_from(self._store, stream_id, version + 1)
        if aggregate is None:
            if not events:
                return None
            return self.aggregate_type.replay(aggregate_id, events)
        return aggregate.replay_more(events)

    async def get(self, aggregate_id: str) -> A:
        """Load an aggregate; raise :class:`AggregateNotFoundError` if its stream is empty."""
        aggregate = await self.get_or_none(aggregate_id)
        if aggregate is None:
            raise AggregateNotFoundError(
                self.aggregate_type.__name__, aggregate_id, self.stream_id(aggregate_id)
            )
        return aggregate

    async def save(
        self, aggregate: A, *, idempotency_key: str | None = None
    ) -> AppendResult | None:
        """Append the pending events expecting the loaded version, then publish them.

        Returns ``None`` when there was nothing to save.

        Raises:
            ConcurrencyError: another writer appended to the stream since it was loaded.
        """
        pending = aggregate.pending_events
        if not pending:
            return None
        expected: int | ExpectedVersion = aggregate.version or NO_STREAM
        result = await self._store.append(
            aggregate.stream_id, pending, expected, idempotency_key=idempotency_key
        )
        before = aggregate.version
        aggregate.mark_saved()
        await _publish(self._publisher, pending)
        every = self._snapshot_every
        if self._snapshots is not None and every and before // every != aggregate.version // every:
            to_snapshot = getattr(aggregate, "to_snapshot")  # noqa: B009
            await self._snapshots.save(aggregate.stream_id, aggregate.version, to_snapshot())
        return result

    def _snapshot_type(self) -> type:
        hint = getattr(self.aggregate_type, "snapshot_type", None)
        if not isinstance(hint, type):
            msg = f"{self.aggregate_type.__name__} needs a `snapshot_type` class attribute"
            raise TypeError(msg)
        return hint


def _injectable_init() -> Callable[..., None]:
    """The base constructor, shown to Dishka as ``(store: EventStore, publisher: IPublisher)``.

    Dishka resolves every parameter it sees, defaults included, and the base's optional ones
    (``EventPublisher | None``, ``type[A] | None``, ...) are not provided by any module.
    """

    def __init__(  # noqa: N807 - it is the constructor
        self: AggregateRepository[Any],
        store: EventStore,
        publisher: EventPublisher | None = None,
        **options: Any,
    ) -> None:
        AggregateRepository.__init__(self, store, publisher, **options)

    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    __init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("self", positional),
            inspect.Parameter("store", positional, annotation=EventStore),
            inspect.Parameter("publisher", positional, annotation=IPublisher),
        ],
        return_annotation=None,
    )
    __init__.__annotations__ = {"store": EventStore, "publisher": IPublisher, "return": None}
    return __init__


class DeciderRepository(Generic[S, C, E]):
    """Runs commands through a :class:`Decider` against the streams ``"{stream_type}-{id}"``."""

    def __init__(
        self,
        decider: Decider[S, C, E],
        store: EventStore,
        publisher: EventPublisher | None = None,
        *,
        stream_type: str | None = None,
        snapshots: SnapshotStore | None = None,
        snapshot_every: int | None = None,
    ) -> None:
        self.decider = decider
        self.stream_type = stream_type or type(decider).__name__.removesuffix("Decider")
        self._store = store
        self._publisher = publisher
        self._snapshots = snapshots
        self._snapshot_every = snapshot_every

    def stream_id(self, entity_id: str) -> str:
        return f"{self.stream_type}-{entity_id}"

    async def load(self, entity_id: str) -> tuple[S, int]:
        """The current state and version of an entity (the initial state at version 0)."""
        stream_id = self.stream_id(entity_id)
        state, version = self.decider.initial_state(), 0
        if self._snapshots is not None:
            snapshot = await self._snapshots.load(stream_id, type(state))
            if snapshot is not None:
                state, version = snapshot.state, snapshot.stream_version
        events = await _read_from(self._store, stream_id, version + 1)
        return self.decider.fold(events, state), version + len(events)  # type: ignore[arg-type]

    async def handle(self, entity_id: str, command: C) -> Sequence[E]:
        """Load, decide, append expecting the loaded version, publish; return the new events."""
        state, version = await self.load(entity_id)
        events = self.decider.decide(command, state)
        if not events:
            return events
        await self._store.append(self.stream_id(entity_id), events, version or NO_STREAM)
        await _publish(self._publisher, events)
        every = self._snapshot_every
        new_version = version + len(events)
        if self._snapshots is not None and every and version // every != new_version // every:
            await self._snapshots.save(
                self.stream_id(entity_id), new_version, self.decider.fold(events, state)
            )
        return events
