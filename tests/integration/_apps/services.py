"""What the broker tests share: PostgreSQL schemas, named RabbitMQ connections, clean-up.

Every test works in a PostgreSQL schema of its own and on broker destinations with a fresh
name, so tests never see each other's messages, and deletes them afterwards
(``delete_declared`` and the ``delete_*`` helpers): queues, streams and exchanges left by
every run piled up to hundreds on the shared servers. RabbitMQ connections carry a name
(``?name=...`` in the URL) so a test can close *its* connections with ``rabbitmqctl`` and
leave everybody else's alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import asyncpg

from dockyard.sql import Database

ROOT = Path(__file__).resolve().parents[3]
POSTGRES_URL = os.environ.get(
    "DOCKYARD_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
POSTGRES_DSN = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672/"
NATS_URL = "nats://127.0.0.1:4222"
REDIS_URL = "redis://127.0.0.1:6379"
KAFKA_SERVERS = "127.0.0.1:9092"
CLEAN_UP_WITHIN = 60.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def engine_options(schema: str) -> dict[str, Any]:
    """``SqlModule.register(POSTGRES_URL, **engine_options(schema))`` works in ``schema``."""
    return {"connect_args": {"server_settings": {"search_path": schema}}}


async def create_schema(schema: str, *statements: str) -> None:
    """A schema with dockyard's tables plus the test's own ``statements``."""
    admin = await asyncpg.connect(POSTGRES_DSN)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await admin.close()
    database = Database(POSTGRES_URL, **engine_options(schema))
    try:
        await database.create_tables()
        async with database.engine.begin() as connection:
            for statement in statements:
                await connection.exec_driver_sql(statement)
    finally:
        await database.dispose()


async def drop_schema(schema: str) -> None:
    admin = await asyncpg.connect(POSTGRES_DSN)
    try:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await admin.close()


def rabbit_url(connection_name: str) -> str:
    """The AMQP URL of a connection RabbitMQ lists (and ``rabbitmqctl`` closes) by name."""
    return f"{RABBIT_URL}?name={connection_name}"


def close_rabbit_connections(name_prefix: str) -> int:
    """Close (server side) every RabbitMQ connection whose name starts with ``name_prefix``.

    Returns how many were closed. Clients see what a network cut or a broker restart shows
    them: the socket goes away mid-stream, with unacknowledged messages in flight.
    """
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "--no-table-headers", "pid", "client_properties"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    closing = []
    for line in listed.stdout.splitlines():
        pid, _, properties = line.partition("\t")
        if f'{{"connection_name","{name_prefix}' in properties:
            closing.append(  # all at once: each rabbitmqctl call starts an Erlang VM
                subprocess.Popen(
                    ["rabbitmqctl", "-q", "close_connection", pid, "dockyard fault test"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
    for process in closing:
        process.wait(timeout=30)  # it may have closed on its own meanwhile: no check
    return len(closing)


async def delete_rabbit_destinations(*queues_and_exchanges: tuple[str, str]) -> None:
    """Delete the test's ``(exchange, queue)`` pairs, so quorum queues do not pile up."""
    await delete_rabbit(
        queues=[queue for _, queue in queues_and_exchanges],
        exchanges=[exchange for exchange, _ in queues_and_exchanges],
    )


async def delete_rabbit(queues: Iterable[str] = (), exchanges: Iterable[str] = ()) -> None:
    """Delete RabbitMQ queues and exchanges (missing ones are fine).

    Bounded: a clean-up that waits on a stuck broker must fail this test, not hang the whole
    run. A plain (not robust) aio-pika connection with a handshake timeout: a robust one
    cancelled mid-connect would go on reconnecting for ever and keep the event loop open.
    """
    import aio_pika

    async with asyncio.timeout(CLEAN_UP_WITHIN):
        connection = await aio_pika.connect(RABBIT_URL, timeout=CLEAN_UP_WITHIN)
        try:
            channel = await connection.channel()
            for queue in queues:
                await channel.queue_delete(queue)
            for exchange in exchanges:
                await channel.exchange_delete(exchange)
        finally:
            await connection.close()


async def delete_nats_streams(*streams: str) -> None:
    """Delete JetStream streams (missing ones are fine), bounded as ``delete_rabbit``."""
    import nats
    from nats.js.errors import NotFoundError

    async with asyncio.timeout(CLEAN_UP_WITHIN):
        client = await nats.connect(NATS_URL, allow_reconnect=False)
        try:
            js = client.jetstream()
            for stream in streams:
                with contextlib.suppress(NotFoundError):
                    await js.delete_stream(stream)
        finally:
            await client.close()


async def delete_redis_keys(*keys: str) -> None:
    """Delete Redis keys (streams), bounded as ``delete_rabbit``."""
    if not keys:
        return
    from redis.asyncio import Redis

    client = Redis(host="127.0.0.1", port=6379)
    try:
        async with asyncio.timeout(CLEAN_UP_WITHIN):
            await client.delete(*keys)
    finally:
        await client.aclose()


async def delete_declared(*transports: object, also: Iterable[str] = ()) -> None:
    """Delete what the broker ``transports`` declared (RabbitMQ queues and exchanges, NATS
    streams, Redis streams), plus ``also``: more names of the same broker (a queue or stream
    the test made by hand), so a test run leaves nothing on the shared servers."""
    from dockyard.transport.nats import NatsTransport
    from dockyard.transport.rabbit import RabbitTransport
    from dockyard.transport.redis import RedisTransport

    extra = list(also)
    rabbit = [t for t in transports if isinstance(t, RabbitTransport)]
    if rabbit:
        declared = {pair for t in rabbit for pair in t._declared}
        exchanges = {name for t in rabbit for name in t._exchanges}
        queues = [f"{name}.{group}" for name, group in sorted(declared)]
        await delete_rabbit(queues + extra, sorted(exchanges | {n for n, _ in declared}))
    nats = [t for t in transports if isinstance(t, NatsTransport)]
    if nats:
        streams = {NatsTransport.stream_name(name) for t in nats for name in t._streams}
        await delete_nats_streams(*sorted(streams), *extra)
    redis = [t for t in transports if isinstance(t, RedisTransport)]
    if redis:
        await delete_redis_keys(*sorted({name for t in redis for name, _ in t._declared}), *extra)


def python_env() -> dict[str, str]:
    """The environment of a subprocess that imports dockyard, the tests and the examples."""
    path = os.pathsep.join(str(p) for p in (ROOT / "tests", ROOT / "src", ROOT))
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}


PYTHON = sys.executable
