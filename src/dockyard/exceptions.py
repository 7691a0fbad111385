"""Every error dockyard raises, from one import path: ``from dockyard.exceptions import X``.

    DockyardError
    ├── ConfigurationError                the app's code or installation cannot work as declared
    │   ├── ModuleConfigurationError      App.build found problems; lists every one of them
    │   ├── ModuleProblem                 one of those problems (in its `problems`)
    │   │   ├── NotAModuleError           (+ TypeError) something imported is not a @module
    │   │   ├── MissingProviderError      (+ LookupError) nobody provides a needed type
    │   │   ├── NotExportedError          (+ LookupError) provided elsewhere, not exported/imported
    │   │   ├── ImportCycleError          modules import each other in a loop
    │   │   ├── DuplicateProviderError    one module sees the same type from two places
    │   │   ├── InvalidExportError        a module exports what it neither provides nor imports
    │   │   ├── UnknownExtensionError     (+ TypeError) an extension implements no known hook
    │   │   ├── ScopeMismatchError        a longer-lived provider depends on a shorter-lived one
    │   │   ├── ConflictingDynamicModuleError  one module registered twice with different settings
    │   │   ├── InvalidProviderError      (+ TypeError) a provider helper got something unusable
    │   │   ├── MissingMessageTypeError   (+ TypeError) a handler names no message type
    │   │   ├── GenericMessageTypeError   (+ TypeError) a generic message dispatch cannot tell apart
    │   │   ├── MissingOutboxBackendError (+ LookupError) an outbox with a broker and no database
    │   │   ├── OutOfBandWithoutConsumerError (+ LookupError) out of band, and nobody listens
    │   │   ├── ConsumedRouteError        (+ ValueError) a route to a destination the app consumes
    │   │   ├── UnknownTransportError     (+ LookupError) a destination names an unknown transport
    │   │   │   └── UnknownRelayTransportError  relay settings for an unknown transport
    │   │   ├── DuplicateHandlerError     two handlers for one request type
    │   │   ├── AmbiguousHandlerError     (+ LookupError) a request's handled bases tie
    │   │   └── InvalidBehaviorError      (+ TypeError) a pipeline behavior that is not one
    │   ├── ContainerBuildError           Dishka refused the wiring our checks let through
    │   ├── InvalidProjectionError        (+ TypeError) a projection class cannot be registered
    │   ├── InvalidRouteError             (+ TypeError) route() got no message class or destination
    │   ├── InvalidSagaError              (+ TypeError) saga definitions that cannot run as declared
    │   ├── SagaNotRegisteredError        (+ LookupError) a saga the app's SagasModule does not have
    │   ├── ChainNotFoundError            (+ LookupError) no chain of handlers answers that request
    │   ├── EventTypeConflictError        (+ ValueError) two classes claim one event type name
    │   ├── MissingApplierError           (+ LookupError) an aggregate cannot apply an event type
    │   ├── MissingExtraError             (+ ImportError) an optional extra is not installed
    │   ├── DatabaseUrlError              (+ ValueError) a URL names another driver or database
    │   ├── ConsumerGroupConflictError    (+ ValueError) a consumer group exists with other settings
    │   ├── UnsupportedReleaseError       (+ ImportError) an integration cannot use that release
    │   ├── IntegrationNotSetUpError      (+ RuntimeError) a web app injects without a dockyard app
    │   ├── AppImportError                (+ ImportError) `dockyard worker` cannot load the app
    │   └── UnknownServiceError           (+ LookupError) `worker --only/--skip` match no service
    ├── LifecycleError                    used before it started or after it closed
    │   ├── AppNotStartedError            (+ RuntimeError) the app was used outside `async with app`
    │   ├── UnitOfWorkError               (+ RuntimeError) a unit of work used outside its life
    │   │   └── TransactionEndedError     its transaction ended by something else: commit refused
    │   └── TransportClosedError          (+ RuntimeError) a transport used after close()
    ├── MessagingError                    a message could not be dispatched
    │   ├── HandlerNotFoundError          (+ LookupError) no handler answers a request type
    │   ├── ChainExhaustedError           (+ LookupError) every link of a handler chain passed
    │   ├── CircuitOpenError              (+ RuntimeError) a circuit breaker is open: no call made
    │   └── MessageContextError           (+ LookupError) no message context here, or tracking off
    ├── CodecError                        a value could not be encoded, or stored bytes decoded
    │   ├── SerializationError            (+ TypeError) an event could not be encoded
    │   ├── UnknownEventTypeError         (+ LookupError) a stored type name has no class
    │   ├── CorruptEventError             (+ ValueError) a stored event cannot be decoded
    │   └── MissingUpcasterError          (+ LookupError) no upcaster between schema versions
    ├── StorageError                      a store refused a write or a lookup, or did not answer
    │   ├── ConcurrencyError              an append's expected version did not match the stream
    │   ├── StreamDeletedError            the stream has a tombstone
    │   ├── InvalidStreamIdError          (+ ValueError) a stream id no store can hold
    │   ├── DuplicateEventIdError         (+ ValueError) an appended event's id is already stored
    │   ├── AggregateNotFoundError        (+ LookupError) no stream for the aggregate id
    │   ├── DeadLetterNotFoundError       (+ LookupError) no dead letter with that message id
    │   └── StoreUnavailableError         (+ ConnectionError) the database did not answer
    ├── ProjectionError                   a catch-up projection cannot do that, or is stuck
    │   ├── ProjectionNotFoundError       (+ LookupError) no catch-up projection of that name
    │   ├── ProjectionStateError          (+ RuntimeError) retry/skip of a projection not parked
    │   ├── ProjectionResetError          (+ TypeError) rebuild of a projection without reset()
    │   ├── ProjectionFailedError         (+ RuntimeError) a projection is parked on a failed event
    │   └── ProjectionsTimeoutError       (+ TimeoutError) projections did not catch up in time
    ├── SagaError                         a saga instance cannot do that, or cannot go on
    │   ├── ProcessNotFoundError          (+ LookupError) no process manager instance for that key
    │   ├── ProcessStateError             (+ RuntimeError) cancel of a process instance not active
    │   ├── ProcessVersionError           (+ RuntimeError) a process instance of another version
    │   ├── SagaNotFoundError             (+ LookupError) no saga instance with that id
    │   ├── SagaStateError                (+ RuntimeError) retry/skip/cancel of a saga not parked
    │   ├── SagaAlreadyStartedError       (+ ValueError) start of an id that exists
    │   ├── SagaVersionError              (+ RuntimeError) an instance the definition cannot run
    │   └── StepTimeoutError              (+ TimeoutError) a step attempt ran past its timeout
    └── DeliveryError                     a message not accepted by a broker, or not handleable
        ├── BrokerPublishError            (+ ConnectionError) a broker refused a message
        ├── BatchPublishError             (+ ConnectionError) some messages of a batch refused
        ├── TransportUnavailableError     (+ ConnectionError) a broker could not be reached
        └── MessageRejectedError          (+ ValueError) a received message cannot be handled

Catch a category to handle a whole area (``except StorageError``), a leaf for one case, or the
builtin a leaf also derives from (``except LookupError``). Each error stores its fields, passes
them as its ``args`` and renders its message in ``__str__``: what went wrong, where, and how to
fix it. Every error pickles (workers and test runners send errors across processes).
``docs/errors.md`` lists every message; tests pin them, and hold this tree to the classes.

The classes are defined in ``dockyard._errors``, one module per category; this module is their
public home (their ``__module__``), so tracebacks and pickles name ``dockyard.exceptions``.
"""

