"""Orchestrated sagas: declared steps, one transaction per step attempt, fenced checkpoints.

- ``Saga(name, version=..., state=..., steps=[...])`` declares a saga as data; ``step``,
  ``pivot`` and ``fallback=`` say what runs, what undoes it and where the point of no return
  is; ``SagaStep`` is the handler a step runs (``act``, optionally ``compensate``).
- ``remote(name, RemoteStep, destination=..., replies=[...], timeout=...)``: a step whose
  command goes through the outbox and whose reply, through a consumer, resumes the instance.
- ``SagasModule.register(sagas=[...])`` checks the definitions, provides the handlers and
  gives ``dockyard worker`` a ``SagaRunner``; ``Sagas.start`` starts an instance in the
  caller's transaction.
- Process managers (choreography): ``ProcessManager(name, version=..., state=...,
  handlers=[starts(...), handles(...), on_timeout(...)])`` keyed by a correlation id taken
  from each message, registered with ``ProcessManagersModule.register(processes=[...])``;
  ``ProcessHandler`` changes the typed state of a ``Process`` and completes it.
- ``SagaControl``: list and show instances with their step log, retry, skip or cancel parked
  ones, purge finished ones (``SagaSettings.retain_finished`` has runners do it), draw a saga
  or the path one instance took as a Mermaid state diagram.
- ``ProcessControl``: list and show process manager instances, cancel active ones, purge
  finished ones (``ProcessSettings.retain_finished`` has workers do it).
- ``dockyard.testing.SagaHarness``: sagas in a test on a fake clock, given/when/then.

Ports: ``SagaStore``, ``SagaWriter`` (bundled by a ``SagaBackend``; a store may also offer
``DedicatedLeaseRenewals``); the in-memory adapter is in
``dockyard.sagas.memory``, the SQL one in ``dockyard.sql``. See ``docs/sagas.md`` and
``docs/design/sagas.md``.
"""

from dockyard._public import use_public_paths
from dockyard.sagas._backend import SagaBackend
from dockyard.sagas._control import SagaControl
from dockyard.sagas._definition import Saga, Step, pivot, step
from dockyard.sagas._module import SagasModule
from dockyard.sagas._process import (
    Process,
    ProcessHandler,
    ProcessManager,
    ProcessRoute,
    handles,
    on_timeout,
    starts,
)
from dockyard.sagas._process_control import ProcessControl
from dockyard.sagas._process_module import (
    ProcessBackend,
    Processes,
    ProcessInstance,
    ProcessManagersModule,
)
from dockyard.sagas._process_projection import process_projection
from dockyard.sagas._process_store import ProcessRecord, ProcessStatus, ProcessStore, ProcessWriter
from dockyard.sagas._record import SagaLogEntry, SagaLogKind, SagaRecord, SagaStatus, StepAction
from dockyard.sagas._remote import remote
from dockyard.sagas._remote_step import RemoteStep
from dockyard.sagas._runner import SagaRunner
from dockyard.sagas._sagas import SagaHandle, Sagas, SagaStepContext
from dockyard.sagas._settings import ProcessSettings, SagaSettings
from dockyard.sagas._step import SagaStep
from dockyard.sagas._store import DedicatedLeaseRenewals, LeaseRenewer, SagaStore, SagaWriter

__all__ = [
    "DedicatedLeaseRenewals",
    "LeaseRenewer",
    "Process",
    "ProcessBackend",
    "ProcessControl",
    "ProcessHandler",
    "ProcessInstance",
    "ProcessManager",
    "ProcessManagersModule",
    "ProcessRecord",
    "ProcessRoute",
    "ProcessSettings",
    "ProcessStatus",
    "ProcessStore",
    "ProcessWriter",
    "Processes",
    "RemoteStep",
    "Saga",
    "SagaBackend",
    "SagaControl",
    "SagaHandle",
    "SagaLogEntry",
    "SagaLogKind",
    "SagaRecord",
    "SagaRunner",
    "SagaSettings",
    "SagaStatus",
    "SagaStep",
    "SagaStepContext",
    "SagaStore",
    "SagaWriter",
    "Sagas",
    "SagasModule",
    "Step",
    "StepAction",
    "handles",
    "on_timeout",
    "pivot",
    "process_projection",
    "remote",
    "starts",
    "step",
]

use_public_paths(__name__, __all__)
