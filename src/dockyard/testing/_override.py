"""Replace providers in tests without editing modules."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from dockyard.app import App, Lifespan
from dockyard.di._spec import ProviderSpec
from dockyard.exceptions import ModuleConfigurationError
from dockyard.modules._build import compile_modules
from dockyard.modules._module import ModuleLike

__all__ = ["create_test_app", "override"]


def create_test_app(
    root: ModuleLike,
    *,
    overrides: Iterable[ProviderSpec] = (),
    context: Mapping[Any, Any] | None = None,
    lifespan: Iterable[Lifespan] = (),
) -> App:
    """Build ``root`` with ``overrides`` replacing, by type, what its modules provide.

    An override keeps the module boundary of the provider it replaces: it sits in the same
    module and is seen by the same importers. An override for a type nobody provides is added
    to the root module.
    """
    return App.build(root, overrides=overrides, context=context, lifespan=lifespan)


@asynccontextmanager
async def override(app: App, *providers: ProviderSpec) -> AsyncIterator[App]:
    """Swap providers on a built app for the duration of the block.

    Scopes opened inside the block see the replacements; singletons are created afresh inside
    it and closed when it ends. Usage::

        async with override(app, object_(FakeClock(), provides=Clock)):
            ...
    """
    compiled, problems = compile_modules(app.graph, providers)
    if problems or compiled is None:
        raise ModuleConfigurationError(problems)
    previous_compiled = app._compiled  # noqa: SLF001 - the override helper owns this swap
    previous = app._replace_container(compiled)  # noqa: SLF001
    try:
        yield app
    finally:
        replaced = app.container
        app._restore_container(previous, previous_compiled)  # noqa: SLF001
        compile_modules(app.graph)  # put the module nodes' data back as declared
        await replaced.close()
