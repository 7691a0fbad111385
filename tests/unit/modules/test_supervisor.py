"""The supervisor every worker service runs under: outages are states, bugs end the worker."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from dockyard.exceptions import StoreUnavailableError
from dockyard.modules import ServiceState, WorkerHealth, service_running
from dockyard.modules._probes import serve_probes
from dockyard.modules._supervisor import Supervisor, is_outage


class Flaky:
    """Fails with an outage ``outages`` times, then works until stopped."""

    name = "flaky"
    reports_health = True

    def __init__(self, outages: int, error: Exception | None = None) -> None:
        self.outages = outages
        self.error = error or StoreUnavailableError("read", "ConnectionRefusedError: refused")
        self.runs = 0
        self.working = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        self.runs += 1
        if self.runs <= self.outages:
            raise self.error
        service_running()
        self.working.set()
        await stop.wait()


async def test_an_outage_is_one_warning_then_one_recovery(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "dockyard.worker")
    service, stop = Flaky(outages=4), asyncio.Event()
    supervisor = Supervisor(service, max_backoff=0.1)
    task = asyncio.create_task(supervisor.run(stop))
    await asyncio.wait_for(service.working.wait(), 30)
    assert supervisor.health().state is ServiceState.RUNNING
    stop.set()
    await task
    assert service.runs == 5
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if "degraded" in m] == [
        (
            "flaky: degraded, retrying with backoff: StoreUnavailableError: The database did not "
            "answer while trying to read: ConnectionRefusedError: refused. Nothing was committed. "
            "Hint: check that the database is running and reachable at the configured URL, then "
            "retry."
        )
    ]
    assert len([m for m in messages if "recovered after" in m]) == 1
    assert messages[-1] == "flaky: stopped"
    assert supervisor.health().state is ServiceState.STOPPED


async def test_a_bug_fails_the_service_and_is_raised() -> None:
    service = Flaky(outages=1, error=KeyError("oops"))
    supervisor = Supervisor(service)
    with pytest.raises(KeyError):
        await supervisor.run(asyncio.Event())
    health = supervisor.health()
    assert (health.state, health.reason) == (ServiceState.FAILED, "KeyError: 'oops'")


LOST_AT_STOP = (
    "StoreUnavailableError: The database did not answer while trying to release the lease: "
    "connection was closed. Nothing was committed. Hint: check that the database is running "
    "and reachable at the configured URL, then retry."
)


@pytest.mark.parametrize(
    ("error", "level", "said"),
    [
        (RuntimeError("release failed"), logging.ERROR, "RuntimeError: release failed"),
        # a connection dropped just before the stop: an outage, not a bug
        (StoreUnavailableError("release the lease", "connection was closed"), logging.WARNING,
         LOST_AT_STOP),
    ],
)  # fmt: skip
async def test_an_error_while_stopping_is_logged_once_not_raised(
    caplog: pytest.LogCaptureFixture, error: Exception, level: int, said: str
) -> None:
    class BadStop:
        name = "bad-stop"

        async def run(self, stop: asyncio.Event) -> None:
            await stop.wait()
            raise error

    stop = asyncio.Event()
    supervisor = Supervisor(BadStop())
    task = asyncio.create_task(supervisor.run(stop))
    await asyncio.sleep(0)
    stop.set()
    await task
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]
    assert lines == [(level, f"bad-stop: error while stopping: {said}")]
    assert supervisor.health().state is ServiceState.STOPPED


def test_what_counts_as_an_outage() -> None:
    assert is_outage(ConnectionRefusedError(111, "refused"))
    assert is_outage(StoreUnavailableError("read", "gone"))
    assert is_outage(ExceptionGroup("closing a scope", [TimeoutError()]))
    wrapped = RuntimeError("while handling")
    wrapped.__cause__ = ConnectionResetError()
    assert is_outage(wrapped)
    assert not is_outage(KeyError("bug"))
    assert not is_outage(FileNotFoundError("config.toml"))
    assert not is_outage(ExceptionGroup("mixed", [TimeoutError(), ValueError()]))


async def test_probes_answer_livez_and_readyz() -> None:
    service, stop = Flaky(outages=0), asyncio.Event()
    supervisor = Supervisor(service)

    def health() -> WorkerHealth:
        return WorkerHealth((supervisor.health(),))

    server = await serve_probes(health, 0, "127.0.0.1")
    port = server.sockets[0].getsockname()[1]

    async def get(path: str) -> tuple[int, dict[str, object]]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\n\r\n".encode())
        response = await reader.read()
        writer.close()
        await writer.wait_closed()
        head, _, body = response.partition(b"\r\n\r\n")
        return int(head.split()[1]), json.loads(body)

    try:
        assert (await get("/readyz"))[0] == 503  # starting
        assert (await get("/livez"))[0] == 200
        task = asyncio.create_task(supervisor.run(stop))
        await asyncio.wait_for(service.working.wait(), 30)
        status, body = await get("/readyz")
        assert status == 200
        assert body["services"] == {
            "flaky": {"state": "running", "reason": None, "since": supervisor.health().since}
        }
        assert (await get("/nope"))[0] == 404
        stop.set()
        await task
    finally:
        server.close()
        await server.wait_closed()
