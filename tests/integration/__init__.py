"""Integration tests against real services (see conftest.py for the probes)."""
