"""Helpers for testing apps built with dockyard."""

from dockyard.testing._override import create_test_app, override
from dockyard.testing._projections import wait_for_projections

__all__ = ["create_test_app", "override", "wait_for_projections"]
