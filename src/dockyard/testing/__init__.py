"""Helpers for testing apps built with dockyard."""

from dockyard._public import use_public_paths
from dockyard.testing._override import create_test_app, override
from dockyard.testing._projections import wait_for_projections
from dockyard.testing._specs import AggregateSpec, DeciderSpec, SpecFailedError

__all__ = [
    "AggregateSpec",
    "DeciderSpec",
    "SpecFailedError",
    "create_test_app",
    "override",
    "wait_for_projections",
]

use_public_paths(__name__, __all__)
