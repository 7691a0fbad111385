"""Every public error survives a process boundary, and names its public path.

Workers and test runners send errors between processes, so each error must pickle and come
back with the same type, message and fields. The table below has an entry for every public
error class; a new error without one fails ``test_every_public_error_has_a_sample``.
"""

from __future__ import annotations

import importlib
import pickle
import pkgutil
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from uuid import UUID

import pytest

import dockyard
from dockyard import exceptions
from dockyard.exceptions import (
    AggregateNotFoundError,
    AmbiguousHandlerError,
    AppImportError,
    AppNotStartedError,
    BatchPublishError,
    BrokerPublishError,
    ChainExhaustedError,
    ChainNotFoundError,
    CircuitOpenError,
    CodecError,
    ConcurrencyError,
    ConfigurationError,
    ConflictingDynamicModuleError,
    ConsumedRouteError,
    ConsumerGroupConflictError,
    ContainerBuildError,
    CorruptEventError,
    DatabaseUrlError,
    DeadLetterNotFoundError,
    DeliveryError,
    DockyardError,
    DuplicateEventIdError,
    DuplicateHandlerError,
    DuplicateProviderError,
    EventTypeConflictError,
    GenericMessageTypeError,
    HandlerNotFoundError,
    ImportCycleError,
    IntegrationNotSetUpError,
    InvalidBehaviorError,
    InvalidExportError,
    InvalidProjectionError,
    InvalidProviderError,
    InvalidRouteError,
    InvalidSagaError,
    InvalidStreamIdError,
    LifecycleError,
    MessageContextError,
    MessageRejectedError,
    MessagingError,
    MissingApplierError,
    MissingExtraError,
    MissingMessageTypeError,
    MissingOutboxBackendError,
    MissingProviderError,
    MissingUpcasterError,
    ModuleConfigurationError,
    ModuleProblem,
    NotAModuleError,
    NotExportedError,
    OutOfBandWithoutConsumerError,
    ProcessNotFoundError,
    ProcessStateError,
    ProcessVersionError,
    ProjectionError,
    ProjectionFailedError,
    ProjectionNotFoundError,
    ProjectionResetError,
    ProjectionStateError,
    ProjectionsTimeoutError,
    SagaAlreadyStartedError,
    SagaError,
    SagaNotFoundError,
    SagaNotRegisteredError,
    SagaStateError,
    SagaVersionError,
    ScopeMismatchError,
    SerializationError,
    StepTimeoutError,
    StorageError,
    StoreUnavailableError,
    StreamDeletedError,
    TransactionEndedError,
    TransportClosedError,
    TransportUnavailableError,
    UnitOfWorkError,
    UnknownEventTypeError,
    UnknownExtensionError,
    UnknownRelayTransportError,
    UnknownServiceError,
    UnknownTransportError,
    UnsupportedReleaseError,
)
from dockyard.integrations import RuleViolation
from dockyard.testing import InjectedStepError, SpecFailedError


# Module-level, so they pickle by reference like an app's own classes.
class Billing:
    pass


class InvoiceRepository:
    pass


class PlaceOrder:
    pass


class Order:
    pass


class OrderPlaced:
    pass


@dataclass(frozen=True)
class Auditing:  # an extension instance: equal copies, a repr without an address
    log: str = "audit"


def make_invoice() -> InvoiceRepository:
    return InvoiceRepository()


_NOT_EXPORTED = NotExportedError(
    "Billing", InvoiceRepository, "`InvoiceService`", "Sales", imported=True, exported=False
)
_MISSING = MissingProviderError("Billing", InvoiceRepository, "`InvoiceService`")

