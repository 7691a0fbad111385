"""OpenTelemetry traces and metrics: ``App.build(Root, telemetry=Telemetry())``.

Needs the ``otel`` extra (``pip install 'dockyard[otel]'``) once enabled; an app built without
``Telemetry`` imports nothing from OpenTelemetry and dispatches exactly as before. What is
traced and measured, with the attribute names: ``docs/telemetry.md``.
"""

from dockyard._public import use_public_paths
from dockyard.telemetry._instruments import Instruments
from dockyard.telemetry._settings import Telemetry

__all__ = ["Instruments", "Telemetry"]

use_public_paths(__name__, __all__)
