"""A TCP proxy the test owns, to make outages without touching the shared servers.

Put it in front of PostgreSQL or a broker and point the code under test at ``proxy.port``::

    async with FaultProxy(5432) as proxy:          # 127.0.0.1:5432 behind 127.0.0.1:proxy.port
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{proxy.port}/test"
        ...
        await proxy.cut()        # drop every open connection (as pg_terminate_backend would)
        await proxy.refuse()     # drop them and refuse new ones (the server is down)
        proxy.stall()            # keep connections open, forward nothing (a hung network)
        await proxy.restore()    # back to normal: accept and forward again

The proxy keeps its port across ``refuse()``/``restore()``, so clients reconnect to the same
address: a socket bound to it (not listening) holds it for the proxy's whole life, so while it
refuses, no other socket on the machine can take the port (an outgoing connection's ephemeral
port once did, and ``restore()`` failed with "address already in use"). ``opened`` counts
connections accepted so far; ``open`` is how many are open now.

A stalled proxy is not a silent server: the real server behind it still closes a connection
that never finished its handshake (RabbitMQ after its ``handshake_timeout``, 10 s), and the
proxy passes that close on. A node that accepts and then never answers at all (seen: a wedged
RabbitMQ) is ``SilentListener``::

    async with SilentListener() as silent:         # 127.0.0.1:silent.port accepts, never writes
        ...                                        # silent.open: connections the client kept
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Self

__all__ = ["FaultProxy", "SilentListener", "free_port"]

_CHUNK = 65536


class FaultProxy:
    """Forwards ``127.0.0.1:port`` to ``host:target_port``; cuts, refuses and stalls on command."""

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.port = 0
        """The port clients connect to (chosen when the proxy starts)."""
        self.opened = 0
        """Connections accepted since the proxy started."""
        self._server: asyncio.Server | None = None
        self._reserved: socket.socket | None = None
        self._pairs: set[_Pair] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    @property
    def open(self) -> int:
        """Client connections open right now."""
        return len(self._pairs)

    @property
    def refusing(self) -> bool:
        return self._server is None

    async def __aenter__(self) -> Self:
        self._reserved = _bound(0)
        self.port = self._reserved.getsockname()[1]
        try:
            await self._listen()
        except BaseException:
            self._reserved.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._flowing.set()
        try:
            await self.refuse()
        finally:
            if self._reserved is not None:
                self._reserved.close()

    async def cut(self) -> int:
        """Close every open connection at once (both sides see a reset); return how many."""
        pairs, self._pairs = list(self._pairs), set()
        for pair in pairs:
            pair.abort()
        await asyncio.gather(*(pair.done for pair in pairs), return_exceptions=True)
        return len(pairs)

    async def refuse(self) -> int:
        """Stop listening (connects are refused) and cut every open connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        return await self.cut()

    def stall(self) -> None:
        """Hold every byte in both directions (connections and connects hang) until restored."""
        self._flowing.clear()

    async def restore(self) -> None:
        """Accept and forward again."""
        self._flowing.set()
        if self._server is None:
            await self._listen()

    async def _listen(self) -> None:
        listening = _bound(self.port)  # beside the reserving socket: both SO_REUSEPORT
        try:
            self._server = await asyncio.start_server(self._accept, sock=listening)
        except BaseException:
            listening.close()
            raise

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.opened += 1
        try:
            upstream = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        pair = _Pair(writer, upstream[1])
        self._pairs.add(pair)
        pair.start(
            self._pump(reader, upstream[1], pair),
            self._pump(upstream[0], writer, pair),
        )
        await pair.done
        self._pairs.discard(pair)

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, pair: _Pair
    ) -> None:
        try:
            while True:
                data = await source.read(_CHUNK)
                if not data:
                    break
                await self._flowing.wait()
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        pair.abort()


class _Pair:
    """A client connection and its upstream; aborting one aborts both."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self._writers = (client, upstream)
        self._tasks: list[asyncio.Task[None]] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def start(self, *pumps: Coroutine[Any, Any, None]) -> None:
        self._tasks = [asyncio.ensure_future(p) for p in pumps]
        for task in self._tasks:
            task.add_done_callback(self._finished)

    def abort(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        for task in self._tasks:
            task.cancel()

    def _finished(self, _: object) -> None:
        if all(t.done() for t in self._tasks) and not self.done.done():
            self.done.set_result(None)


class SilentListener:
    """Accepts TCP connections on ``127.0.0.1:port``, reads what comes, and never writes a byte.

    With ``amqp_handshake=True`` it answers an AMQP 0-9-1 client's handshake (greeting, tune,
    connection open) and its channel set-ups, and nothing else: a node that lets clients
    connect and never answers what they then ask (declaring a queue or an exchange).

    It closes nothing itself: a connection ends only when the client closes it, so ``open``
    tells whether a client that gave up left its socket behind.
    """

    def __init__(self, *, amqp_handshake: bool = False) -> None:
        self.amqp_handshake = amqp_handshake
        self.port = 0
        self.accepted = 0
        """Connections accepted so far."""
        self.open = 0
        """Connections the client has not closed yet."""
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if server is not None:
            await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        self._writers.add(writer)
        try:
            if self.amqp_handshake:
                await _amqp_open_only(reader, writer)
            while await reader.read(_CHUNK):
                pass  # whatever the client says (a protocol header, a command) goes unanswered
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open -= 1
            self._writers.discard(writer)
            writer.transport.abort()


async def _amqp_open_only(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The server's side of an AMQP 0-9-1 connection that answers the handshake (greeting,
    tune, connection open) and setting channels up (open, confirms, prefetch), and nothing
    else; until the client leaves."""
    from pamqp import commands, frame
    from pamqp.common import FieldTable
    from pamqp.exceptions import UnmarshalingException

    await reader.readexactly(8)  # the protocol header, b"AMQP\x00\x00\x09\x01"
    answers = {
        commands.Connection.StartOk: commands.Connection.Tune(2047, 131072, 60),
        commands.Connection.Open: commands.Connection.OpenOk(),
        commands.Channel.Open: commands.Channel.OpenOk(),
        commands.Confirm.Select: commands.Confirm.SelectOk(),
        commands.Basic.Qos: commands.Basic.QosOk(),
    }
    capabilities: FieldTable = {"publisher_confirms": True, "basic.nack": True}
    start = commands.Connection.Start(server_properties={"capabilities": capabilities})
    writer.write(frame.marshal(start, 0))
    buffer = b""
    while data := await reader.read(_CHUNK):
        buffer += data
        while buffer:
            try:
                used, channel, received = frame.unmarshal(buffer)
            except UnmarshalingException:  # not a whole frame yet
                break
            buffer = buffer[used:]
            answer = answers.get(type(received))
            if answer is not None:
                writer.write(frame.marshal(answer, channel))


def _bound(port: int) -> socket.socket:
    """A TCP socket bound to ``127.0.0.1:port``, not listening. ``SO_REUSEPORT`` lets a
    listener and the socket that reserves the port share it; a port bound this way is never
    handed to an outgoing connection, and with nothing listening on it connects are refused,
    as from a server that is down."""
    bound = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        bound.bind(("127.0.0.1", port))
    except BaseException:
        bound.close()
        raise
    return bound


def free_port() -> int:
    with contextlib.closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
