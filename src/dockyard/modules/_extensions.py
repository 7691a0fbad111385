"""Lifecycle hooks. Each hook is an explicit type; an extension subclasses one or more of them.

An extension that subclasses none is a build error: nothing is silently ignored.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only; nothing here is resolved by the container
    from dockyard.app import App
    from dockyard.modules._graph import ModuleNode

__all__ = [
    "HOOKS",
    "Extension",
    "OnAppInit",
    "OnAppShutdown",
    "OnModuleDestroy",
    "OnModuleInit",
]


class Extension:
    """Base of every hook type; subclass a hook below, not this."""

    __slots__ = ()


class OnModuleInit(Extension, abc.ABC):
    """Runs at start-up, module by module, dependencies first."""

    __slots__ = ()

    @abc.abstractmethod
    async def on_module_init(self, app: App, module: ModuleNode) -> None: ...


class OnAppInit(Extension, abc.ABC):
    """Runs once every module is initialised."""

    __slots__ = ()

    @abc.abstractmethod
    async def on_app_init(self, app: App) -> None: ...


class OnAppShutdown(Extension, abc.ABC):
    """Runs first at shutdown, before modules are destroyed."""

    __slots__ = ()

    @abc.abstractmethod
    async def on_app_shutdown(self, app: App) -> None: ...


class OnModuleDestroy(Extension, abc.ABC):
    """Runs at shutdown, module by module, in the reverse of the init order."""

    __slots__ = ()

    @abc.abstractmethod
    async def on_module_destroy(self, app: App, module: ModuleNode) -> None: ...


HOOKS: tuple[type[Extension], ...] = (OnModuleInit, OnAppInit, OnAppShutdown, OnModuleDestroy)
