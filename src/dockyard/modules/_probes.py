"""HTTP probes of a worker (``dockyard worker --health-port N``), on asyncio's own server.

``GET /livez``: 200 while no background service has failed (outages do not count: restarting
the process would not end them). ``GET /readyz``: 200 once every service runs, 503 while one
is starting, degraded or stopped. Both answer with the JSON of ``app.health()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

from dockyard.modules._supervisor import WorkerHealth

__all__ = ["serve_probes"]

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
_READ_TIMEOUT = 10.0


async def serve_probes(
    health: Callable[[], WorkerHealth],
    port: int,
    host: str = "0.0.0.0",  # noqa: S104 - probes come from outside the pod
) -> asyncio.Server:
    """Serve ``/livez`` and ``/readyz`` on ``host:port`` until the server is closed."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body = await _respond(reader, health)
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode("ascii") + body)
            await writer.drain()
        except (OSError, TimeoutError, ValueError):
            pass  # a probe that hung up or sent garbage: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return await asyncio.start_server(answer, host, port)


async def _respond(
    reader: asyncio.StreamReader, health: Callable[[], WorkerHealth]
) -> tuple[int, bytes]:
    async with asyncio.timeout(_READ_TIMEOUT):
        request = (await reader.readline()).decode("latin-1").split()
        while (await reader.readline()).strip():  # headers: not needed
            pass
    if len(request) < 2:
        raise ValueError(request)
    method, path = request[0], request[1].partition("?")[0]
    if path not in {"/livez", "/readyz"}:
        return 404, b'{"error": "not found; try /livez or /readyz"}'
    if method not in {"GET", "HEAD"}:
        return 405, b'{"error": "use GET"}'
    current = health()
    ok = current.live if path == "/livez" else current.ready
    return (200 if ok else 503), json.dumps(current.as_dict()).encode()
