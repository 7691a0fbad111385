"""The outbox errors' messages, as docs/errors.md shows them."""

from __future__ import annotations

import pytest

from dockyard.exceptions import (
    AppImportError,
    DeadLetterNotFoundError,
    InvalidRouteError,
    MissingExtraError,
    TransportClosedError,
)
from dockyard.messaging import Event
from dockyard.transport import TransportMessage
from dockyard.transport.memory import InMemoryTransport


class OrderPlaced(Event):
    pass


def test_messages_say_what_where_and_how_to_fix() -> None:
    assert str(InvalidRouteError(OrderPlaced, "the destination '  ' is empty")) == (
        "Cannot route `OrderPlaced`: the destination '  ' is empty. Hint: write "
        '`route(OrderPlaced).to("orders")` with a message class and a non-empty destination, '
        "and list it in a module's `handlers=[...]` or in `OutboxModule.register(routes=[...])`."
    )
    assert str(TransportClosedError("in-memory")) == (
        "The in-memory transport is closed: it cannot publish or deliver any more. Hint: close "
        "a transport only once nothing publishes or consumes through it (after the app and its "
        "worker have stopped); build a new one to start again."
    )
    assert str(DeadLetterNotFoundError(["m-1", "m-2"])) == (
        "No dead letter with message id `m-1`, `m-2`: it was never dead-lettered, was already "
        "replayed or purged. Hint: list the current ones with `await dead_letters.list()`."
    )
    assert str(MissingExtraError("The `dockyard` command", "Typer", "cli")) == (
        "The `dockyard` command needs Typer, which is not installed. "
        "Hint: pip install 'dockyard[cli]'"
    )
    assert str(AppImportError("shop.app:ap", "`shop.app` has no `ap`")).startswith(
        "Cannot load the app `shop.app:ap`: `shop.app` has no `ap`. Hint: pass "
    )
    assert isinstance(TransportClosedError("x"), RuntimeError)
    assert isinstance(DeadLetterNotFoundError([]), LookupError)


async def test_a_closed_in_memory_transport_names_itself() -> None:
    transport = InMemoryTransport()
    await transport.close()
    with pytest.raises(TransportClosedError, match=r"^The in-memory transport is closed"):
        await transport.publish(TransportMessage("m", "orders", "OrderPlaced", b"{}"))
