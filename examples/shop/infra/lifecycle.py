"""A lifecycle hook that narrates start-up and shutdown, for the demo."""

from __future__ import annotations

from dockyard.app import App
from dockyard.modules import ModuleNode, OnModuleDestroy, OnModuleInit
from examples.shop.ui.console import say


class AnnounceLifecycle(OnModuleInit, OnModuleDestroy):
    """Prints each module as it starts and stops, with the app it belongs to (the demo runs
    two apps that share a module), so the demo shows the lifecycle."""

    async def on_module_init(self, app: object, module: ModuleNode) -> None:
        say(f"{_app_name(app)}: module {module.name} started")

    async def on_module_destroy(self, app: object, module: ModuleNode) -> None:
        say(f"{_app_name(app)}: module {module.name} stopped")


def _app_name(app: object) -> str:
    """``ShopModule`` -> ``shop``, ``PaymentsApp`` -> ``payments``."""
    if not isinstance(app, App):
        return "app"
    root = app.root
    name = getattr(root, "__name__", type(root).__name__)
    return name.removesuffix("Module").removesuffix("App").lower() or name
