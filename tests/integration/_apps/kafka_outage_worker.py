"""``integration._apps.outage_worker`` with its broker on Kafka (the test's own Tansu).

Run by ``dockyard worker integration._apps.kafka_outage_worker:app`` with the same
``DOCKYARD_OUTAGE_*`` environment (``DOCKYARD_OUTAGE_BROKER=kafka``,
``DOCKYARD_OUTAGE_BROKER_PORT``: the proxy in front of that Tansu): the same projection,
relay and consumer, only the transport differs.
"""

from __future__ import annotations

from dockyard.app import App
from dockyard.transport import Transport
from integration._apps import outage_worker


def transport(broker: str, port: int) -> Transport:
    if broker != "kafka":
        return outage_worker.transport(broker, port)
    from dockyard.transport.kafka import KafkaTransport

    # Tansu's memory storage has no idempotent producer; a dead member leaves the group
    # after 3 s; a publish the stalled network holds is given up on after 3 s.
    return KafkaTransport(
        f"127.0.0.1:{port}", idempotent=False, session_timeout=3.0, publish_timeout=3.0
    )


def app() -> App:
    """What the worker loads: ``outage_worker``'s app, built with ``transport`` above."""
    return outage_worker.with_transport(transport)
