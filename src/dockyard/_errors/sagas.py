"""Operating sagas: starting an id twice, control calls, instances that cannot go on."""

from __future__ import annotations

from dockyard._errors.base import DockyardError

__all__ = [
    "ProcessNotFoundError",
    "ProcessStateError",
    "SagaAlreadyStartedError",
    "SagaError",
    "SagaNotFoundError",
    "SagaStateError",
    "SagaVersionError",
    "StepTimeoutError",
]


class SagaError(DockyardError):
    """A saga instance cannot do what was asked, or cannot go on."""


class SagaNotFoundError(SagaError, LookupError):
    """No saga instance has that id."""

    def __init__(self, saga_id: str) -> None:
        self.saga_id = saga_id
        super().__init__(saga_id)

    def __str__(self) -> str:
        return (
            f"No saga instance has the id `{self.saga_id}`. Hint: list instances with "
            "`await control.list(name=..., status=...)`; an instance exists once the "
            "transaction that started it has committed."
        )


class SagaStateError(SagaError, RuntimeError):
    """An operation that needs a parked (failed) saga found it in another status, or found
    it parked where the operation cannot apply (``skip`` of a step the definition lacks)."""

    def __init__(self, saga_id: str, status: str, action: str, problem: str | None = None) -> None:
        self.saga_id = saga_id
        self.status = status
        self.action = action
        self.problem = problem
        super().__init__(saga_id, status, action, problem)

    def __str__(self) -> str:
        if self.problem is not None:
            return f"Cannot {self.action} saga `{self.saga_id}`: {self.problem}"
        return (
            f"Cannot {self.action} saga `{self.saga_id}`: it is {self.status}, not failed. "
            "Hint: only a parked (failed) saga can be retried, skipped or cancelled; check "
            "`(await control.get(saga_id)).status` first."
        )


class SagaAlreadyStartedError(SagaError, ValueError):
    """``Sagas.start`` was given the id of an instance that exists (running or finished)."""

    def __init__(self, saga_id: str, name: str) -> None:
        self.saga_id = saga_id
        self.name = name
        super().__init__(saga_id, name)

    def __str__(self) -> str:
        return (
            f"A saga instance with the id `{self.saga_id}` already exists, so `{self.name}` "
            "was not started again (a finished id is never run twice). Hint: pass "
            '`if_exists="return"` to get the existing instance\'s handle instead, or start '
            "under a new id."
        )


class SagaVersionError(SagaError, RuntimeError):
    """A stored instance cannot run on the saga definition this app has: it was started
    under an incompatible ``version``, or its current step is not in the definition.

    Recorded as a parked instance's error; never raised to a caller.
    """

    def __init__(
        self,
        saga_id: str,
        name: str,
        instance_version: int,
        definition_version: int,
        step: str | None = None,
    ) -> None:
        self.saga_id = saga_id
        self.name = name
        self.instance_version = instance_version
        self.definition_version = definition_version
        self.step = step
        super().__init__(saga_id, name, instance_version, definition_version, step)

    def __str__(self) -> str:
        if self.step is not None:
            return (
                f"Saga `{self.saga_id}` is at step `{self.step}`, which `{self.name}` version "
                f"{self.definition_version} does not have: the steps changed without a new "
                "`version`. Hint: deploy a definition that has the step, or bump `version` "
                "and finish old instances with the old code; then "
                f"`await control.retry({self.saga_id!r})`."
            )
        return (
            f"Saga `{self.saga_id}` was started as `{self.name}` version "
            f"{self.instance_version}, and this app runs version {self.definition_version}, "
            f"which does not declare it can resume it. Hint: add "
            f"`compatible_with=({self.instance_version},)` to the definition if its steps "
            "can resume such an instance, or run the old version to finish it; then "
            f"`await control.retry({self.saga_id!r})`."
        )


class ProcessVersionError(SagaError, RuntimeError):
    """A message for a process manager instance started under a ``version`` this app's
    definition does not accept: it is not applied (a consumer makes it a dead letter at once;
    a process manager fed by the event store parks its projection at that event)."""

    def __init__(
        self,
        name: str,
        key: str,
        instance_version: int,
        definition_version: int,
        message_type: str,
    ) -> None:
        self.name = name
        self.key = key
        self.instance_version = instance_version
        self.definition_version = definition_version
        self.message_type = message_type
        super().__init__(name, key, instance_version, definition_version, message_type)

    def __str__(self) -> str:
        old, new = self.instance_version, self.definition_version
        return (
            f"Process manager `{self.name}` instance `{self.key}` was started under version "
            f"{old}; this app's definition is version {new}, which does not accept it, so the "
            f"`{self.message_type}` was not applied. Hint: if version {new}'s handlers can go "
            f"on with a version {old} instance (its state upcast by the serializer), declare "
            f"`compatible_with=({old},)` and replay the dead letter; otherwise let the old "
            f"code finish the old instances before deploying version {new}."
        )


class StepTimeoutError(SagaError, TimeoutError):
    """An attempt of a saga step ran past the step's ``timeout``: it was cancelled and its
    transaction rolled back. Recorded as the failed attempt's error; never raised to a caller.
    """

    def __init__(self, saga_id: str, step: str, timeout: float) -> None:
        self.saga_id = saga_id
        self.step = step
        self.timeout = timeout
        super().__init__(saga_id, step, timeout)

    def __str__(self) -> str:
        return (
            f"Step `{self.step}` of saga `{self.saga_id}` ran longer than its timeout of "
            f"{self.timeout:g} s: the attempt was cancelled and its transaction rolled back. "
            "Hint: it counts as a failed attempt (retried, then the fallback or compensation); "
            "raise `timeout=` if the step needs longer."
        )


class ProcessNotFoundError(SagaError, LookupError):
    """No process manager instance for that key: a message for one that does not exist,
    with ``missing="dead_letter"`` (a consumer makes the message a dead letter), or a
    ``ProcessControl`` call (``message_type`` is ``None`` then)."""

    def __init__(self, name: str, key: str, message_type: str | None = None) -> None:
        self.name = name
        self.key = key
        self.message_type = message_type
        super().__init__(name, key, message_type)

    def __str__(self) -> str:
        if self.message_type is None:
            return (
                f"Process manager `{self.name}` has no instance `{self.key}`. Hint: list "
                f"instances with `await control.list(name={self.name!r})`; an instance exists "
                "once its start message's transaction has committed, and a finished one is "
                "gone once purged."
            )
        return (
            f"Process manager `{self.name}` has no active instance `{self.key}` for a "
            f"`{self.message_type}`. Hint: it is created by a start message (`starts(...)`), "
            "which may not have arrived yet: replay the dead letter once it has; check that "
            "the message's key names the instance."
        )


class ProcessStateError(SagaError, RuntimeError):
    """An operation that needs an active process manager instance found it finished."""

    def __init__(self, name: str, key: str, status: str, action: str) -> None:
        self.name = name
        self.key = key
        self.status = status
        self.action = action
        super().__init__(name, key, status, action)

    def __str__(self) -> str:
        return (
            f"Cannot {self.action} process `{self.name}` instance `{self.key}`: it is "
            f"{self.status}, not active. Hint: only an active instance can be cancelled; a "
            "finished one takes no more messages already."
        )
