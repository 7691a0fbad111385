"""Closing a request's scope: shielded from cancellation when it has finalizers to await, and
without the shield's cost when it has none."""

from collections.abc import AsyncIterator

import anyio
import anyio.lowlevel
import pytest

from dockyard import App, module, scoped
from dockyard.integrations._web import close_scope
from dockyard.messaging._dishka import has_finalizers


class Plain:
    pass


class Held:
    def __init__(self) -> None:
        self.closed = False


CLOSED: list[str] = []


async def held() -> AsyncIterator[Held]:
    value = Held()
    yield value
    for _ in range(3):  # a commit: awaits that a cancellation would interrupt
        await anyio.lowlevel.checkpoint()
    CLOSED.append("held")


@module(providers=[scoped(Plain), scoped(held)])
class Root: ...


@pytest.fixture
async def app() -> AsyncIterator[App]:
    CLOSED.clear()
    built = App.build(Root)
    async with built:
        yield built


async def test_a_scope_has_finalizers_once_a_generator_provider_is_resolved(app: App) -> None:
    scope = app.scope()
    await scope.__aenter__()
    assert not has_finalizers(scope)
    await scope.get(Plain)
    assert not has_finalizers(scope)
    await scope.get(Held)
    assert has_finalizers(scope)
    await scope.__aexit__(None, None, None)
    assert CLOSED == ["held"]


async def test_a_cancelled_request_still_runs_its_scopes_finalizers_to_the_end(app: App) -> None:
    scope = app.scope()
    await scope.__aenter__()
    await scope.get(Held)
    with anyio.CancelScope() as cancelled:
        cancelled.cancel()  # level-triggered: every await in here would raise
        await close_scope(scope, None, None, None)
    assert CLOSED == ["held"]


async def test_a_scope_without_finalizers_closes_inside_a_cancelled_request(app: App) -> None:
    scope = app.scope()
    await scope.__aenter__()
    await scope.get(Plain)
    with anyio.CancelScope() as cancelled:
        cancelled.cancel()
        await close_scope(scope, None, None, None)  # awaits nothing: nothing to interrupt
        reached = True
    assert reached
    assert CLOSED == []
