"""The probe behind the service markers: skip locally, fail on CI."""

import re
import socket

import pytest

from services import SERVICES, Service, answers, require_service


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nobody listens once the socket is closed


@pytest.fixture
def missing(monkeypatch: pytest.MonkeyPatch, closed_port: int) -> str:
    monkeypatch.setitem(SERVICES, "redis", Service("Redis", "127.0.0.1", closed_port))
    return f"Redis is not answering on 127.0.0.1:{closed_port} (needed by tests marked `redis`)"


def test_a_missing_service_skips_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=re.escape(missing)):
        require_service("redis")


def test_a_missing_service_fails_on_ci(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception) as info:
        require_service("redis")
    assert str(info.value) == f"{missing}; CI=true, so this is a failure, not a skip"


def test_a_listening_port_answers() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert answers(Service("test", "127.0.0.1", server.getsockname()[1]))
