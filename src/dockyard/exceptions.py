"""Every error dockyard raises.

    DockyardError
    ├── ModuleConfigurationError          one build found problems; lists every one of them
    │   (each problem below is also a ModuleProblem, so tests can match on its type)
    ├── ModuleProblem
    │   ├── NotAModuleError               (+ TypeError) something imported is not a @module
    │   ├── MissingProviderError          (+ LookupError) nobody provides a needed type
    │   ├── NotExportedError              (+ LookupError) provided elsewhere, not exported/imported
    │   ├── ImportCycleError              modules import each other in a loop
    │   ├── DuplicateProviderError        one module sees the same type from two places
    │   ├── InvalidExportError            a module exports what it neither provides nor imports
    │   ├── UnknownExtensionError         (+ TypeError) an extension implements no known hook
    │   ├── ScopeMismatchError            a longer-lived provider depends on a shorter-lived one
    │   ├── ConflictingDynamicModuleError one module registered twice with different settings
    │   ├── MissingMessageTypeError       (+ TypeError) a handler names no message type
    │   ├── DuplicateHandlerError         two handlers for one request type
    │   ├── InvalidBehaviorError          (+ TypeError) a pipeline behavior that is not one
    │   └── InvalidProviderError          (+ TypeError) a provider helper got something unusable
    ├── ContainerBuildError               Dishka refused the wiring our checks let through
    ├── ConcurrencyError                  an append's expected version did not match the stream
    ├── StreamDeletedError                the stream has a tombstone
    ├── SerializationError                (+ TypeError) an event could not be encoded
    ├── UnknownEventTypeError             (+ LookupError) a stored type name has no class
    ├── CorruptEventError                 (+ ValueError) a stored event cannot be decoded
    ├── MissingUpcasterError              (+ LookupError) no upcaster between schema versions
    ├── EventTypeConflictError            (+ ValueError) two classes claim one event type name
    ├── InvalidStreamIdError              (+ ValueError) a stream id no store can hold
    ├── DuplicateEventIdError             (+ ValueError) an appended event's id is already stored
    ├── StoreUnavailableError             (+ ConnectionError) the database did not answer
    ├── UnitOfWorkError                   (+ RuntimeError) a unit of work used outside its life
    ├── AggregateNotFoundError            (+ LookupError) no stream for the aggregate id
    ├── MissingApplierError               (+ LookupError) an aggregate cannot apply an event type
    ├── HandlerNotFoundError              (+ LookupError) no handler answers a request type
    ├── ChainExhaustedError               (+ LookupError) every link of a handler chain passed
    ├── MessageContextError               (+ LookupError) no message context here, or tracking off
    ├── AppNotStartedError                (+ RuntimeError) the app was used outside `async with app`
    ├── InvalidProjectionError            (+ TypeError) a projection class cannot be registered
    ├── ProjectionNotFoundError           (+ LookupError) no catch-up projection of that name
    ├── ProjectionStateError              (+ RuntimeError) retry/skip of a projection not parked
    ├── ProjectionResetError              (+ TypeError) rebuild of a projection without reset()
    ├── ProjectionFailedError             (+ RuntimeError) a projection is parked on a failed event
    ├── ProjectionsTimeoutError           (+ TimeoutError) projections did not catch up in time
    ├── InvalidRouteError                 (+ TypeError) route() got no message class or destination
    ├── TransportClosedError              (+ RuntimeError) a transport used after close()
    ├── DeadLetterNotFoundError           (+ LookupError) no dead letter with that message id
    ├── MissingExtraError                 (+ ImportError) an optional extra is not installed
    ├── AppImportError                    (+ ImportError) `dockyard worker` cannot load the app
    ├── BrokerPublishError                (+ ConnectionError) a broker refused a message
    ├── TransportUnavailableError         (+ ConnectionError) a broker could not be reached
    ├── BatchPublishError                 (+ ConnectionError) some messages of a batch refused
    └── MessageRejectedError              (+ ValueError) a received message cannot be handled

Each error stores its fields and renders its message in ``__str__``: what went wrong, where,
and how to fix it. ``docs/errors.md`` lists every message; tests pin them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = [
    "AggregateNotFoundError",
    "AppImportError",
    "AppNotStartedError",
    "BatchPublishError",
    "BrokerPublishError",
    "ChainExhaustedError",
    "ConcurrencyError",
    "ConflictingDynamicModuleError",
    "ContainerBuildError",
    "CorruptEventError",
    "DeadLetterNotFoundError",
    "DockyardError",
    "DuplicateEventIdError",
    "DuplicateHandlerError",
    "DuplicateProviderError",
    "EventTypeConflictError",
    "HandlerNotFoundError",
    "ImportCycleError",
    "InvalidBehaviorError",
    "InvalidExportError",
    "InvalidProjectionError",
    "InvalidProviderError",
    "InvalidRouteError",
    "InvalidStreamIdError",
    "MessageContextError",
    "MessageRejectedError",
    "MissingApplierError",
    "MissingExtraError",
    "MissingMessageTypeError",
    "MissingProviderError",
    "MissingUpcasterError",
    "ModuleConfigurationError",
    "ModuleProblem",
    "NotAModuleError",
    "NotExportedError",
    "ProjectionFailedError",
    "ProjectionNotFoundError",
    "ProjectionResetError",
    "ProjectionStateError",
    "ProjectionsTimeoutError",
    "ScopeMismatchError",
    "SerializationError",
    "StoreUnavailableError",
    "StreamDeletedError",
    "TransportClosedError",
    "TransportUnavailableError",
    "UnitOfWorkError",
    "UnknownEventTypeError",
    "UnknownExtensionError",
]


def _readable(qualname: str) -> str:
    # `make_app.<locals>.Billing` reads as `Billing`: the enclosing function is noise.
    return qualname.rsplit("<locals>.", 1)[-1]


def type_name(tp: object) -> str:
    """A short, readable name for a type or type hint (``Repository[Order]``, ``Sequence[int]``)."""
    if isinstance(tp, type) and not getattr(tp, "__args__", None):
        return _readable(tp.__qualname__)
    if callable(tp) and hasattr(tp, "__qualname__") and not hasattr(tp, "__origin__"):
        return _readable(str(tp.__qualname__))  # a factory function
    text = repr(tp)
    for prefix in ("typing.", "collections.abc."):
        text = text.replace(prefix, "")
    origin = getattr(tp, "__origin__", None)
    args = getattr(tp, "__args__", None)
    if origin is not None and args:
        return f"{type_name(origin)}[{', '.join(type_name(a) for a in args)}]"
    return text


class DockyardError(Exception):
    """The root of every error dockyard raises."""


# ----------------------------------------------------------------------------- module system


class ModuleProblem(DockyardError):  # noqa: N818 - reported inside ModuleConfigurationError
    """One problem found while building an app from its modules."""


class NotAModuleError(ModuleProblem, TypeError):
    def __init__(self, obj: object, referenced_by: str | None) -> None:
        self.obj = obj
        self.referenced_by = referenced_by
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"Module `{self.referenced_by}` imports" if self.referenced_by else "App.build got"
        return (
            f"{where} `{type_name(self.obj)}`, which is not a module. "
            "Hint: decorate it with `@module(...)`, or pass a `DynamicModule`."
        )


class MissingProviderError(ModuleProblem, LookupError):
    def __init__(self, module: str, dependency: object, required_by: str) -> None:
        self.module = module
        self.dependency = dependency
        self.required_by = required_by
        super().__init__(str(self))

    def __str__(self) -> str:
        dep = type_name(self.dependency)
        return (
            f"Module `{self.module}` needs `{dep}` (for {self.required_by}), "
            "but no module provides it. "
            f"Hint: add a provider for `{dep}` to `{self.module}`, or import a module "
            "that provides and exports it."
        )


class NotExportedError(ModuleProblem, LookupError):
    def __init__(
        self,
        module: str,
        dependency: object,
        required_by: str,
        provider_module: str,
        *,
        imported: bool,
        exported: bool,
    ) -> None:
        self.module = module
        self.dependency = dependency
        self.required_by = required_by
        self.provider_module = provider_module
        self.imported = imported
        self.exported = exported
        super().__init__(str(self))

    def __str__(self) -> str:
        dep = type_name(self.dependency)
        head = (
            f"Module `{self.module}` needs `{dep}` (for {self.required_by}), "
            f"provided by `{self.provider_module}`, "
        )
        if self.imported:
            return head + (
                "which does not export it. "
                f"Hint: add `{dep}` to `{self.provider_module}` exports, "
                "or import a module that does."
            )
        if self.exported:
            return head + (
                f"which `{self.module}` does not import. "
                f"Hint: add `{self.provider_module}` to `{self.module}` imports."
            )
        return head + (
            f"which `{self.module}` does not import and which does not export it. "
            f"Hint: add `{dep}` to `{self.provider_module}` exports and "
            f"`{self.provider_module}` to `{self.module}` imports."
        )


class ImportCycleError(ModuleProblem):
    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = tuple(cycle)
        super().__init__(str(self))

    def __str__(self) -> str:
        drawn = " → ".join(f"`{name}`" for name in self.cycle)
        return (
            f"Modules import each other in a cycle: {drawn}. "
            "Hint: move what they share into a module that both import, "
            "or let one side talk to the other through events."
        )


class DuplicateProviderError(ModuleProblem):
    def __init__(self, module: str, dependency: object, sources: Sequence[str]) -> None:
        self.module = module
        self.dependency = dependency
        self.sources = tuple(sources)
        super().__init__(str(self))

    def __str__(self) -> str:
        dep = type_name(self.dependency)
        names = " and ".join(f"`{s}`" for s in self.sources)
        return (
            f"Module `{self.module}` sees `{dep}` from {names}; a type must have one provider. "
            f"Hint: keep one provider of `{dep}` visible to `{self.module}`: remove the others, "
            "stop exporting them, or use `many(...)` for a collection."
        )


class InvalidExportError(ModuleProblem):
    def __init__(self, module: str, export: object) -> None:
        self.module = module
        self.export = export
        super().__init__(str(self))

    def __str__(self) -> str:
        exp = type_name(self.export)
        return (
            f"Module `{self.module}` exports `{exp}`, which it neither provides nor imports. "
            f"Hint: add a provider for `{exp}` to `{self.module}`, import the module that "
            "exports it, or remove it from exports."
        )


class UnknownExtensionError(ModuleProblem, TypeError):
    def __init__(self, module: str, extension: object, known_hooks: Sequence[str]) -> None:
        self.module = module
        self.extension = extension
        self.known_hooks = tuple(known_hooks)
        super().__init__(str(self))

    def __str__(self) -> str:
        hooks = ", ".join(f"`{h}`" for h in self.known_hooks)
        return (
            f"Extension `{type_name(type(self.extension))}` in module `{self.module}` "
            f"implements no known hook. Hint: subclass one of {hooks}."
        )


class ScopeMismatchError(ModuleProblem):
    def __init__(
        self,
        module: str,
        provided: object,
        lifetime: str,
        dependency: object,
        dependency_module: str,
        dependency_lifetime: str,
    ) -> None:
        self.module = module
        self.provided = provided
        self.lifetime = lifetime
        self.dependency = dependency
        self.dependency_module = dependency_module
        self.dependency_lifetime = dependency_lifetime
        super().__init__(str(self))

    def __str__(self) -> str:
        prov, dep = type_name(self.provided), type_name(self.dependency)
        return (
            f"{self.lifetime.capitalize()} `{prov}` in module `{self.module}` depends on "
            f"{self.dependency_lifetime} `{dep}` from module `{self.dependency_module}`: "
            "a longer-lived object cannot hold a shorter-lived one. "
            f"Hint: make `{prov}` {self.dependency_lifetime}, or make `{dep}` {self.lifetime}."
        )


class ConflictingDynamicModuleError(ModuleProblem):
    def __init__(self, module: str) -> None:
        self.module = module
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"Module `{self.module}` is registered twice with different settings. "
            f"Hint: call `{self.module}.register(...)` once, in the module that owns the "
            f"settings, and import plain `{self.module}` everywhere else."
        )


class InvalidProviderError(ModuleProblem, TypeError):
    def __init__(self, module: str | None, provider: object, reason: str) -> None:
        self.module = module
        self.provider = provider
        self.reason = reason
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" in module `{self.module}`" if self.module else ""
        return f"Provider `{type_name(self.provider)}`{where} is not usable: {self.reason}"


class ModuleConfigurationError(DockyardError):
    """Raised by ``App.build`` with every problem it found, not only the first."""

    def __init__(self, problems: Sequence[ModuleProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        count = len(self.problems)
        head = f"The app's modules have {count} problem{'s' if count != 1 else ''}:"
        lines = [f"  {i}. {p}" for i, p in enumerate(self.problems, 1)]
        return "\n".join([head, *lines])


class ContainerBuildError(DockyardError):
    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            "Dishka could not build the container after dockyard's checks passed. "
            f"Dishka says: {self.detail}"
        )


class AppNotStartedError(DockyardError, RuntimeError):
    def __init__(self, action: str) -> None:
        self.action = action
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"Cannot {self.action} before the app has started. "
            "Hint: use `async with app:` (or `await app.start()`) first."
        )


# ----------------------------------------------------------------------------- event store
# (serialization, event store and unit of work errors; owned by dockyard.eventsourcing/sql)


def _event_at(stream_id: str | None, stream_version: int | None, position: int | None) -> str:
    where = []
    if stream_version is not None:
        where.append(f"version {stream_version}")
    if position is not None:
        where.append(f"global position {position}")
    at = f" at {', '.join(where)}" if where else ""
    return f" in stream `{stream_id}`{at}" if stream_id is not None else at


def _expected_text(expected: object) -> str:
    return f"version {expected}" if isinstance(expected, int) else str(expected)


class ConcurrencyError(DockyardError):
    """Another writer changed the stream since the caller read it (optimistic concurrency)."""

    def __init__(self, stream_id: str, expected: object, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(str(self))

    def __str__(self) -> str:
        actual = "does not exist" if self.actual == 0 else f"is at version {self.actual}"
        return (
            f"Stream `{self.stream_id}` was expected at {_expected_text(self.expected)} "
            f"but {actual}. Hint: reload the stream, decide again on the fresh state and "
            "retry; pass `expected_version=ANY` only if the order of writers does not matter."
        )


class StreamDeletedError(DockyardError):
    """The stream has a tombstone: it cannot be appended to or read again."""

    def __init__(self, stream_id: str, version: int, operation: str) -> None:
        self.stream_id = stream_id
        self.version = version
        self.operation = operation
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"Cannot {self.operation} stream `{self.stream_id}`: it was deleted at version "
            f"{self.version} and a deleted stream stays deleted. "
            "Hint: start a new stream under a new id."
        )


class SerializationError(DockyardError, TypeError):
    def __init__(
        self,
        event_type: str,
        detail: str,
        stream_id: str | None = None,
        stream_version: int | None = None,
    ) -> None:
        self.event_type = event_type
        self.detail = detail
        self.stream_id = stream_id
        self.stream_version = stream_version
        super().__init__(str(self))

    def __str__(self) -> str:
        where = _event_at(self.stream_id, self.stream_version, None)
        nothing = " Nothing was appended." if self.stream_id is not None else ""
        return (
            f"Cannot serialize event `{self.event_type}`{where}: {self.detail}.{nothing} "
            "Hint: events must be dataclasses, msgspec Structs, attrs classes or pydantic "
            "models whose fields the codec can encode."
        )


class UnknownEventTypeError(DockyardError, LookupError):
    def __init__(
        self,
        type_name: str,
        stream_id: str | None = None,
        stream_version: int | None = None,
        position: int | None = None,
    ) -> None:
        self.type_name = type_name
        self.stream_id = stream_id
        self.stream_version = stream_version
        self.position = position
        super().__init__(str(self))

    def __str__(self) -> str:
        where = _event_at(self.stream_id, self.stream_version, self.position)
        return (
            f"Unknown event type `{self.type_name}`{where}. Hint: register its class in the "
            f"`TypeRegistry` (declare `@event_type({self.type_name!r})` if the class is named "
            "differently), or read with `skip_unknown=True` to pass over it."
        )


class CorruptEventError(DockyardError, ValueError):
    def __init__(
        self,
        type_name: str,
        detail: str,
        stream_id: str | None = None,
        stream_version: int | None = None,
        position: int | None = None,
    ) -> None:
        self.type_name = type_name
        self.detail = detail
        self.stream_id = stream_id
        self.stream_version = stream_version
        self.position = position
        super().__init__(str(self))

    def __str__(self) -> str:
        where = _event_at(self.stream_id, self.stream_version, self.position)
        return (
            f"Stored event `{self.type_name}`{where} cannot be decoded: {self.detail}. "
            "The other events are intact. Hint: repair the row, or add an upcaster if its "
            "shape changed without a schema version bump."
        )


class MissingUpcasterError(DockyardError, LookupError):
    def __init__(
        self,
        type_name: str,
        stored_version: int,
        current_version: int,
        stream_id: str | None = None,
        stream_version: int | None = None,
        position: int | None = None,
    ) -> None:
        self.type_name = type_name
        self.stored_version = stored_version
        self.current_version = current_version
        self.stream_id = stream_id
        self.stream_version = stream_version
        self.position = position
        super().__init__(str(self))

    def __str__(self) -> str:
        where = _event_at(self.stream_id, self.stream_version, self.position)
        head = f"Event `{self.type_name}`{where} is stored at schema version {self.stored_version}"
        if self.stored_version > self.current_version:
            return (
                f"{head}, newer than this code's version {self.current_version}. "
                "Hint: deploy the code that wrote it before reading it here."
            )
        return (
            f"{head}, the code is at version {self.current_version}, and there is no upcaster "
            f"from version {self.stored_version}. Hint: register one with "
            f"`registry.upcaster({self.type_name!r}, from_version={self.stored_version})`."
        )


class EventTypeConflictError(DockyardError, ValueError):
    def __init__(self, name: str, existing: type, new: type) -> None:
        self.name = name
        self.existing = existing
        self.new = new
        super().__init__(str(self))

    def __str__(self) -> str:
        def path(cls: type) -> str:
            return f"{cls.__module__}.{cls.__qualname__}"

        return (
            f"Event type name `{self.name}` is declared by both `{path(self.existing)}` and "
            f"`{path(self.new)}`; stored events would be ambiguous. Hint: give one of them "
            'a distinct stable name with `@event_type("...")`.'
        )


class InvalidStreamIdError(DockyardError, ValueError):
    """A stream id breaks the one rule every event store applies (``check_stream_id``)."""

    def __init__(self, stream_id: object, problem: str) -> None:
        # the fields are the args, so the error pickles (crosses process boundaries)
        super().__init__(stream_id, problem)
        self.stream_id = stream_id
        self.problem = problem

    def __str__(self) -> str:
        if isinstance(self.stream_id, str):
            shown = repr(self.stream_id[:60])[1:-1] + ("…" if len(self.stream_id) > 60 else "")
            shown = f"`{shown}`"
        else:
            shown = repr(self.stream_id)
        return (
            f"Stream id {shown} cannot be stored: {self.problem}. Hint: a stream id is 1 to 255 "
            "characters of Unicode text without NUL characters or lone surrogates, the same on "
            "every store; build it with `stream_id_for(kind, id)` from a short id."
        )


class DuplicateEventIdError(DockyardError, ValueError):
    """An appended event carries an id the store already holds (ids are unique store-wide)."""

    def __init__(self, event_id: object, stream_id: str, within_append: bool = False) -> None:
        super().__init__(event_id, stream_id, within_append)
        self.event_id = event_id
        self.stream_id = stream_id
        self.within_append = within_append

    def __str__(self) -> str:
        if self.within_append:
            what = (
                f"Event id `{self.event_id}` appears twice in the append to stream "
                f"`{self.stream_id}`, so it was refused"
            )
        else:
            what = (
                f"Event id `{self.event_id}` is already stored, so the append to stream "
                f"`{self.stream_id}` was refused"
            )
        return (
            f"{what} and nothing was appended. Hint: event ids are unique across all streams; "
            "let the store make them (leave out `NewEvent(event_id=...)`), or pass "
            "`idempotency_key=` so that a retried append is a no-op."
        )


class StoreUnavailableError(DockyardError, ConnectionError):
    def __init__(self, operation: str, detail: str) -> None:
        self.operation = operation
        self.detail = detail
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"The database did not answer while trying to {self.operation}: {self.detail}. "
            "Nothing was committed. Hint: check that the database is running and reachable "
            "at the configured URL, then retry."
        )


class UnitOfWorkError(DockyardError, RuntimeError):
    def __init__(self, action: str, state: str) -> None:
        self.action = action
        self.state = state
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"Cannot {self.action}: the unit of work {self.state}. "
            "Hint: use it inside `async with database.unit_of_work() as uow:` "
            "(or the request scope that provides it)."
        )


# ----------------------------------------------------------------------------- write model


class AggregateNotFoundError(DockyardError, LookupError):
    def __init__(self, aggregate_type: str, aggregate_id: str, stream_id: str) -> None:
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id
        self.stream_id = stream_id
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"No `{self.aggregate_type}` with id `{self.aggregate_id}`: stream "
            f"`{self.stream_id}` has no events. Hint: create it with `repository.create(...)` "
            "and save it first, or use `repository.get_or_none(...)` when absence is expected."
        )


class MissingApplierError(DockyardError, LookupError):
    def __init__(self, aggregate: type, event_type: type) -> None:
        self.aggregate = aggregate
        self.event_type = event_type
        super().__init__(str(self))

    def __str__(self) -> str:
        aggregate, event = type_name(self.aggregate), type_name(self.event_type)
        return (
            f"`{aggregate}` has no method to apply `{event}`. Hint: add to `{aggregate}` a "
            f"method marked `@applies` that takes an `{event}` (it may do nothing)."
        )


# ----------------------------------------------------------------------------- messaging


def _close_names(name: str, candidates: Sequence[str]) -> list[str]:
    import difflib

    return difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)


class HandlerNotFoundError(DockyardError, LookupError):
    """``send`` or ``stream`` got a request type that no registered handler answers."""

    def __init__(
        self,
        message_type: type,
        operation: str,
        registered: Sequence[str],
        *,
        handled_by: str | None = None,
    ) -> None:
        self.message_type = message_type
        self.operation = operation
        self.registered = tuple(registered)
        self.handled_by = handled_by
        """What kind of handler the type does have (e.g. "a stream handler"), if any."""
        super().__init__(str(self))

    def __str__(self) -> str:
        name = type_name(self.message_type)
        if self.handled_by is not None:
            other = "stream" if self.operation == "send" else "send"
            return (
                f"`{self.operation}` got `{name}`, which is handled by {self.handled_by}. "
                f"Hint: use `{other}(...)` for `{name}`."
            )
        base = "StreamHandler" if self.operation == "stream" else "RequestHandler"
        text = f"No handler for `{name}` is registered."
        close = _close_names(name, self.registered)
        if close:
            text += " Did you mean " + " or ".join(f"`{c}`" for c in close) + "?"
        return text + (
            f" Hint: add a `{base}[{name}, ...]` subclass to some module's `handlers=[...]`."
        )


class ChainExhaustedError(DockyardError, LookupError):
    """Every link of a chain of responsibility passed the request on."""

    def __init__(self, message_type: type, links: Sequence[str]) -> None:
        self.message_type = message_type
        self.links = tuple(links)
        super().__init__(str(self))

    def __str__(self) -> str:
        chain = " → ".join(f"`{link}`" for link in self.links)
        return (
            f"Every handler in the chain for `{type_name(self.message_type)}` passed it on "
            f"({chain}). Hint: end the chain with a handler that always answers."
        )


class MessageContextError(DockyardError, LookupError):
    """``MessageContext`` was read where there is no message, or with tracking off."""

    def __init__(self, *, tracking: bool) -> None:
        self.tracking = tracking
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.tracking:
            return (
                "No message is being handled here, or the message being handled is of a type "
                "that is not tracked, so there is no message context. Hint: read "
                "`MessageContext` inside a handler's or a behavior's `handle`, depending on it "
                "in their constructor (that makes their message types tracked), or build with "
                "`messaging=MessagingSettings(track_context=True)`."
            )
        return (
            "Message context tracking is off: nothing in the app declared a dependency on "
            "`MessageContext` when it was built. Hint: inject `MessageContext` in a constructor, "
            "or build with `messaging=MessagingSettings(track_context=True)`."
        )


class MissingMessageTypeError(ModuleProblem, TypeError):
    """A registered handler does not say which message type it handles."""

    def __init__(self, module: str, handler: object, base: str | None) -> None:
        self.module = module
        self.handler = handler
        self.base = base
        super().__init__(str(self))

    def __str__(self) -> str:
        handler = type_name(self.handler)
        if self.base is None:
            return (
                f"`{handler}` in module `{self.module}` handlers is not a message handler. "
                "Hint: subclass `RequestHandler[Message, Result]`, `EventHandler[Event]`, "
                "`StreamHandler[Message, Item]` or `ChainHandler[Message, Result]`."
            )
        return (
            f"Handler `{handler}` in module `{self.module}` subclasses `{self.base}` without "
            "naming a message type. "
            f"Hint: name it in the base, e.g. `class {handler}({self.base}[PlaceOrder, ...])`."
        )


class DuplicateHandlerError(ModuleProblem):
    """Two handlers answer one request type; a request has exactly one."""

    def __init__(self, message_type: type, handlers: Sequence[tuple[str, str]]) -> None:
        self.message_type = message_type
        self.handlers = tuple(handlers)
        """(handler, module) pairs, in registration order."""
        super().__init__(str(self))

    def __str__(self) -> str:
        name = type_name(self.message_type)
        found = " and ".join(f"`{h}` (module `{m}`)" for h, m in self.handlers)
        return (
            f"Request `{name}` has {len(self.handlers)} handlers: {found}; a request has "
            "exactly one. Hint: remove all but one, use events for several reactions, or make "
            "them `ChainHandler`s to try them in order."
        )


class InvalidBehaviorError(ModuleProblem, TypeError):
    """Something given as a pipeline behavior is not one."""

    def __init__(self, behavior: object, where: str) -> None:
        self.behavior = behavior
        self.where = where
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"`{self.behavior!r}` in {self.where} is not a pipeline behavior. "
            "Hint: give an instance or a subclass of `PipelineBehavior`."
        )


# ----------------------------------------------------------------------------- projections
# (owned by dockyard.projections)


class InvalidProjectionError(DockyardError, TypeError):
    """A projection or subscription class cannot be registered as declared."""

    def __init__(self, projection: object, problem: str, hint: str) -> None:
        self.projection = projection
        self.problem = problem
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"Projection `{type_name(self.projection)}` {self.problem}. Hint: {self.hint}."


class ProjectionNotFoundError(DockyardError, LookupError):
    """No catch-up projection or subscription of that name is registered in the app."""

    def __init__(self, name: str, registered: Sequence[str]) -> None:
        self.name = name
        self.registered = tuple(registered)
        super().__init__(str(self))

    def __str__(self) -> str:
        known = ", ".join(f"`{n}`" for n in self.registered) or "none"
        return (
            f"No catch-up projection named `{self.name}` is registered (registered: {known}). "
            "Hint: list it in `ProjectionsModule.register(projections=[...])` or "
            "`subscriptions=[...]`; inline projections have no checkpoint to operate on."
        )


class ProjectionStateError(DockyardError, RuntimeError):
    """An operation that needs a parked (failed) projection found it healthy."""

    def __init__(self, name: str, action: str) -> None:
        self.name = name
        self.action = action
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"Cannot {self.action} projection `{self.name}`: it is not parked on a failed event. "
            "Hint: check `await control.status()` first; only a projection in state `failed` "
            "can be retried or skipped."
        )


class ProjectionResetError(DockyardError, TypeError):
    """A projection was asked to rebuild but cannot clear its read model."""

    def __init__(self, name: str, projection: object) -> None:
        self.name = name
        self.projection = projection
        super().__init__(str(self))

    def __str__(self) -> str:
        cls = type_name(self.projection)
        return (
            f"Projection `{self.name}` cannot be rebuilt: `{cls}` has no `reset()` to clear its "
            f"read model, so replaying from position 0 would apply every event twice. "
            f"Hint: override `async def reset(self) -> None` in `{cls}` to delete its rows."
        )


class ProjectionFailedError(DockyardError, RuntimeError):
    """A projection is parked on an event its handler kept failing on (``attempts`` times), or
    on one it could not read (``attempts == 0``)."""

    def __init__(self, name: str, position: int, error: str, attempts: int) -> None:
        self.name = name
        self.position = position
        self.error = error
        self.attempts = attempts
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.attempts == 0:  # it never reached the handler
            return (
                f"Projection `{self.name}` is parked at global position {self.position}: its "
                f"event cannot be read: {self.error} Hint: make it readable (register its type, "
                "add an upcaster, deploy the code that wrote it, or repair the row), then "
                f"`await control.retry({self.name!r})`, or `await control.skip({self.name!r})` "
                "to move past that one event."
            )
        return (
            f"Projection `{self.name}` is parked at global position {self.position} after "
            f"{self.attempts} failed attempts: {self.error}. "
            f"Hint: fix the handler, then `await control.retry({self.name!r})`, or "
            f"`await control.skip({self.name!r})` to move past that one event."
        )


class ProjectionsTimeoutError(DockyardError, TimeoutError):
    """Projections did not reach the head of the log in time."""

    def __init__(self, timeout: float, lagging: Sequence[tuple[str, int, int]]) -> None:
        self.timeout = timeout
        self.lagging = tuple(lagging)
        """(name, checkpoint, head) of each projection still behind."""
        super().__init__(str(self))

    def __str__(self) -> str:
        behind = ", ".join(f"`{n}` at {p} of {h}" for n, p, h in self.lagging)
        return (
            f"Projections did not reach the head of the event log within {self.timeout:g} s: "
            f"{behind}. Hint: check that nothing holds their lease (another worker) and that "
            "the app is started; raise `timeout=` for big logs."
        )


# ----------------------------------------------------------------------------- outbox
# (owned by dockyard.outbox, dockyard.transport and dockyard.cli)


class InvalidRouteError(DockyardError, TypeError):
    """``route(...).to(...)`` was given something that cannot be routed."""

    def __init__(self, target: object, problem: str) -> None:
        self.target = target
        self.problem = problem
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"Cannot route `{type_name(self.target)}`: {self.problem}. Hint: write "
            '`route(OrderPlaced).to("orders")` with a message class and a non-empty '
            "destination, and list it in a module's `handlers=[...]` or in "
            "`OutboxModule.register(routes=[...])`."
        )


class TransportClosedError(DockyardError, RuntimeError):
    """A transport was used after ``close()``."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"The {self.transport} transport is closed: it cannot publish or deliver any more. "
            "Hint: close a transport only once nothing publishes or consumes through it "
            "(after the app and its worker have stopped); build a new one to start again."
        )


