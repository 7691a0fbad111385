"""Helpers for testing apps built with dockyard."""

from dockyard.testing._override import create_test_app, override

__all__ = ["create_test_app", "override"]
