"""Modules: groups of providers with explicit imports and exports, checked when the app builds."""

from dockyard._public import use_public_paths
from dockyard.modules._extensions import (
    BackgroundService,
    ChecksGraph,
    Extension,
    OffersDefaults,
    OnAppInit,
    OnAppShutdown,
    OnModuleDestroy,
    OnModuleInit,
    OnWorkerExit,
    ProvidesBackgroundServices,
)
from dockyard.modules._graph import ModuleGraph, ModuleNode
from dockyard.modules._module import (
    Defaults,
    DynamicModule,
    ModuleLike,
    ModuleMetadata,
    get_metadata,
    module,
)
from dockyard.modules._supervisor import (
    ServiceHealth,
    ServiceState,
    WorkerHealth,
    service_degraded,
    service_running,
)

__all__ = [
    "BackgroundService",
    "ChecksGraph",
    "Defaults",
    "DynamicModule",
    "Extension",
    "ModuleGraph",
    "ModuleLike",
    "ModuleMetadata",
    "ModuleNode",
    "OffersDefaults",
    "OnAppInit",
    "OnAppShutdown",
    "OnModuleDestroy",
    "OnModuleInit",
    "OnWorkerExit",
    "ProvidesBackgroundServices",
    "ServiceHealth",
    "ServiceState",
    "WorkerHealth",
    "get_metadata",
    "module",
    "service_degraded",
    "service_running",
]

use_public_paths(__name__, __all__)
