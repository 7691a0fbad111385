"""Transports: the ``Transport`` port and its adapters.

``dockyard.transport.memory.InMemoryTransport`` is a real implementation for demos and tests;
broker transports (``rabbit``, ``nats``, ``redis``, ``kafka`` over FastStream) share its shape
and pass ``dockyard.testing.contracts.TransportContract``.
"""

from dockyard._public import use_public_paths
from dockyard.transport._port import (
    CAUSATION_ID,
    CONTENT_ENCODING,
    CONTENT_TYPE,
    CORRELATION_ID,
    NO_MESSAGE_ID,
    BacklogReader,
    BatchPublisher,
    BatchPublishError,
    Delivery,
    Subscription,
    Transport,
    TransportMessage,
    in_process,
)

__all__ = [
    "CAUSATION_ID",
    "CONTENT_ENCODING",
    "CONTENT_TYPE",
    "CORRELATION_ID",
    "NO_MESSAGE_ID",
    "BacklogReader",
    "BatchPublishError",
    "BatchPublisher",
    "Delivery",
    "Subscription",
    "Transport",
    "TransportMessage",
    "in_process",
]

use_public_paths(__name__, __all__)
