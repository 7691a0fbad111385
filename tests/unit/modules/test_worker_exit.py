"""What a worker does at the very end: services that ignore cancellation, ``OnWorkerExit``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from dockyard import App
from dockyard.modules import BackgroundService, OnWorkerExit, ProvidesBackgroundServices, module


class Stubborn:
    """A service that swallows every cancellation: a bug in user code the worker must survive."""

    name = "stubborn"

    def __init__(self) -> None:
        self.cancellations = 0
        self.started = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        del stop
        self.started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancellations += 1
        # Goes on as if nothing happened, long past the worker's patience, then ends (so the
        # test's event loop can close).
        await asyncio.sleep(2)


class Services(ProvidesBackgroundServices):
    def __init__(self, *services: BackgroundService) -> None:
        self.services = services

    def background_services(self, app: App) -> Sequence[BackgroundService]:
        del app
        return self.services


class Exits(OnWorkerExit):
    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail

    async def on_worker_exit(self, app: App) -> None:
        del app
        self.calls += 1
        if self.fail:
            raise RuntimeError("the connection was already gone")


async def test_a_service_that_ignores_cancellation_does_not_hold_the_worker(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dockyard.app._AFTER_CANCEL", 0.2)
    stubborn = Stubborn()

    @module(extensions=[Services(stubborn)])
    class Root: ...

    stop = asyncio.Event()

    async def stop_once_started() -> None:
        await stubborn.started.wait()
        stop.set()

    with caplog.at_level(logging.ERROR, "dockyard.worker"):
        stopping = asyncio.create_task(stop_once_started())
        await asyncio.wait_for(App.build(Root).run_worker(stop=stop, grace=0.1), 30)
        await stopping
    assert stubborn.cancellations == 1
    assert [r.getMessage() for r in caplog.records] == [
        "stubborn did not stop when cancelled; leaving it behind"
    ]


async def test_worker_exit_hooks_run_once_when_the_worker_started_the_app() -> None:
    exits = Exits()

    @module(extensions=[exits])
    class Root: ...

    app = App.build(Root)
    stop = asyncio.Event()
    stop.set()
    await app.run_worker(stop=stop)
    assert exits.calls == 1

    async with app:  # the app's owner runs the worker: the app lives on after it
        await app.run_worker(stop=stop)
        assert exits.calls == 1
    assert exits.calls == 1


async def test_a_failing_worker_exit_hook_is_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    @module(extensions=[Exits(fail=True)])
    class Root: ...

    stop = asyncio.Event()
    stop.set()
    with caplog.at_level(logging.WARNING, "dockyard.worker"):
        await App.build(Root).run_worker(stop=stop)
    assert [r.getMessage() for r in caplog.records] == [
        "on exit, Exits: RuntimeError: the connection was already gone"
    ]