class DeadLetterNotFoundError(DockyardError, LookupError):
    """A dead letter operation named a message that is not a dead letter."""

    def __init__(self, message_ids: Sequence[str]) -> None:
        self.message_ids = tuple(message_ids)
        super().__init__(str(self))

    def __str__(self) -> str:
        ids = ", ".join(f"`{m}`" for m in self.message_ids)
        return (
            f"No dead letter with message id {ids}: it was never dead-lettered, was already "
            "replayed or purged. Hint: list the current ones with `await dead_letters.list()`."
        )


class MissingExtraError(DockyardError, ImportError):
    """A feature needs an optional dependency that is not installed."""

    def __init__(self, feature: str, package: str, extra: str) -> None:
        self.feature = feature
        self.package = package
        self.extra = extra
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"{self.feature} needs {self.package}, which is not installed. "
            f"Hint: pip install 'dockyard[{self.extra}]'"
        )


class AppImportError(DockyardError, ImportError):
    """``dockyard worker module:attribute`` could not load an ``App`` from its argument."""

    def __init__(self, target: str, problem: str) -> None:
        self.target = target
        self.problem = problem
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"Cannot load the app `{self.target}`: {self.problem}. Hint: pass "
            "`package.module:attribute` naming an `App` (or a function returning one), "
            "importable from the current directory, e.g. `dockyard worker shop.app:app`."
        )


