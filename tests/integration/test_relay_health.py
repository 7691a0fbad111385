"""A relay paused by a broker outage shows as degraded in ``app.health()`` and ``/readyz``.

The relay waits a broker outage out itself (it pauses, counts no attempt) instead of raising
to its supervisor, so it must say so: ``degraded`` with the reason while the transport is
unavailable, ``running`` once it publishes again, and the worker's log has one warning and one
info line for it (the worker's, not the relay's own as well). And it does pause: with fewer
messages pending than a batch it used to claim them again at once, in a loop, never returning
to say anything (36,000 tries a second against an in-memory broker).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from dockyard.app import App
from dockyard.messaging import Event
from dockyard.modules import ServiceState, module
from dockyard.outbox import OutboxMessage, OutboxModule, OutboxRelay, RelaySettings, route
from dockyard.outbox.memory import InMemoryOutboxStore
from dockyard.transport import TransportMessage
from dockyard.transport.memory import InMemoryTransport
from faults import FaultProxy
from integration import test_worker_outages
from integration._apps.worker_process import wait_until
from integration.test_worker_outages import (  # the real worker with its broker behind a proxy
    Setup,
    start_worker,
    stop_cleanly,
)

setup = test_worker_outages.setup
"""The fixture: a schema, a destination, a producer app and a database connection."""

_WAIT = 30.0
_RELAY = "outbox-relay"
_PAUSED = "the transport is unavailable; relaying is paused until it answers"


@dataclass(frozen=True, slots=True)
class Ping(Event):
    n: int


def relay_state(app: App) -> tuple[ServiceState | None, str | None]:
    found = [s for s in app.health().services if s.name == _RELAY]
    return (found[0].state, found[0].reason) if found else (None, None)


async def received(transport: InMemoryTransport, destination: str, count: int) -> list[int]:
    """The payloads of the first ``count`` messages on ``destination``."""
    got: list[TransportMessage] = []
    async with transport.subscribe(destination, "check", prefetch=count) as deliveries:
        async for delivery in deliveries:
            await delivery.ack()
            got.append(delivery.message)
            if len(got) == count:
                break
    return sorted(int(m.payload.decode().split(":")[1].strip(" }")) for m in got)


async def test_a_paused_relay_is_degraded_in_app_health_until_the_broker_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = InMemoryTransport()

    @module(imports=[OutboxModule.register(transport=transport, routes=[route(Ping).to("pings")])])
    class Root: ...

    app = App.build(Root)
    caplog.set_level(logging.INFO, logger="dockyard")
    stop = asyncio.Event()
    worker = asyncio.create_task(app.run_worker(stop=stop, max_backoff=0.5))
    try:
        await wait_until(lambda: app.health().ready, "the relay running", _WAIT)
        await app.publish(Ping(0))

        transport.go_offline()
        await app.publish(Ping(1))  # the relay tries, finds the broker gone and pauses
        await wait_until(
            lambda: relay_state(app)[0] is ServiceState.DEGRADED, "the relay degraded", _WAIT
        )
        _, reason = relay_state(app)
        assert reason is not None
        assert reason.startswith(_PAUSED), reason
        assert "go_offline()" in reason
        assert not app.health().ready
        assert app.health().live
        await app.publish(Ping(2))  # while paused: nothing counted, nothing lost

        transport.go_online()
        await wait_until(lambda: app.health().ready, "the relay running again", _WAIT)
        assert relay_state(app) == (ServiceState.RUNNING, None)
        assert await asyncio.wait_for(received(transport, "pings", 3), _WAIT) == [0, 1, 2]
    finally:
        stop.set()
        await asyncio.wait_for(worker, _WAIT)
    dockyard = [r for r in caplog.records if r.name.startswith("dockyard")]
    warnings = [r.getMessage() for r in dockyard if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"{_RELAY}: degraded, retrying with backoff: {_PAUSED}")
    recovered = [r.getMessage() for r in dockyard if "recovered" in r.getMessage()]
    assert len(recovered) == 1, recovered
    assert recovered[0].startswith(f"{_RELAY}: recovered after ")
    assert not [r for r in dockyard if "available again" in r.getMessage()], "logged twice"


class CountingTransport(InMemoryTransport):
    def __init__(self) -> None:
        super().__init__()
        self.tries = 0

    async def publish_many(self, messages: Sequence[TransportMessage], /) -> None:
        self.tries += 1
        await super().publish_many(messages)


async def test_a_short_batch_that_finds_the_broker_down_pauses_the_relay() -> None:
    store = InMemoryOutboxStore()
    now = time.time()
    store.append(
        [OutboxMessage("m-1", "pings", "Ping", b"{}", created_at=now, next_attempt_at=now)]
    )
    transport = CountingTransport()
    transport.go_offline()
    long_pause = RelaySettings(outage_pause=60.0, max_outage_pause=60.0)  # 30 s at least
    relay = OutboxRelay(store, transport, long_pause)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await wait_until(lambda: transport.tries >= 1, "the first try", _WAIT)
        for _ in range(1_000):  # the loop's turns, not time: a relay in a loop would try again
            await asyncio.sleep(0)
        assert transport.tries == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, _WAIT)


@pytest.mark.postgres
@pytest.mark.rabbit
@pytest.mark.slow
async def test_a_rabbit_outage_makes_the_worker_not_ready_then_ready(setup: Setup) -> None:
    async with FaultProxy(5672) as rabbit:
        worker = start_worker(setup, broker_port=str(rabbit.port))
        try:
            await worker.ready()
            await setup.produce(0, 10)
            await setup.settled(10)

            await rabbit.refuse()
            await setup.produce(10, 20)  # the relay tries to publish these and pauses
            await worker.wait_states(
                lambda s: s[_RELAY] == "degraded", "the relay degraded on /readyz"
            )
            status, body = await worker.probe("/readyz")
            assert status == 503
            assert body["live"] is True
            relay = body["services"][_RELAY]
            assert relay["reason"].startswith(_PAUSED), relay

            await rabbit.restore()
            await setup.settled(20)
            await worker.ready()
            status, body = await worker.probe("/readyz")
            assert status == 200
            assert body["services"][_RELAY] == {**body["services"][_RELAY], "state": "running"}
            await setup.check_once(20)
            await stop_cleanly(worker)
        finally:
            worker.kill()
    went = worker.log(rf"WARNING .*: {_RELAY}: degraded, retrying with backoff: {_PAUSED}")
    assert len(went) == 1, worker.output()
    assert len(worker.log(rf"INFO .*: {_RELAY}: recovered after")) == 1, worker.output()
    assert worker.log(r"relaying is paused", logger="dockyard.outbox") == [], worker.output()
