"""What the broker tests share: PostgreSQL schemas, named RabbitMQ connections, clean-up.

Every test works in a PostgreSQL schema of its own and on broker destinations with a fresh
name, so tests never see each other's messages. RabbitMQ connections carry a name
(``?name=...`` in the URL) so a test can close *its* connections with ``rabbitmqctl`` and
leave everybody else's alone.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
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
    from faststream.rabbit import RabbitBroker

    broker = RabbitBroker(RABBIT_URL, logger=None)
    # Bounded: a clean-up that waits on a stuck broker must fail this test, not the whole run.
    async with asyncio.timeout(CLEAN_UP_WITHIN):
        await broker.start()
        try:
            connection = broker._connection  # admin work only
            assert connection is not None
            channel = await connection.channel()
            for exchange, queue in queues_and_exchanges:
                await channel.queue_delete(queue)
                await channel.exchange_delete(exchange)
            await channel.close()
        finally:
            await broker.stop()


async def delete_nats_streams(*streams: str) -> None:
    from faststream.nats import NatsBroker

    broker = NatsBroker(NATS_URL, logger=None)
    async with asyncio.timeout(CLEAN_UP_WITHIN):
        await broker.start()
        try:
            js = broker.connection.jetstream()
            for stream in streams:
                try:
                    await js.delete_stream(stream)
                except Exception:
                    continue
        finally:
            await broker.stop()


def python_env() -> dict[str, str]:
    """The environment of a subprocess that imports dockyard, the tests and the examples."""
    path = os.pathsep.join(str(p) for p in (ROOT / "tests", ROOT / "src", ROOT))
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}


PYTHON = sys.executable
