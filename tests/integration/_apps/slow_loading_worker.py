"""An app whose import waits for a file: a test signals the worker while the app loads.

``DOCKYARD_TEST_RELEASE`` names the file; the module says ``loading`` on stderr, then waits
(up to a minute) until the file exists. The app itself has no background service.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from dockyard import App, module

print("loading", file=sys.stderr, flush=True)
_release = Path(os.environ["DOCKYARD_TEST_RELEASE"])
_deadline = time.monotonic() + 60
while not _release.exists() and time.monotonic() < _deadline:
    time.sleep(0.01)


@module()
class Nothing:
    """No providers, no background services."""


app = App.build(Nothing)