SAMPLES: dict[type[BaseException], list[BaseException]] = {
    # the categories: raised by no one, but constructible like any exception
    DockyardError: [DockyardError("something went wrong")],
    ConfigurationError: [ConfigurationError("bad wiring")],
    ModuleProblem: [ModuleProblem("one problem")],
    LifecycleError: [LifecycleError()],
    MessagingError: [MessagingError("no route", 3)],
    CodecError: [CodecError("bad bytes")],
    StorageError: [StorageError("disk full")],
    ProjectionError: [ProjectionError("stuck")],
    SagaError: [SagaError("stuck")],
    DeliveryError: [DeliveryError("lost")],
    # configuration: modules
    NotAModuleError: [NotAModuleError(Billing, "Root"), NotAModuleError(Billing, None)],
    MissingProviderError: [_MISSING],
    NotExportedError: [
        _NOT_EXPORTED,
        NotExportedError("B", InvoiceRepository, "x", "S", imported=False, exported=True),
        NotExportedError("B", list[InvoiceRepository], "x", "S", imported=False, exported=False),
    ],
    ImportCycleError: [ImportCycleError(["A", "C", "B", "A"])],
    DuplicateProviderError: [DuplicateProviderError("Billing", Order, ["Sales", "Legacy"])],
    InvalidExportError: [InvalidExportError("Empty", InvoiceRepository)],
    UnknownExtensionError: [
        UnknownExtensionError("Billing", Auditing(), ["OnModuleInit", "OnAppInit"])
    ],
    ScopeMismatchError: [
        ScopeMismatchError("Caching", Order, "singleton", Billing, "Database", "scoped")
    ],
    ConflictingDynamicModuleError: [ConflictingDynamicModuleError("Database")],
    InvalidProviderError: [
        InvalidProviderError("Root", make_invoice, "it has no return annotation"),
        InvalidProviderError(None, 42, "it is not callable"),
    ],
    MissingMessageTypeError: [
        MissingMessageTypeError("Root", Billing, "RequestHandler"),
        MissingMessageTypeError("Root", Billing, None),
    ],
    GenericMessageTypeError: [
        GenericMessageTypeError("Root", Billing, PlaceOrder, "no field of `PlaceOrder` is typed")
    ],
    MissingOutboxBackendError: [MissingOutboxBackendError("RabbitTransport")],
    OutOfBandWithoutConsumerError: [OutOfBandWithoutConsumerError("Root", Billing, "emails")],
    ConsumedRouteError: [
        ConsumedRouteError("Root", PlaceOrder, "orders", "consumer:orders:billing")
    ],
    UnknownTransportError: [UnknownTransportError("Route[OrderPlaced]", "kafka://x", ["rabbit"])],
    UnknownRelayTransportError: [UnknownRelayTransportError("kafka", ["rabbit", "nats"])],
    AmbiguousHandlerError: [
        AmbiguousHandlerError(PlaceOrder, [(Order, "`ShipHandler`"), (Billing, "`Bill`")])
    ],
    DuplicateHandlerError: [
        DuplicateHandlerError(PlaceOrder, [("ShipHandler", "Warehouse"), ("ShipAgain", "Root")])
    ],
    InvalidBehaviorError: [InvalidBehaviorError(42, "handler_behaviors[RenameHandler]")],
    ModuleConfigurationError: [ModuleConfigurationError([_MISSING, _NOT_EXPORTED])],
    # configuration: the rest
    ContainerBuildError: [ContainerBuildError("cannot find factory for Order")],
    InvalidProjectionError: [
        InvalidProjectionError(Order, "has no @handles method", "mark one with @handles")
    ],
    InvalidRouteError: [InvalidRouteError(OrderPlaced, "the destination '  ' is empty")],
    InvalidSagaError: [
        InvalidSagaError(["Saga `checkout` has no steps", "two sagas are named `checkout`"])
    ],
    SagaNotRegisteredError: [SagaNotRegisteredError("checkout", ["trip"])],
    ChainNotFoundError: [ChainNotFoundError("GetPrise", ["GetPrice"]), ChainNotFoundError("X", [])],
    EventTypeConflictError: [EventTypeConflictError("OrderPlaced", OrderPlaced, Order)],
    MissingApplierError: [MissingApplierError(Order, OrderPlaced)],
    MissingExtraError: [MissingExtraError("dockyard.transport.rabbit", "faststream", "rabbit")],
    DatabaseUrlError: [
        DatabaseUrlError("postgresql+psycopg2", "postgresql+asyncpg"),
        DatabaseUrlError("mysql"),
    ],
    ConsumerGroupConflictError: [
        ConsumerGroupConflictError(
            "nats",
            "orders",
            "billing",
            "ack_wait=30s, max_ack_pending=1",
            "ack_wait=60s, max_ack_pending=1",
            "delete the consumer (`nats consumer rm orders billing`)",
        )
    ],
    UnsupportedReleaseError: [
        UnsupportedReleaseError(
            "dockyard.integrations.faststream", "faststream", "0.8.0", ">=0.6,<0.8", "rabbit"
        )
    ],
    AppImportError: [AppImportError("shop.app:ap", "`shop.app` has no `ap`")],
    UnknownServiceError: [
        UnknownServiceError(["relay:nats"], ["outbox-relay", "outbox-relay:nats"]),
        UnknownServiceError([], ["outbox-relay"]),
    ],
    IntegrationNotSetUpError: [
        IntegrationNotSetUpError(
            "FastAPI",
            "`FromDockyard[ISender]` of endpoint `place`",
            "setup_dockyard(web, app)",
            "dockyard.integrations.fastapi",
        )
    ],
    # lifecycle
    AppNotStartedError: [AppNotStartedError("open a scope")],
    UnitOfWorkError: [UnitOfWorkError("begin", "has already begun")],
    TransactionEndedError: [TransactionEndedError("commit the unit of work")],
    TransportClosedError: [TransportClosedError("in-memory")],
    # messaging
    HandlerNotFoundError: [
        HandlerNotFoundError(PlaceOrder, "send", ["PlaceOrders", "CancelOrder"]),
        HandlerNotFoundError(PlaceOrder, "send", [], handled_by="a stream handler"),
        HandlerNotFoundError(
            PlaceOrder,
            "send",
            [],
            declared_elsewhere=["`PlaceOrderHandler` in module `OrdersModule` (shop.orders)"],
        ),
    ],
    ChainExhaustedError: [ChainExhaustedError(PlaceOrder, ["CardPayment", "WalletPayment"])],
    CircuitOpenError: [CircuitOpenError("payments", 5, 12.5)],
    MessageContextError: [MessageContextError(tracking=True), MessageContextError(tracking=False)],
    # codec
    SerializationError: [
        SerializationError("Measured", "field `x` is inf"),
        SerializationError("Measured", "field `x` is inf", "Probe-1", 1),
    ],
    UnknownEventTypeError: [
        UnknownEventTypeError("Refunded"),
        UnknownEventTypeError("Refunded", "Order-1", 3, 17),
    ],
    CorruptEventError: [CorruptEventError("OrderPlaced", "expected `int`", "Order-1", 2, 9)],
    MissingUpcasterError: [
        MissingUpcasterError("OrderPlaced", 1, 3, "Order-1", 2, 9),
        MissingUpcasterError("OrderPlaced", 4, 3),
    ],
    # storage
    ConcurrencyError: [ConcurrencyError("Order-1", 3, 4), ConcurrencyError("Order-1", "ANY", 0)],
    StreamDeletedError: [StreamDeletedError("Order-1", 5, "append to")],
    InvalidStreamIdError: [
        InvalidStreamIdError("x" * 300, "it is too long"),
        InvalidStreamIdError(4, "no"),
    ],
    DuplicateEventIdError: [
        DuplicateEventIdError(UUID(int=7), "Order-2"),
        DuplicateEventIdError(UUID(int=7), "Order-2", within_append=True),
    ],
    AggregateNotFoundError: [AggregateNotFoundError("Order", "o-1", "Order-o-1")],
    DeadLetterNotFoundError: [DeadLetterNotFoundError(["m-1", "m-2"])],
    StoreUnavailableError: [StoreUnavailableError("append", "connection refused")],
    # projections
    ProjectionNotFoundError: [ProjectionNotFoundError("Balance", ["Balances", "Audit"])],
    ProjectionStateError: [ProjectionStateError("Balances", "retry")],
    ProjectionResetError: [ProjectionResetError("account-names", Order)],
    ProjectionFailedError: [
        ProjectionFailedError("Balances", 3, "RuntimeError: cannot apply 3", 3),
        ProjectionFailedError("Balances", 3, "CorruptEventError: …", 0),
    ],
    ProjectionsTimeoutError: [ProjectionsTimeoutError(0.1, [("Balances", 0, 1)])],
    # sagas
    SagaNotFoundError: [SagaNotFoundError("order-1")],
    ProcessNotFoundError: [
        ProcessNotFoundError("fulfilment", "o-1", "PaymentReceived"),
        ProcessNotFoundError("fulfilment", "o-1"),
    ],
    ProcessStateError: [ProcessStateError("fulfilment", "o-1", "completed", "cancel")],
    ProcessVersionError: [ProcessVersionError("fulfilment", "o-1", 1, 2, "PaymentReceived")],
    SagaStateError: [
        SagaStateError("order-1", "running", "retry"),
        SagaStateError("order-1", "failed", "skip", "it is parked at step `x`"),
    ],
    SagaAlreadyStartedError: [SagaAlreadyStartedError("order-1", "checkout")],
    SagaVersionError: [
        SagaVersionError("order-1", "checkout", 1, 2),
        SagaVersionError("order-1", "checkout", 1, 1, "charge"),
    ],
    StepTimeoutError: [StepTimeoutError("order-1", "charge", 2.5)],
    # delivery
    BrokerPublishError: [BrokerPublishError("rabbit", "orders", "no queue would store it")],
    BatchPublishError: [
        BatchPublishError("rabbit", {"m1": ValueError("refused 1"), "m2": TimeoutError()}),
        BatchPublishError("rabbit", {"m1": _MISSING}, held_back=["m3", "m4"]),
    ],
    TransportUnavailableError: [TransportUnavailableError("nats", "the connection is down")],
    MessageRejectedError: [MessageRejectedError("m-1", "payments", "it has no type header")],
    # errors exported beside their feature
    SpecFailedError: [SpecFailedError("expected events [] (no events)\n     but got [1]")],
    InjectedStepError: [InjectedStepError("step `charge` failed (the saga harness made it fail)")],
    RuleViolation: [RuleViolation("Tell me who to greet.")],
}


