"""Consumers of broker endpoints: concurrency, error policies, malformed-message guard.

``ConsumerModule.register(endpoints=[listen("rabbit://orders", group="payments")])`` runs a
``Listener`` per endpoint in the worker. Handlers choose what happens when they raise with
``@on_error(...)``; endpoints set defaults with ``ErrorPolicies``. See ``docs/brokers.md``.
"""

from dockyard._public import use_public_paths
from dockyard.consumer._listener import Endpoint, Listener, Outcome, listen
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
    "ConsumerModule",
    "Endpoint",
    "ErrorPolicies",
    "ErrorPolicy",
    "Exhausted",
    "Listener",
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
