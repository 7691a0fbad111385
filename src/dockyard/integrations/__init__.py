"""Entry points into a dockyard app from web frameworks: ``dockyard.integrations.fastapi``, ….

Each integration is an optional extra (``pip install 'dockyard[fastapi]'``) with the same shape.
What they share lives here: the error → RFC 9457 problem details mapping users extend, and the
``RuleViolation`` base for domain errors that reach the client.
"""

from dockyard._public import use_public_paths
from dockyard.integrations._web import ProblemMapping, RuleViolation

__all__ = ["ProblemMapping", "RuleViolation"]

use_public_paths(__name__, __all__)