def _public_modules() -> Iterator[ModuleType]:
    yield dockyard
    for info in pkgutil.walk_packages(dockyard.__path__, "dockyard."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        try:
            yield importlib.import_module(info.name)
        except ImportError:  # an optional extra that is not installed: its errors are elsewhere
            continue


def _public_errors() -> set[type[BaseException]]:
    return {
        found
        for module in _public_modules()
        for name in getattr(module, "__all__", ())
        if isinstance(found := getattr(module, name), type) and issubclass(found, BaseException)
    }


def _every_subclass(cls: type[BaseException]) -> Iterator[type[BaseException]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _every_subclass(sub)


def test_every_public_error_has_a_sample() -> None:
    public = _public_errors()
    assert {e.__name__ for e in public - SAMPLES.keys()} == set(), "add them to SAMPLES"
    assert {e.__name__ for e in SAMPLES.keys() - public} == set(), "no longer public"
    for cls, samples in SAMPLES.items():
        assert samples, cls
        assert all(type(sample) is cls for sample in samples), cls


def test_every_dockyard_error_is_public_in_dockyard_exceptions() -> None:
    _public_errors()  # imports every public module, so every error class is defined
    defined = {
        cls for cls in _every_subclass(DockyardError) if cls.__module__.startswith("dockyard")
    }
    exported = {getattr(exceptions, name) for name in exceptions.__all__}
    assert {c.__name__ for c in defined | {DockyardError}} == {c.__name__ for c in exported}
    assert _public_errors() & {*defined, DockyardError} == exported


def _same(left: object, right: object) -> bool:
    """Equal, reading exceptions (which compare by identity) as their type, args and fields."""
    if isinstance(left, BaseException):
        return (
            type(left) is type(right)
            and str(left) == str(right)
            and _same(left.args, right.args)
            and _same(vars(left), vars(right))
        )
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_same(left[k], right[k]) for k in left)
    if isinstance(left, tuple | list) and isinstance(right, tuple | list):
        return (
            type(left) is type(right)
            and len(left) == len(right)
            and all(_same(a, b) for a, b in zip(left, right, strict=True))
        )
    return left == right


SAMPLE_CASES = [
    pytest.param(sample, id=f"{cls.__name__}-{i}")
    for cls, samples in SAMPLES.items()
    for i, sample in enumerate(samples)
]


@pytest.mark.parametrize("error", SAMPLE_CASES)
def test_an_error_pickles_to_the_same_type_message_and_fields(error: BaseException) -> None:
    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert repr(copy) == repr(error)
    assert _same(vars(copy), vars(error))
    assert _same(copy.args, error.args)


@pytest.mark.parametrize("error", SAMPLE_CASES)
def test_an_errors_args_are_its_fields(error: BaseException) -> None:
    # `repr` shows what the error is about; a rendered message would hide the fields in text
    if vars(error):
        assert error.args, type(error).__name__
        assert str(error) not in error.args


@pytest.mark.parametrize("name", exceptions.__all__)
def test_a_public_error_names_its_public_path(name: str) -> None:
    cls = getattr(exceptions, name)
    error = SAMPLES[cls][0]

    assert cls.__module__ == "dockyard.exceptions"
    assert repr(cls) == f"<class 'dockyard.exceptions.{name}'>"
    assert traceback.format_exception_only(error)[0].startswith(f"dockyard.exceptions.{name}")
    assert f"dockyard.exceptions\n{name}".encode() in pickle.dumps(error, protocol=2)


def test_a_broken_connection_is_not_mistaken_for_an_os_error_number() -> None:
    # OSError reads two positional args as (errno, strerror); dockyard's fields are not those
    error = StoreUnavailableError("append", "connection refused")

    assert error.errno is None
    assert error.strerror is None
    assert isinstance(error, ConnectionError)
    assert pickle.loads(pickle.dumps(error)).errno is None
