"""``wait_for_projections``: let a test read its projections after writing events."""

from __future__ import annotations

import asyncio

from dockyard.app import App
from dockyard.exceptions import ProjectionFailedError, ProjectionsTimeoutError
from dockyard.projections._control import ProjectionControl
from dockyard.projections._leases import LeaseStore
from dockyard.projections._module import find_registry

__all__ = ["wait_for_projections"]

_POLL = 0.005


async def wait_for_projections(app: App, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Return once every catch-up projection and subscription has reached the log's head as
    it was when this was called, including past events of types a projection filters out.

    A projection that no runner is working on (no worker in the test) is caught up right here,
    in this task; one that a runner holds is waited for.

    Raises:
        ProjectionFailedError: A projection is parked on a failing event.
        ProjectionsTimeoutError: Not all of them got there within ``timeout`` seconds.
        LookupError: The app does not register ``ProjectionsModule``.
    """
    _registry, component = find_registry(app)
    control: ProjectionControl = await app.container.get(ProjectionControl, component=component)
    leases: LeaseStore = await control.singleton(LeaseStore)
    # Everything committed before this call, even if a transaction that began earlier and is
    # still open elsewhere keeps it from being final yet: we wait for that one too.
    head = await control.head(committed=True)
    pending = control.names
    try:
        async with asyncio.timeout(timeout):
            while True:
                checkpoints = await control.checkpoints(pending)
                for checkpoint in checkpoints:
                    failure = checkpoint.failure
                    if failure is not None:
                        raise ProjectionFailedError(
                            checkpoint.name, failure.position, failure.error, failure.attempts
                        )
                pending = [c.name for c in checkpoints if c.position < head]
                if not pending:
                    return
                idle = [
                    name
                    for name in pending
                    if not control.local(name).running and await leases.holder(name) is None
                ]
                for name in idle:
                    await control.catch_up(name)
                if not idle:
                    await asyncio.sleep(_POLL)
    except TimeoutError:
        checkpoints = await control.checkpoints(pending)
        lagging = [(c.name, c.position, head) for c in checkpoints if c.position < head]
        raise ProjectionsTimeoutError(timeout, lagging) from None