from dockyard._errors.base import DockyardError
from dockyard._errors.codec import (
    CodecError,
    CorruptEventError,
    MissingUpcasterError,
    SerializationError,
    UnknownEventTypeError,
)
from dockyard._errors.configuration import (
    AppImportError,
    ChainNotFoundError,
    ConfigurationError,
    ConsumerGroupConflictError,
    ContainerBuildError,
    DatabaseUrlError,
    EventTypeConflictError,
    IntegrationNotSetUpError,
    InvalidProjectionError,
    InvalidRouteError,
    InvalidSagaError,
    MissingApplierError,
    MissingExtraError,
    SagaNotRegisteredError,
    UnknownServiceError,
    UnsupportedReleaseError,
)
from dockyard._errors.delivery import (
    BatchPublishError,
    BrokerPublishError,
    DeliveryError,
    MessageRejectedError,
    TransportUnavailableError,
)
from dockyard._errors.lifecycle import (
    AppNotStartedError,
    LifecycleError,
    TransactionEndedError,
    TransportClosedError,
    UnitOfWorkError,
)
from dockyard._errors.messaging import (
    ChainExhaustedError,
    CircuitOpenError,
    HandlerNotFoundError,
    MessageContextError,
    MessagingError,
)
from dockyard._errors.modules import (
    AmbiguousHandlerError,
    ConflictingDynamicModuleError,
    ConsumedRouteError,
    DuplicateHandlerError,
    DuplicateProviderError,
    GenericMessageTypeError,
    ImportCycleError,
    InvalidBehaviorError,
    InvalidExportError,
    InvalidProviderError,
    MissingMessageTypeError,
    MissingOutboxBackendError,
    MissingProviderError,
    ModuleConfigurationError,
    ModuleProblem,
    NotAModuleError,
    NotExportedError,
    OutOfBandWithoutConsumerError,
    ScopeMismatchError,
    UnknownExtensionError,
    UnknownRelayTransportError,
    UnknownTransportError,
)
from dockyard._errors.projections import (
    ProjectionError,
    ProjectionFailedError,
    ProjectionNotFoundError,
    ProjectionResetError,
    ProjectionStateError,
    ProjectionsTimeoutError,
)
from dockyard._errors.sagas import (
    ProcessNotFoundError,
    ProcessStateError,
    ProcessVersionError,
    SagaAlreadyStartedError,
    SagaError,
    SagaNotFoundError,
    SagaStateError,
    SagaVersionError,
    StepTimeoutError,
)
from dockyard._errors.storage import (
    AggregateNotFoundError,
    ConcurrencyError,
    DeadLetterNotFoundError,
    DuplicateEventIdError,
    InvalidStreamIdError,
    StorageError,
    StoreUnavailableError,
    StreamDeletedError,
)

