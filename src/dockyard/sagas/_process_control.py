"""``ProcessControl``: list and show process manager instances, cancel active ones, purge
finished ones; ``ProcessRetention``, the worker's service that purges them by itself."""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta

from dishka import AsyncContainer

from dockyard.exceptions import ConcurrencyError, ProcessNotFoundError, ProcessStateError
from dockyard.outbox._outbox import Outbox
from dockyard.sagas._process_runtime import ProcessRegistry
from dockyard.sagas._process_store import ProcessRecord, ProcessStatus, ProcessStore, ProcessWriter
from dockyard.sagas._runner import keep_purging, purge_finished
from dockyard.sagas._settings import ProcessSettings

__all__ = ["ProcessControl", "ProcessRetention"]

logger = logging.getLogger("dockyard.sagas.processes")


class ProcessControl:
    """Operates an app's process manager instances, from any process that shares their store.

    Inject it (``ProcessManagersModule`` exports it) or get it with
    ``await app.get(ProcessControl)``. A process manager has nothing to retry: a message its
    handler failed on is the consumer's (redelivered, then a dead letter to replay).
    """

    __slots__ = ("_container", "_registry", "_store")

    def __init__(
        self, store: ProcessStore, registry: ProcessRegistry, container: AsyncContainer
    ) -> None:
        self._store = store
        self._registry = registry
        self._container = container

    @property
    def names(self) -> builtins.list[str]:
        """The registered process managers, in registration order."""
        return list(self._registry.processes)

    async def list(
        self,
        *,
        name: str | None = None,
        status: ProcessStatus | None = None,
        limit: int = 100,
        after: tuple[str, str] | None = None,
    ) -> builtins.list[ProcessRecord]:
        """Instances oldest first, ``limit`` at a time after the instance ``after``.

        Args:
            name: Only instances of this process manager.
            status: Only instances in this status.
            limit: At most this many.
            after: The last ``(record.name, record.key)`` of the previous page.
        """
        return await self._store.find(name=name, status=status, limit=limit, after=after)

    async def get(self, name: str, key: str) -> ProcessRecord:
        """One instance, whatever its status.

        Raises:
            ProcessNotFoundError: ``name`` has no instance ``key``.
        """
        record = await self._store.get(name, key)
        if record is None:
            raise ProcessNotFoundError(name, key)
        return record

    def state(self, record: ProcessRecord) -> object:
        """The instance's state, decoded (and upcast) as its handlers see it."""
        return self._registry.serializer.deserialize(
            record.state_type, record.state_schema, record.state
        )

    async def cancel(self, name: str, key: str) -> ProcessRecord:
        """End an active instance as cancelled: later messages of its key are ignored (a
        start message too), and its pending timeout is cancelled in the same transaction.

        The instance is held while it changes, as a message holds it: a message being
        handled for it finishes first, and one arriving after sees it cancelled.

        Raises:
            ProcessNotFoundError: ``name`` has no instance ``key``.
            ProcessStateError: It is not active (completed or cancelled already).
        """
        component = self._registry.component
        async with self._container() as scope:
            writer: ProcessWriter = await scope.get(ProcessWriter, component=component)
            record = await writer.load(name, key)
            if record is None:
                raise ProcessNotFoundError(name, key)
            if record.status is not ProcessStatus.ACTIVE:
                raise ProcessStateError(name, key, record.status.value, "cancel")
            if record.timeout_id is not None:
                outbox: Outbox = await scope.get(Outbox, component=component)
                await outbox.cancel(record.timeout_id)
            cancelled = replace(
                record,
                status=ProcessStatus.CANCELLED,
                version=record.version + 1,
                timeout_id=None,
                timeout_at=None,
            )
            if not await writer.save(cancelled):  # held since the load: cannot happen
                raise ConcurrencyError(f"process {name}/{key}", record.version, cancelled.version)
        logger.warning("process %s %s: cancelled by an operator", name, key)
        return await self.get(name, key)

    async def purge_finished(self, older_than: timedelta | float, *, batch: int = 500) -> int:
        """Delete finished instances (completed, cancelled) last written more than
        ``older_than`` ago, ``batch`` at a time (each batch a short transaction of its own);
        return how many. Active instances are never deleted.

        A worker does this by itself with ``ProcessSettings(retain_finished=...)``.
        """
        seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
        if seconds < 0 or batch < 1:
            msg = f"purge_finished needs older_than >= 0 and batch >= 1, got {seconds}, {batch}"
            raise ValueError(msg)
        return await purge_finished(self._store, seconds, batch)


class ProcessRetention:
    """A ``BackgroundService`` of ``dockyard worker``: purges finished process manager
    instances older than ``ProcessSettings.retain_finished``, at start and every
    ``purge_interval``, a batch per transaction. Any number of copies may run: a batch skips
    the rows another one holds."""

    __slots__ = ("_resolve", "_settings", "name")

    def __init__(
        self, resolve: Callable[[], Awaitable[ProcessStore]], settings: ProcessSettings
    ) -> None:
        self._resolve = resolve
        self._settings = settings
        self.name = "process-retention"

    async def run(self, stop: asyncio.Event) -> None:
        settings = self._settings
        if settings.retain_finished is None:
            return
        older_than = settings.retain_finished.total_seconds()
        await keep_purging(
            await self._resolve(),
            older_than,
            settings.purge_batch,
            settings.purge_interval,
            stop,
            logger,
            "process manager",
        )
