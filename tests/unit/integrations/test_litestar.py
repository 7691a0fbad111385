"""``dockyard.integrations.litestar``: injection follows module visibility, checked at start-up.

The behaviour over HTTP (units of work, errors, SSE, lifespan) is tested against a real server
by the web integrations' shared contract: ``tests/integration/web/_contract.py``.
"""

from __future__ import annotations

import pytest
from litestar import Litestar, get
from litestar.testing import AsyncTestClient

from dockyard import App, module, scoped
from dockyard.exceptions import ModuleConfigurationError
from dockyard.integrations.litestar import DockyardPlugin, FromDockyard, Inject


class Exported:
    pass


class Hidden:
    pass


class Unprovided:
    pass


@module(providers=[scoped(Exported), scoped(Hidden)], exports=[Exported])
class Inner: ...


@module(imports=[Inner])
class Root: ...


@get("/exported", dependencies={"value": Inject(Exported)})
async def exported(value: FromDockyard[Exported]) -> str:
    return type(value).__name__


@get("/hidden", dependencies={"value": Inject(Hidden)})
async def hidden(value: FromDockyard[Hidden]) -> str:
    return type(value).__name__


@get("/unprovided", dependencies={"value": Inject(Unprovided)})
async def unprovided(value: FromDockyard[Unprovided]) -> str:
    return type(value).__name__


async def test_an_exported_provider_is_injected() -> None:
    app = App.build(Root)
    web = Litestar([exported], plugins=[DockyardPlugin(app)])
    async with AsyncTestClient(web) as client:
        assert (await client.get("/exported")).text == "Exported"
    assert not app.is_started


async def test_injections_the_root_cannot_see_are_refused_at_start_up_all_at_once() -> None:
    app = App.build(Root)
    web = Litestar([exported, hidden, unprovided], plugins=[DockyardPlugin(app)])
    with pytest.raises(ExceptionGroup) as raised:  # the test client's task group wraps it
        async with AsyncTestClient(web):
            pass
    [error] = raised.value.exceptions
    assert isinstance(error, ModuleConfigurationError)
    message = str(error)
    assert "2 problems" in message
    assert "`Hidden` (for handler `GET /hidden`), provided by `Inner`" in message
    assert "`Unprovided` (for handler `GET /unprovided`), but no module provides it" in message
    assert not app.is_started
