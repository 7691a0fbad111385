"""The app ``bench.transports`` runs in ``dockyard worker`` processes: one PostgreSQL outbox,
RabbitMQ (the default transport) and NATS (``nats``), so a relay loop per transport:
``outbox-relay`` and ``outbox-relay:nats``. The bench writes the outbox rows itself (no
routes here) and reads the schema from ``DOCKYARD_BENCH_SCHEMA``.

The relay polls every ``POLL`` seconds when idle: the bench's rows are copied in, no
``NOTIFY`` wakes it, and its default idle poll (5 s) would be counted as relay time.
"""

from __future__ import annotations

import os

from bench.brokers import BATCH, URL, _nats, _rabbit
from dockyard.app import App
from dockyard.modules import module
from dockyard.outbox import OutboxModule, RelaySettings
from dockyard.sql import SqlModule, SqlOutboxBackend

POLL = 0.02


def app() -> App:
    schema = os.environ["DOCKYARD_BENCH_SCHEMA"]

    @module(
        imports=[
            SqlModule.register(
                URL, pool_size=4, connect_args={"server_settings": {"search_path": schema}}
            ),
            OutboxModule.register(
                transport=_rabbit(),
                transports={"nats": _nats()},
                backend=SqlOutboxBackend(),
                relay=RelaySettings(
                    batch_size=BATCH, max_poll_interval=POLL, idle_poll_interval=POLL
                ),
            ),
        ]
    )
    class BenchTransports: ...

    return App.build(BenchTransports)
