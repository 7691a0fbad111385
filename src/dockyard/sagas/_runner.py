"""``SagaRunner``: claims due saga instances under leases and runs them, in ``dockyard worker``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from dishka import AsyncContainer

from dockyard.exceptions import StoreUnavailableError
from dockyard.modules._supervisor import backoff, service_degraded, service_running
from dockyard.projections._runner import _wait_any, new_owner  # one waiter for every runner
from dockyard.sagas._engine import SagaEngine, describe
from dockyard.sagas._record import SagaRecord
from dockyard.sagas._registry import SagaRegistry
from dockyard.sagas._store import DedicatedLeaseRenewals, LeaseRenewer, SagaStore
from dockyard.telemetry._instruments import Instruments

__all__ = ["Purges", "SagaRunner", "keep_purging", "purge_finished"]

logger = logging.getLogger("dockyard.sagas")

_FIRST_POLL = 0.005
_OUTAGE_CAP = 5.0
"""Longest wait between two claims while the database does not answer."""


@dataclass(slots=True, eq=False)
class _Held:
    task: asyncio.Task[None] | None = None
    lost: bool = False
    """The heartbeat found the lease gone: stop after the attempt in flight."""


class SagaRunner:
    """A ``BackgroundService`` running the instances of one ``SagasModule``.

    ``run(stop)`` claims due instances (at most ``SagaSettings.concurrency`` at once), runs
    each step by step, renews their leases every ``lease_ttl / 3`` and, once ``stop`` is set,
    finishes the attempts in flight and releases what it holds. Any number of copies may run
    in different processes: each instance is held by one of them at a time.
    """

    __slots__ = (
        "_crash",
        "_due",
        "_engine",
        "_held",
        "_instruments",
        "_queue",
        "_registry",
        "_resolve",
        "_stop",
        "_wake",
        "accepting",
        "name",
        "owner",
    )

    reports_health = True  # says when it works again after an outage (worker supervision)

    def __init__(
        self,
        registry: SagaRegistry,
        resolve: Callable[[], Awaitable[tuple[AsyncContainer, SagaStore]]],
        name: str = "saga-runner",
        *,
        instruments: Instruments | None = None,
    ) -> None:
        self._instruments = instruments
        self.name = name
        self.owner = new_owner()
        """Who holds the instances this runner works on: ``host:pid:id``."""
        self.accepting = False
        self._registry = registry
        self._resolve = resolve
        self._held: dict[str, _Held] = {}
        self._queue: deque[SagaRecord] = deque()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._engine: SagaEngine | None = None
        self._crash: BaseException | None = None
        self._due = True
        """Claim at the next turn, before the poll interval is over: an instance was made due
        in this process, or the last claim took as many as it asked for (more may wait)."""

    def __repr__(self) -> str:
        return f"<SagaRunner owner={self.owner!r}>"

    # -- what other parts of this process ask of it ---------------------------------------

    def hand_off(self, record: SagaRecord) -> None:
        """Run ``record``, inserted owned by this runner and committed, without a claim."""
        if self.accepting and record.saga_id not in self._held:
            self._queue.append(record)
            self._wake.set()

    def wake(self) -> None:
        """Claim at once (an instance was made due in this process)."""
        self._due = True
        self._wake.set()

    def _wake_after(self, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self.wake)

    # -- the service ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; return after the attempts in flight, leases released."""
        container, store = await self._resolve()
        self._stop = stop
        self._engine = SagaEngine(
            self._registry,
            container,
            self.owner,
            self._wake_after,
            instruments=self._instruments,
        )
        renewals = (
            store.lease_renewals()
            if isinstance(store, DedicatedLeaseRenewals)
            else contextlib.nullcontext(store)
        )
        async with renewals as renewer:
            await self._serve(store, renewer, stop)
        if self._crash is not None:
            raise self._crash

    async def _serve(self, store: SagaStore, renewer: LeaseRenewer, stop: asyncio.Event) -> None:
        self._registry.attach(store, self)
        self.accepting = True
        heartbeat = asyncio.create_task(self._heartbeat(store, renewer, stop))
        retention = asyncio.create_task(self._retain(store, stop))
        try:
            await self._loop(store, stop)
        finally:
            self.accepting = False
            self._registry.detach(store, self)
            tasks = [h.task for h in self._held.values() if h.task is not None]
            if _cancelling():
                # Forced to stop: wait for nothing (a database that does not answer would
                # hold us); the leases expire after their ttl.
                heartbeat.cancel()
                retention.cancel()
                for task in tasks:
                    task.cancel()
            else:
                await asyncio.gather(*tasks, return_exceptions=True)
                heartbeat.cancel()
                retention.cancel()
                await asyncio.gather(heartbeat, retention, return_exceptions=True)
                with contextlib.suppress(StoreUnavailableError):
                    await asyncio.shield(store.release(self.owner, None))

    async def _loop(self, store: SagaStore, stop: asyncio.Event) -> None:
        """Start what is handed off; claim when the poll interval is over or on ``wake()``.

        A hand-off (an instance started in this process) and a finished instance wake the
        loop without a claim: the claim is a statement, and one per saga would cost more than
        the saga's steps. After an empty claim the interval doubles, up to
        ``max_poll_interval``; after one that took as many as it asked, the next slot to free
        claims at once.
        """
        settings = self._registry.settings
        names = self._registry.names
        clock = asyncio.get_running_loop().time
        poll, outages, next_claim = _FIRST_POLL, 0, clock()
        while not stop.is_set() and self._crash is None:
            self._wake.clear()
            while self._queue and len(self._held) < settings.concurrency:
                self._start(self._queue.popleft())
            free = settings.concurrency - len(self._held)
            if free > 0 and (self._due or clock() >= next_claim):
                self._due = False  # a wake() while the claim runs sets it again
                try:
                    records = await store.claim(
                        names, self.owner, free, settings.lease_ttl, holding=self._holding()
                    )
                except StoreUnavailableError as error:
                    service_degraded(describe(error))  # one log line per outage
                    self._due = True
                    outages += 1
                    await _wait_any([stop], backoff(outages, _OUTAGE_CAP))
                    continue
                outages = 0
                service_running()
                for record in records:
                    self._start(record)
                if len(records) == free:  # more may be due: claim when a slot frees
                    self._due = True
                poll = _FIRST_POLL if records else min(poll * 2, settings.max_poll_interval)
                next_claim = clock() + poll
                free -= len(records)
            # full: a finished instance wakes the loop; else the next claim is due at its time
            wait = max(0.0, next_claim - clock()) if free > 0 else None
            await _wait_any([stop, self._wake], wait)

    def _holding(self) -> list[str]:
        """What this runner works on or is about to: a claim never takes them back, even when
        a late heartbeat let their leases lapse (that would run a step twice here)."""
        return [*self._held, *(record.saga_id for record in self._queue)]

    def _start(self, record: SagaRecord) -> None:
        held = self._held[record.saga_id] = _Held()
        held.task = asyncio.create_task(self._work(record, held), name=f"saga {record.saga_id}")

    async def _work(self, record: SagaRecord, held: _Held) -> None:
        engine = self._engine
        assert engine is not None
        current: SagaRecord | None = record
        try:
            while current is not None and not self._stop.is_set() and not held.lost:
                current = await engine.advance(current)
        except StoreUnavailableError as error:
            # The attempt's commit may or may not have happened: drop the instance; its row
            # says what did, and it is claimed again once its lease ends.
            service_degraded(describe(error))
        except Exception as error:  # a bug: the service fails, the worker says which
            logger.exception("saga %s: the runner failed", record.saga_id)
            self._crash = error
        finally:
            if self._held.get(record.saga_id) is held:
                del self._held[record.saga_id]
            self._wake.set()

    async def _heartbeat(
        self, store: SagaStore, renewer: LeaseRenewer, stop: asyncio.Event
    ) -> None:
        """Renew what this runner holds every ``lease_ttl / 3``, through ``renewer`` (the
        store's dedicated renewals when it has them: never behind the steps)."""
        ttl = self._registry.settings.lease_ttl
        while not stop.is_set():
            await _wait_any([stop], ttl / 3)
            await self._measure(store)
            held = dict(self._held)
            for saga_id in self._holding():
                held.setdefault(saga_id, _Held())
            if stop.is_set() or not held:
                continue
            try:
                renewed = set(await renewer.renew(self.owner, list(held), ttl))
            except StoreUnavailableError:
                continue  # the next checkpoints say whether we still hold them
            for saga_id, entry in held.items():
                if saga_id not in renewed and self._held.get(saga_id) is entry:
                    logger.warning("saga %s: lost its lease (owner %s)", saga_id, self.owner)
                    entry.lost = True

    async def _retain(self, store: SagaStore, stop: asyncio.Event) -> None:
        """Delete finished instances older than ``retain_finished``, a batch per transaction,
        at start and every ``purge_interval``; beside the heartbeat, never delaying it."""
        settings = self._registry.settings
        if settings.retain_finished is not None:
            older_than = settings.retain_finished.total_seconds()
            interval, batch = settings.purge_interval, settings.purge_batch
            await keep_purging(store, older_than, batch, interval, stop, logger, "saga")

    async def _measure(self, store: SagaStore) -> None:
        """Read the instances' counts by status for the gauge, every ``backlog_interval``."""
        instruments = self._instruments
        now = time.time()
        if instruments is None or not instruments.sagas_due(now):
            return
        with contextlib.suppress(StoreUnavailableError):  # the next reading will tell
            counts = await store.counts()
            instruments.record_sagas({str(status): n for status, n in counts.items()}, now)


class Purges(Protocol):
    """A store that deletes its finished instances a batch at a time (sagas, processes)."""

    async def purge(self, older_than: float, limit: int, /) -> int: ...


async def purge_finished(
    store: Purges, older_than: float, batch: int, stop: asyncio.Event | None = None
) -> int:
    """Delete finished instances older than ``older_than`` seconds, ``batch`` per transaction,
    until a batch comes back short (or ``stop`` is set); return how many."""
    purged = 0
    while stop is None or not stop.is_set():
        deleted = await store.purge(older_than, batch)
        purged += deleted
        if deleted < batch:
            break
    return purged


async def keep_purging(
    store: Purges,
    older_than: float,
    batch: int,
    interval: float,
    stop: asyncio.Event,
    log: logging.Logger,
    what: str,
) -> None:
    """Purge finished instances at once, then every ``interval`` seconds, until ``stop``."""
    while not stop.is_set():
        purged = 0
        with contextlib.suppress(StoreUnavailableError):  # the next turn tries again
            purged = await purge_finished(store, older_than, batch, stop)
        if purged:
            log.info("purged %d finished %s instances", purged, what)
        await _wait_any([stop], interval)


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
