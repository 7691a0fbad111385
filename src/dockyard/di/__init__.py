"""Provider helpers over Dishka: how a module says what it provides and for how long."""

from dockyard._public import use_public_paths
from dockyard.di._helpers import contextual, many, object_, scoped, singleton, transient
from dockyard.di._spec import Condition, Lifetime, ProviderKind, ProviderSpec

__all__ = [
    "Condition",
    "Lifetime",
    "ProviderKind",
    "ProviderSpec",
    "contextual",
    "many",
    "object_",
    "scoped",
    "singleton",
    "transient",
]

use_public_paths(__name__, __all__)