# ----------------------------------------------------------------------------- brokers
# (owned by dockyard.transport.rabbit, .nats, .redis, .kafka and dockyard.consumer)


class BrokerPublishError(DockyardError, ConnectionError):
    """A broker refused a message (a negative confirm, or no queue to route it to)."""

    def __init__(self, transport: str, destination: str, reason: str) -> None:
        self.transport = transport
        self.destination = destination
        self.reason = reason
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"The {self.transport} broker refused a message for `{self.destination}`: "
            f"{self.reason}. The relay retries it. Hint: declare the consumer group first "
            "(`await transport.declare(destination, group)`, or start the consuming app), "
            "and check the broker's limits (max message size, disk and memory alarms)."
        )


class TransportUnavailableError(DockyardError, ConnectionError):
    """The broker could not be reached (connection down, no answer): nothing was refused.

    The relay does not count this against a message: it pauses until the broker answers.
    """

    def __init__(self, transport: str, reason: str) -> None:
        super().__init__(transport, reason)  # the fields are the args: the error pickles
        self.transport = transport
        self.reason = reason

    def __str__(self) -> str:
        return (
            f"The {self.transport} broker is unavailable: {self.reason}. Nothing was refused: "
            "the relay pauses and publishes again once the broker answers, without counting "
            "an attempt against any message. Hint: check that the broker runs and is reachable "
            "from this process (URL, network, credentials)."
        )


