"""``ProjectionControl``: status, retry, skip, rebuild and catch-up of an app's projections."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from dishka import AsyncContainer

from dockyard.eventsourcing._store import EventStore, OpenAppend
from dockyard.exceptions import (
    ProjectionNotFoundError,
    ProjectionResetError,
    ProjectionStateError,
)
from dockyard.projections._checkpoints import Checkpoint, CheckpointStore, utc_now
from dockyard.projections._engine import Engine, LocalState
from dockyard.projections._leases import LeaseStore
from dockyard.projections._log import count_after, held_back_by, log_head
from dockyard.projections._projection import Target
from dockyard.projections._runner import new_owner, work
from dockyard.projections._settings import RunnerSettings
from dockyard.telemetry._instruments import Instruments

__all__ = [
    "ProjectionControl",
    "ProjectionRegistry",
    "ProjectionState",
    "ProjectionStatus",
    "RebuildProgress",
]


class ProjectionState(enum.Enum):
    RUNNING = "running"
    """A runner (in any process) holds the lease."""
    STOPPED = "stopped"
    """No runner holds the lease."""
    FAILED = "failed"
    """Parked on an event that kept failing; see ``failed_position`` and ``error``."""
    PAUSED = "paused"
    """Paused by an operator (``ProjectionControl.pause``): no runner applies anything until
    it is resumed, whether or not one holds the lease."""


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    """One catch-up projection's health."""

    name: str
    state: ProjectionState
    position: int
    """The checkpoint."""
    head: int
    """The newest final position of the log."""
    lag: int
    """Events in the log after the checkpoint (``head − checkpoint``, counted in events)."""
    owner: str | None
    """The lease holder (``host:pid:id``), if any."""
    failed_position: int | None = None
    attempts: int = 0
    error: str | None = None
    """The parked event's error, else the last transient error this process saw."""
    held_back_by: OpenAppend | None = None
    """PostgreSQL: an open transaction that appended events, behind which committed events
    wait to be read (the projection cannot move past it until it ends)."""
    paused_at: datetime | None = None
    """When an operator paused it (``state`` is then ``paused``)."""


@dataclass(frozen=True, slots=True)
class RebuildProgress:
    """How far a projection got since its last reset (or since it first ran)."""

    name: str
    position: int
    head: int
    applied: int
    """Events applied since the reset."""
    remaining: int
    events_per_second: float | None
    """Applied events over the time from the reset to the last checkpoint write."""

    @property
    def done(self) -> bool:
        return self.remaining == 0


@dataclass(slots=True, eq=False)
class ProjectionRegistry:
    """The catch-up targets of one ``ProjectionsModule`` registration (app-independent)."""

    targets: dict[str, Target]
    settings: RunnerSettings
    component: str = ""
    """The Dishka component of the module, recorded when the app starts."""
    inline: tuple[type, ...] = field(default=())