__all__ = [
    "AggregateNotFoundError",
    "AmbiguousHandlerError",
    "AppImportError",
    "AppNotStartedError",
    "BatchPublishError",
    "BrokerPublishError",
    "ChainExhaustedError",
    "ChainNotFoundError",
    "CircuitOpenError",
    "CodecError",
    "ConcurrencyError",
    "ConfigurationError",
    "ConflictingDynamicModuleError",
    "ConsumedRouteError",
    "ConsumerGroupConflictError",
    "ContainerBuildError",
    "CorruptEventError",
    "DatabaseUrlError",
    "DeadLetterNotFoundError",
    "DeliveryError",
    "DockyardError",
    "DuplicateEventIdError",
    "DuplicateHandlerError",
    "DuplicateProviderError",
    "EventTypeConflictError",
    "GenericMessageTypeError",
    "HandlerNotFoundError",
    "ImportCycleError",
    "IntegrationNotSetUpError",
    "InvalidBehaviorError",
    "InvalidExportError",
    "InvalidProjectionError",
    "InvalidProviderError",
    "InvalidRouteError",
    "InvalidSagaError",
    "InvalidStreamIdError",
    "LifecycleError",
    "MessageContextError",
    "MessageRejectedError",
    "MessagingError",
    "MissingApplierError",
    "MissingExtraError",
    "MissingMessageTypeError",
    "MissingOutboxBackendError",
    "MissingProviderError",
    "MissingUpcasterError",
    "ModuleConfigurationError",
    "ModuleProblem",
    "NotAModuleError",
    "NotExportedError",
    "OutOfBandWithoutConsumerError",
    "ProcessNotFoundError",
    "ProcessStateError",
    "ProcessVersionError",
    "ProjectionError",
    "ProjectionFailedError",
    "ProjectionNotFoundError",
    "ProjectionResetError",
    "ProjectionStateError",
    "ProjectionsTimeoutError",
    "SagaAlreadyStartedError",
    "SagaError",
    "SagaNotFoundError",
    "SagaNotRegisteredError",
    "SagaStateError",
    "SagaVersionError",
    "ScopeMismatchError",
    "SerializationError",
    "StepTimeoutError",
    "StorageError",
    "StoreUnavailableError",
    "StreamDeletedError",
    "TransactionEndedError",
    "TransportClosedError",
    "TransportUnavailableError",
    "UnitOfWorkError",
    "UnknownEventTypeError",
    "UnknownExtensionError",
    "UnknownRelayTransportError",
    "UnknownServiceError",
    "UnknownTransportError",
    "UnsupportedReleaseError",
]


def _make_public() -> None:
    # Tracebacks, class reprs and pickles name a class by its `__module__`: make it this one.
    namespace = globals()
    for name in __all__:
        namespace[name].__module__ = __name__


_make_public()