class MessageRejectedError(DockyardError, ValueError):
    """A received message cannot be handled at all (it becomes a dead letter at once)."""

    def __init__(self, message_id: str, destination: str, problem: str) -> None:
        self.message_id = message_id
        self.destination = destination
        self.problem = problem
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"Message `{self.message_id}` from `{self.destination}` was rejected: "
            f"{self.problem}. It is a dead letter. Hint: publish through dockyard's outbox "
            "(which sets the `message-id`, `message-type` and `schema-version` headers), "
            "register the message class on the consumer, or raise `max_payload`."
        )


class BatchPublishError(DockyardError, ConnectionError):
    """Some messages of a ``publish_many`` call were not accepted; the others were.

    Attributes:
        transport: The transport's scheme, e.g. ``"rabbit"``.
        failed: Message id → why the transport did not accept it.
        held_back: Ids not published because an earlier message of their key failed.
    """

    def __init__(
        self,
        transport: str,
        failed: Mapping[str, BaseException],
        held_back: Sequence[str] = (),
    ) -> None:
        self.transport = transport
        self.failed = dict(failed)
        self.held_back = tuple(held_back)
        super().__init__(str(self))

    def __str__(self) -> str:
        shown = list(self.failed.items())[:3]
        reasons = "; ".join(f"{m} ({type(e).__name__}: {e})" for m, e in shown)
        rest = len(self.failed) - len(shown)
        more = f"; and {rest} more" if rest else ""
        held = (
            f" {len(self.held_back)} later messages of their keys were held back."
            if self.held_back
            else ""
        )
        return (
            f"The {self.transport} transport did not accept {len(self.failed)} messages of a "
            f"batch: {reasons}{more}.{held} Every other message was accepted; the relay retries "
            "these. Hint: see each message's error (a refused destination, a broker limit, a "
            "lost connection)."
        )
