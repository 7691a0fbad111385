"""The shop's HTTP apps for tests that serve them in the test's own loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from examples.shop.app import PAYMENTS

from dockyard.transport.memory import InMemoryTransport

FRAMEWORKS = ["fastapi", "litestar"]


def new_order(sku: str = "mug", quantity: int = 2) -> dict[str, Any]:
    return {"customer_id": "c-ada", "lines": [{"sku": sku, "quantity": quantity}]}


class HoldPayments(InMemoryTransport):
    """Payments receives nothing until ``release`` is set (the test's valve).

    Held where payments receives, not where the shop's relay publishes: the relay publishes
    inside its SQLite transaction, and holding it there would lock the shop's database.
    """

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    @asynccontextmanager
    async def subscribe(
        self, destination: str, group: str, *, prefetch: int = 1
    ) -> AsyncIterator[Any]:
        async with super().subscribe(destination, group, prefetch=prefetch) as subscription:
            if destination == PAYMENTS:
                await self.release.wait()
            yield subscription


def shop_app(framework: str, database: Path, transport: InMemoryTransport) -> Any:
    if framework == "fastapi":
        from examples.shop.http_fastapi import create_app as fastapi_app

        return fastapi_app(database, transport=transport)
    from examples.shop.http_litestar import create_app as litestar_app

    return litestar_app(database, transport=transport)
