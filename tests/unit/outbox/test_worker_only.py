"""``app.run_worker(only=..., skip=...)``: a worker runs the services whose names match, and
reports only those; a pattern that matches no service fails before the app starts
(docs/operations.md, "Splitting the services across processes")."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from dockyard.app import App
from dockyard.exceptions import UnknownServiceError
from dockyard.messaging import Event
from dockyard.modules import ServiceState, module
from dockyard.outbox import OutboxModule, OutboxStatus, OutboxStore, route
from dockyard.outbox.memory import InMemoryOutboxBackend
from dockyard.transport.memory import InMemoryTransport

ALL = ["outbox-relay", "outbox-relay:b", "outbox-relay:c"]
LISTED = (
    "(the app's services: `outbox-relay`, `outbox-relay:b`, `outbox-relay:c`). Hint: give "
    "glob patterns over those names, e.g. `--only 'outbox-relay*'` or "
    "`--skip 'consumer:*'`; `dockyard describe APP` lists them."
)


@dataclass(frozen=True, slots=True)
class OrderPlaced(Event):
    number: int


@dataclass(frozen=True, slots=True)
class PageViewed(Event):
    number: int


def shop() -> App:
    """Orders to the first transport, page views to ``b://``; ``c`` has no route."""

    @module(
        imports=[
            OutboxModule.register(
                transport=InMemoryTransport(),
                transports={"b": InMemoryTransport(), "c": InMemoryTransport()},
                backend=InMemoryOutboxBackend(),
                routes=[route(OrderPlaced).to("orders"), route(PageViewed).to("b://pages")],
            )
        ],
    )
    class Shop: ...

    return App.build(Shop)


@pytest.mark.parametrize(
    ("only", "skip", "chosen"),
    [
        ((), (), ALL),
        (("outbox-relay:b",), (), ["outbox-relay:b"]),
        (("outbox-relay*",), ("outbox-relay",), ["outbox-relay:b", "outbox-relay:c"]),
        ((), ("outbox-relay:?",), ["outbox-relay"]),
        (("outbox-relay:c", "outbox-relay"), (), ["outbox-relay", "outbox-relay:c"]),
    ],
)
def test_only_and_skip_choose_services_by_glob(
    only: tuple[str, ...], skip: tuple[str, ...], chosen: list[str]
) -> None:
    found = shop().background_services(only=only, skip=skip)
    assert [s.name for s in found] == chosen


@pytest.mark.parametrize(
    ("only", "skip", "message"),
    [
        (
            ("relay:b", "outbox-relay"),
            ("nope*",),
            "No background service matches `relay:b`, `nope*` " + LISTED,
        ),
        (
            ("outbox-relay:b",),
            ("outbox-relay:*",),
            "`--only`/`--skip` leave no background service to run " + LISTED,
        ),
        (("OUTBOX-RELAY",), (), "No background service matches `OUTBOX-RELAY`"),
    ],
)
async def test_a_pattern_matching_nothing_fails_before_the_app_starts(
    only: tuple[str, ...], skip: tuple[str, ...], message: str
) -> None:
    app = shop()
    with pytest.raises(UnknownServiceError) as caught:
        await app.run_worker(only=only, skip=skip)
    assert message in str(caught.value)
    assert caught.value.services == tuple(ALL)
    assert app.health().services == ()  # nothing ran
    with pytest.raises(LookupError):  # the builtin it also derives from
        app.background_services(only=("x",))


async def test_a_filtered_worker_runs_and_reports_only_its_services() -> None:
    app = shop()
    stop = asyncio.Event()
    async with app:
        for n in range(5):
            await app.publish(OrderPlaced(n))
            await app.publish(PageViewed(n))
        worker = asyncio.create_task(app.run_worker(stop=stop, only=["outbox-relay:b"]))
        store = await app.get(OutboxStore)
        try:
            async with asyncio.timeout(60):
                while True:
                    counts = await store.counts_by_destination()
                    if counts["b://pages"][OutboxStatus.DELIVERED] == 5:
                        break
                    await asyncio.sleep(0.01)
            health = app.health()
            assert [(s.name, s.state) for s in health.services] == [
                ("outbox-relay:b", ServiceState.RUNNING)
            ]
            assert health.ready
        finally:
            stop.set()
            await worker
        counts = await store.counts_by_destination()
    assert counts["orders"][OutboxStatus.PENDING] == 5  # the default transport's loop never ran
    assert counts["orders"][OutboxStatus.DELIVERED] == 0
