"""The in-memory outbox and inbox pass the contract every adapter passes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest_asyncio

from dockyard.outbox import Inbox, OutboxWriter
from dockyard.outbox.memory import InMemoryOutboxBackend, memory_inbox, memory_outbox_writer
from dockyard.testing.contracts import OutboxContract, OutboxHarness


class TestInMemoryOutbox(OutboxContract):
    @pytest_asyncio.fixture
    async def outbox_factory(self) -> AsyncIterator[OutboxHarness]:
        backend = InMemoryOutboxBackend()

        @asynccontextmanager
        async def transaction() -> AsyncIterator[tuple[OutboxWriter, Inbox]]:
            # What Dishka does with the scoped generator providers: send the scope's error.
            writer_gen = memory_outbox_writer(backend.store)
            inbox_gen = memory_inbox(backend.inbox)
            writer, inbox = await anext(writer_gen), await anext(inbox_gen)
            error: BaseException | None = None
            try:
                yield writer, inbox
            except BaseException as exc:
                error = exc
                raise
            finally:
                for gen in (writer_gen, inbox_gen):
                    with contextlib.suppress(StopAsyncIteration):
                        await gen.asend(error)

        yield OutboxHarness(store=backend.store, transaction=transaction)
