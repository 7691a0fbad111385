"""Helpers for testing apps built with dockyard.

The pytest plugin (a database per test, apps that stop with the test) is
``dockyard.testing.pytest``: ``pytest_plugins = ["dockyard.testing.pytest"]``. See
``docs/testing.md``.
"""

from dockyard._public import use_public_paths
from dockyard.testing._override import create_test_app, override
from dockyard.testing._projections import wait_for_projections
from dockyard.testing._sagas import FakeClock, InjectedStepError, SagaHarness, SagaScenario
from dockyard.testing._specs import AggregateSpec, DeciderSpec, SpecFailedError

__all__ = [
    "AggregateSpec",
    "DeciderSpec",
    "FakeClock",
    "InjectedStepError",
    "SagaHarness",
    "SagaScenario",
    "SpecFailedError",
    "create_test_app",
    "override",
    "wait_for_projections",
]

use_public_paths(__name__, __all__)
