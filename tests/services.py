"""Real services for tests: probe them, skip without them, fail without them on CI.

Mark a test with the service it needs (``@pytest.mark.postgres``, ``rabbit``, ``nats``,
``redis``, ``kafka``); an autouse fixture (``tests/conftest.py``) probes each marked service's
TCP port first. When a service does not answer the test is skipped with the reason, unless
``CI=true``, where a missing service is a failure: CI must never go green by skipping. A
program a test runs (a browser) is checked the same way: ``require_program``.
"""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass
from typing import NoReturn

import pytest


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    host: str
    port: int
    start: str = ""
    """How to start it here, when the machine's own services do not include it."""


SERVICES = {
    "postgres": Service("PostgreSQL", "127.0.0.1", 5432),
    "rabbit": Service("RabbitMQ", "127.0.0.1", 5672),
    "nats": Service("NATS", "127.0.0.1", 4222),
    "redis": Service("Redis", "127.0.0.1", 6379),
    "kafka": Service("Kafka", "127.0.0.1", 9092, start="start Tansu with `make kafka`"),
}

POSTGRES_URL = os.environ.get(
    "DOCKYARD_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)

_answers: dict[str, bool] = {}


def answers(service: Service, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on the service's port (cached per run)."""
    key = f"{service.host}:{service.port}"
    if key not in _answers:
        try:
            with socket.create_connection((service.host, service.port), timeout=timeout):
                _answers[key] = True
        except OSError:
            _answers[key] = False
    return _answers[key]


def require_service(marker: str) -> None:
    """Skip (or, with ``CI=true``, fail) unless the service behind ``marker`` answers."""
    service = SERVICES[marker]
    if answers(service):
        return
    reason = (
        f"{service.name} is not answering on {service.host}:{service.port} "
        f"(needed by tests marked `{marker}`)"
    )
    if service.start:
        reason = f"{reason}; {service.start}"
    unavailable(reason)


def require_program(name: str, install: str) -> str:
    """The path of the program ``name``; skip (with ``CI=true``, fail) when it is missing.

    ``install`` says how to get it (``.ci/run`` installs it).
    """
    path = shutil.which(name)
    if path is None:
        unavailable(f"`{name}` is not installed; install it with `{install}`")
    return path


def unavailable(reason: str) -> NoReturn:
    """Skip the test for ``reason``; under ``CI=true`` fail it: CI never goes green by skipping."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true, so this is a failure, not a skip", pytrace=False)
    pytest.skip(reason)
