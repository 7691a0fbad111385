"""Consumers: receive messages from a broker, deduplicate them, hand them to the mediator.

``ConsumerModule.register(endpoints=[listen("orders", group="billing")])`` runs a ``Consumer``
per endpoint in the worker. Each delivery is checked, decoded, recorded in the inbox and
dispatched in its own scope, up to ``concurrency`` at once. Handlers choose what happens when
they raise with ``@on_error(...)``; endpoints set defaults with ``ErrorPolicies``. Malformed
messages become dead letters with the reason. See ``docs/brokers.md`` and ``docs/outbox.md``.
"""

from dockyard._public import use_public_paths
from dockyard.consumer._consumer import Consumer, Outcome
from dockyard.consumer._endpoint import Endpoint, listen
from dockyard.consumer._module import ConsumerModule
from dockyard.consumer._policies import (
    ErrorPolicies,
    ErrorPolicy,
    Exhausted,
    dead_letter,
    discard,
    failing_handler,
    on_error,
    retry_inline,
    retry_later,
)

__all__ = [
    "Consumer",
    "ConsumerModule",
    "Endpoint",
    "ErrorPolicies",
    "ErrorPolicy",
    "Exhausted",
    "Outcome",
    "dead_letter",
    "discard",
    "failing_handler",
    "listen",
    "on_error",
    "retry_inline",
    "retry_later",
]

use_public_paths(__name__, __all__)
