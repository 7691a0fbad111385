"""Infrastructure shared by every component: settings and the clock."""

from __future__ import annotations

from dockyard import DynamicModule, module, object_, singleton
from examples.shop.infra.lifecycle import AnnounceLifecycle
from examples.shop.infra.settings import Clock, ShopSettings


@module(providers=[singleton(Clock)], exports=[Clock], is_global=True)
class InfraModule:
    """Global: every component sees the clock without importing this module."""

    @classmethod
    def register(cls, settings: ShopSettings) -> DynamicModule:
        return DynamicModule(
            cls,
            providers=[object_(settings)],
            exports=[ShopSettings],
            extensions=[AnnounceLifecycle()],
            settings=settings,
        )
