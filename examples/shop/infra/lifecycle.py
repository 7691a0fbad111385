"""A lifecycle hook that narrates start-up and shutdown, for the demo."""

from __future__ import annotations

from dockyard.modules import ModuleNode, OnModuleDestroy, OnModuleInit
from examples.shop.ui.console import say


class AnnounceLifecycle(OnModuleInit, OnModuleDestroy):
    """Prints each module as it starts and stops, so the demo shows the lifecycle."""

    async def on_module_init(self, app: object, module: ModuleNode) -> None:
        say(f"module {module.name} started")

    async def on_module_destroy(self, app: object, module: ModuleNode) -> None:
        say(f"module {module.name} stopped")
