"""Loads dockyard's pytest plugin: a database of each test's own (docs/testing.md)."""

pytest_plugins = ["dockyard.testing.pytest"]
