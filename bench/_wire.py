"""A PostgreSQL wire proxy that counts what clients ask of the server.

``WireCounter`` listens on a local port and forwards every connection to the real server,
reading the client → server half of the protocol (message type byte + length) as it passes:

* ``round_trips``: messages after which a client waits for the server: ``Sync`` (the end of
  an extended-protocol exchange: Parse/Bind/Execute…) and ``Query`` (a simple query, such as
  asyncpg's ``BEGIN`` and ``COMMIT``). Each is one network round trip;
* ``messages``: every client message (Parse, Bind, Describe, Execute, Sync, Query…);
* ``queries``: the text of simple queries, and of Parse messages (statements prepared);
* ``write_transactions``: transactions that wrote: a ``BEGIN`` … ``COMMIT`` with an ``INSERT``,
  ``UPDATE``, ``DELETE``, ``MERGE``, ``COPY``, DDL or ``NOTIFY`` in it, or such a statement sent
  alone (autocommit). Statements are followed through ``Bind`` to the ``Parse`` that named
  them, so a prepared statement counts each time it runs;
* ``notifies``: statements that ``NOTIFY`` (``NOTIFY …`` or ``pg_notify(…)``). A ``NOTIFY``
  a trigger sends is not on the wire: look for triggers in the schema too.

It answers an ``SSLRequest`` (or GSSAPI's) with ``N`` itself, so clients that prefer TLS talk
plain text through it. For benchmarks and tests only: it adds a hop to every round trip, so
time nothing through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["WireCounter"]

_SSL_REQUEST = 80877103
_GSS_REQUEST = 80877104
_CANCEL_REQUEST = 80877102
_WAITS = {ord("S"), ord("Q")}  # Sync, Query: the client waits for ReadyForQuery
_CTE_WRITE = re.compile(r"\b(INSERT|UPDATE|DELETE|MERGE)\b")
_ROW_LOCK = re.compile(r"\bFOR (NO KEY )?UPDATE\b")
_WRITES = ("INSERT", "UPDATE", "DELETE", "MERGE", "COPY", "CREATE", "ALTER", "DROP", "TRUNCATE")


@dataclass(slots=True)
class WireCounter:
    """Forward ``127.0.0.1:<port>`` to ``host:port`` and count client messages."""

    host: str = "127.0.0.1"
    port: int = 5432
    round_trips: int = 0
    messages: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    queries: list[str] = field(default_factory=list)
    write_transactions: int = 0
    notifies: int = 0
    keep_queries: bool = False
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def listen_port(self) -> int:
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    def dsn(self, database: str = "test", user: str = "postgres") -> str:
        """A ``postgresql://`` DSN that goes through the proxy (TLS off)."""
        return f"postgresql://{user}@127.0.0.1:{self.listen_port}/{database}?sslmode=disable"

    def reset(self) -> None:
        self.round_trips = self.messages = self.write_transactions = self.notifies = 0
        self.kinds.clear()
        self.queries.clear()

    async def start(self) -> WireCounter:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> WireCounter:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream: asyncio.StreamWriter | None = None
        try:
            startup = await self._startup(reader, writer)
            if startup is None:
                return
            server_reader, upstream = await asyncio.open_connection(self.host, self.port)
            upstream.write(startup)
            back = asyncio.create_task(_pipe(server_reader, writer))
            try:
                await self._client_to_server(reader, upstream)
            finally:
                back.cancel()
                await asyncio.gather(back, return_exceptions=True)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            for w in (writer, upstream):
                if w is not None:
                    w.close()

    async def _startup(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bytes | None:
        """The startup packet to forward, after answering TLS/GSS requests with ``N``."""
        while True:
            head = await reader.readexactly(8)
            length, code = struct.unpack("!ii", head)
            body = await reader.readexactly(length - 8)
            if code in (_SSL_REQUEST, _GSS_REQUEST):
                writer.write(b"N")
                await writer.drain()
                continue
            if code == _CANCEL_REQUEST:  # forwarded on a connection of its own
                _, upstream = await asyncio.open_connection(self.host, self.port)
                upstream.write(head + body)
                await upstream.drain()
                upstream.close()
                return None
            return head + body

    async def _client_to_server(
        self, reader: asyncio.StreamReader, upstream: asyncio.StreamWriter
    ) -> None:
        session = _Session(self)
        while True:
            head = await reader.readexactly(5)
            kind = head[0]
            (length,) = struct.unpack("!i", head[1:])
            body = await reader.readexactly(length - 4)
            self.messages += 1
            self.kinds[chr(kind)] += 1
            if kind in _WAITS:
                self.round_trips += 1
            if self.keep_queries and kind in (ord("Q"), ord("P")):
                text = body if kind == ord("Q") else body.split(b"\0", 1)[1]
                self.queries.append(text.split(b"\0", 1)[0].decode(errors="replace"))
            session.see(kind, body)
            upstream.write(head + body)
            await upstream.drain()
            if kind == ord("X"):  # Terminate
                return


class _Session:
    """One client connection: its prepared statements and whether its transaction wrote."""

    __slots__ = ("_counter", "_in_transaction", "_prepared", "_wrote")

    def __init__(self, counter: WireCounter) -> None:
        self._counter = counter
        self._prepared: dict[bytes, str] = {}
        self._in_transaction = self._wrote = False

    def see(self, kind: int, body: bytes) -> None:
        if kind == ord("P"):  # Parse: name \0 query \0 …
            name, rest = body.split(b"\0", 1)
            self._prepared[name] = rest.split(b"\0", 1)[0].decode(errors="replace")
        elif kind == ord("B"):  # Bind: portal \0 statement \0 …: the statement runs
            statement = body.split(b"\0", 2)[1]
            self._statement(self._prepared.get(statement, ""))
        elif kind == ord("Q"):
            text = body.split(b"\0", 1)[0].decode(errors="replace")
            for part in text.split(";"):
                self._statement(part)

    def _statement(self, text: str) -> None:
        words = text.lstrip(" \t\r\n(").upper()
        first = words.split(None, 1)[0] if words.strip() else ""
        counter = self._counter
        if first in ("BEGIN", "START"):
            self._in_transaction, self._wrote = True, False
            return
        if first in ("COMMIT", "END"):
            counter.write_transactions += self._in_transaction and self._wrote
            self._in_transaction = False
            return
        if first == "ROLLBACK" and not words.startswith("ROLLBACK TO"):
            self._in_transaction = False
            return
        notify = first == "NOTIFY" or "PG_NOTIFY(" in words.replace(" ", "")
        counter.notifies += notify
        writes = notify or first in _WRITES
        if first == "WITH":
            writes = _CTE_WRITE.search(_ROW_LOCK.sub("", words)) is not None
        if writes and self._in_transaction:
            self._wrote = True
        elif writes:
            counter.write_transactions += 1


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()
