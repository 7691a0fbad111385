"""dockyard: a framework for Python backends that grow."""

from dockyard.app import App, Lifespan
from dockyard.di import contextual, many, object_, scoped, singleton, transient
from dockyard.exceptions import DockyardError
from dockyard.modules import DynamicModule, module

__all__ = [
    "App",
    "DockyardError",
    "DynamicModule",
    "Lifespan",
    "contextual",
    "many",
    "module",
    "object_",
    "scoped",
    "singleton",
    "transient",
]
