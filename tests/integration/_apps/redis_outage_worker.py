"""``integration._apps.outage_worker`` with its broker on Redis Streams.

Run by ``dockyard worker integration._apps.redis_outage_worker:app`` with the same
``DOCKYARD_OUTAGE_*`` environment (``DOCKYARD_OUTAGE_BROKER=redis``,
``DOCKYARD_OUTAGE_BROKER_PORT``): the same projection, relay and consumer, only the
transport differs.
"""

from __future__ import annotations

from dockyard.app import App
from dockyard.transport import Transport
from integration._apps import outage_worker


def transport(broker: str, port: int) -> Transport:
    if broker != "redis":
        return outage_worker.transport(broker, port)
    from dockyard.transport.redis import RedisTransport

    return RedisTransport(f"redis://127.0.0.1:{port}", claim_after=5.0)


def app() -> App:
    """What the worker loads: ``outage_worker``'s app, built with ``transport`` above."""
    return outage_worker.with_transport(transport)