class ProjectionControl:
    """Operates an app's catch-up projections, from any process that shares their stores.

    Inject it (``ProjectionsModule`` exports it) or get it with
    ``await app.get(ProjectionControl)`` when the root module imports ``ProjectionsModule``.
    """

    __slots__ = ("_container", "_engines", "_locals", "_registry")

    def __init__(self, container: AsyncContainer, registry: ProjectionRegistry) -> None:
        self._container = container
        self._registry = registry
        self._engines: dict[str, Engine] = {}
        self._locals: dict[str, LocalState] = {}

    @property
    def names(self) -> list[str]:
        """Every catch-up projection and subscription, in registration order."""
        return list(self._registry.targets)

    # -- plumbing shared with the runners -------------------------------------------------

    def engine(self, name: str) -> Engine:
        engine = self._engines.get(name)
        if engine is None:
            target = self._registry.targets.get(name)
            if target is None:
                raise ProjectionNotFoundError(name, self.names)
            engine = self._engines[name] = Engine(
                target, self._container, self._registry.component, self._registry.settings
            )
        return engine

    def local(self, name: str) -> LocalState:
        state = self._locals.get(name)
        if state is None:
            self.engine(name)  # checks the name
            state = self._locals[name] = LocalState()
        return state

    async def singleton(self, dependency: type[Any]) -> Any:
        return await self._container.get(dependency, component=self._registry.component)

    # -- reading --------------------------------------------------------------------------

    async def head(self, *, committed: bool = False) -> int:
        """The newest final global position of the log.

        Args:
            committed: The newest committed position instead, final or not: on PostgreSQL a
                projection reaches it once every transaction older than it has finished.
        """
        async with self._container() as scope:
            store: EventStore = await scope.get(EventStore, component=self._registry.component)
            return await log_head(store, committed=committed)

    async def status(self) -> list[ProjectionStatus]:
        """Every catch-up projection's state, checkpoint, lag and last error."""
        return [await self.status_of(name) for name in self.names]

    async def status_of(self, name: str) -> ProjectionStatus:
        """One projection's state, checkpoint, lag and last error."""
        local = self.local(name)
        leases: LeaseStore = await self.singleton(LeaseStore)
        checkpoint, head, lag = await self._read(name)
        holder = await leases.holder(name)
        failure = checkpoint.failure
        if checkpoint.paused_at is not None:  # a runner may hold the lease: it applies nothing
            state = ProjectionState.PAUSED
        elif failure is not None:
            state = ProjectionState.FAILED
        elif holder is not None or local.running:
            state = ProjectionState.RUNNING
        else:
            state = ProjectionState.STOPPED
        return ProjectionStatus(
            name=name,
            state=state,
            position=checkpoint.position,
            head=max(head, checkpoint.position),
            lag=lag,
            owner=holder.owner if holder is not None else None,
            failed_position=failure.position if failure is not None else None,
            attempts=failure.attempts if failure is not None else 0,
            error=failure.error if failure is not None else local.last_error,
            held_back_by=await self._held_back_by(),
            paused_at=checkpoint.paused_at,
        )

    async def progress(self, name: str) -> RebuildProgress:
        """Position, head and speed since the last reset (poll it during a rebuild)."""
        checkpoint, head, lag = await self._read(name)
        rate = None
        if checkpoint.reset_at is not None and checkpoint.updated_at is not None:
            elapsed = (checkpoint.updated_at - checkpoint.reset_at).total_seconds()
            if elapsed > 0:
                rate = checkpoint.applied_since_reset / elapsed
        return RebuildProgress(
            name,
            checkpoint.position,
            max(head, checkpoint.position),
            checkpoint.applied_since_reset,
            lag,
            rate,
        )

    async def checkpoint(self, name: str) -> Checkpoint:
        """The stored checkpoint of ``name``."""
        self.engine(name)
        async with self._container() as scope:
            store: CheckpointStore = await scope.get(
                CheckpointStore, component=self._registry.component
            )
            return await store.load(name)

    async def _held_back_by(self) -> OpenAppend | None:
        async with self._container() as scope:
            store: EventStore = await scope.get(EventStore, component=self._registry.component)
            return await held_back_by(store)

    async def _read(self, name: str) -> tuple[Checkpoint, int, int]:
        self.engine(name)
        component = self._registry.component
        async with self._container() as scope:
            checkpoints: CheckpointStore = await scope.get(CheckpointStore, component=component)
            store: EventStore = await scope.get(EventStore, component=component)
            checkpoint = await checkpoints.load(name)
            head = await log_head(store)
            lag = await count_after(store, checkpoint.position)
        return checkpoint, head, lag

    # -- operating ------------------------------------------------------------------------

    async def retry(self, name: str) -> None:
        """Clear a parked projection's failure: its runner tries the event again.

        Raises:
            ProjectionStateError: The projection is not parked.
        """

        def clear(current: Checkpoint) -> Checkpoint:
            if current.failure is None:
                raise ProjectionStateError(name, "retry")
            return replace(current, failure=None)

        await self.engine(name).change(self.local(name), clear)

    async def skip(self, name: str) -> None:
        """Move a parked projection past the event it failed on, without applying it.

        Raises:
            ProjectionStateError: The projection is not parked.
        """

        def past(current: Checkpoint) -> Checkpoint:
            if current.failure is None:
                raise ProjectionStateError(name, "skip the failed event of")
            return replace(current, position=current.failure.position, failure=None)

        await self.engine(name).change(self.local(name), past)

    async def pause(self, name: str) -> bool:
        """Stop applying events to ``name`` until :meth:`resume`, in every process.

        Written under the checkpoint's fence: a batch in flight commits first, and once this
        returns no runner applies another (a runner keeps its lease and waits). Returns
        ``False`` if it was paused already.
        """

        def paused(current: Checkpoint) -> Checkpoint | None:
            if current.paused_at is not None:
                return None
            return replace(current, paused_at=utc_now())

        return await self.engine(name).change(self.local(name), paused) is not None

    async def resume(self, name: str) -> bool:
        """Let runners apply events to a paused projection again, from its checkpoint.

        Returns ``False`` if it was not paused.
        """

        def resumed(current: Checkpoint) -> Checkpoint | None:
            if current.paused_at is None:
                return None
            return replace(current, paused_at=None)

        return await self.engine(name).change(self.local(name), resumed) is not None

    async def rebuild(self, name: str) -> None:
        """Clear the read model (the projection's ``reset()``) and set the checkpoint to 0, in
        one transaction; the runner, wherever it runs, starts over with its next batch.

        Raises:
            ProjectionResetError: The projection has no ``reset()``.
        """
        engine = self.engine(name)
        if not engine.target.has_reset:
            raise ProjectionResetError(name, engine.target.cls)
        now = utc_now()

        def zero(current: Checkpoint) -> Checkpoint:  # a paused projection stays paused
            return Checkpoint(
                name, 0, None, 0, reset_at=now, updated_at=now, paused_at=current.paused_at
            )

        await engine.change(self.local(name), zero, reset=True)

    async def catch_up(self, name: str) -> bool:
        """Apply everything up to the head now, in this process, if no runner holds the lease.

        Returns ``False`` (doing nothing) when another runner holds it. Failing events are
        retried per the settings; the projection may end up parked.
        """
        engine = self.engine(name)
        local = self.local(name)
        leases: LeaseStore = await self.singleton(LeaseStore)
        owner = new_owner()
        if not await leases.acquire(name, owner, engine.settings.lease_ttl):
            return False
        instruments: Instruments = await self._container.get(Instruments)
        try:
            await work(
                engine, local, [asyncio.Event()], None, until_idle=True, instruments=instruments
            )
        finally:
            await leases.release(name, owner)
        return True

    async def checkpoints(self, names: Sequence[str]) -> list[Checkpoint]:
        """The stored checkpoints of ``names``, read in one scope."""
        component = self._registry.component
        async with self._container() as scope:
            store: CheckpointStore = await scope.get(CheckpointStore, component=component)
            return [await store.load(name) for name in names]
