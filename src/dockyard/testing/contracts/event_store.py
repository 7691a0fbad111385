"""``EventStoreContract``: what every ``EventStore`` adapter must do.

Example:
    ```python
    class TestMyEventStore(EventStoreContract):
        @pytest_asyncio.fixture
        async def event_store_factory(
        self, *_fixtures: Any, **_named_fixtures: Any  # subclasses take the fixtures they need
    ) -> AsyncIterator[EventStoreFactory]:
            database = await start_my_database()

            @asynccontextmanager
            async def session(serializer: Serializer) -> AsyncIterator[EventStore]:
                async with database.unit_of_work() as uow:  # commits on exit
                    yield MyEventStore(uow, serializer)

            yield session
            await database.close()
    ```
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio

from dockyard.eventsourcing import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    EventStore,
    ExpectedVersion,
    LogHeadReader,
    NewEvent,
    RecordedEvent,
)
from dockyard.exceptions import (
    ConcurrencyError,
    CorruptEventError,
    DuplicateEventIdError,
    InvalidStreamIdError,
    SerializationError,
    StreamDeletedError,
    UnknownEventTypeError,
)
from dockyard.serialization import JsonObject, Serializer, TypeRegistry, event_type

__all__ = ["EventStoreContract", "EventStoreFactory"]

EventStoreFactory = Callable[[Serializer], AbstractAsyncContextManager[EventStore]]
"""Opens one session on the store under test: for SQL adapters a unit of work that commits
when the block exits without an error. Each call must be independent (its own connection), so
two sessions can race; the stored events are shared by all sessions of one test."""


@dataclass(frozen=True, slots=True)
class Opened:
    owner: str


@dataclass(frozen=True, slots=True)
class Deposited:
    amount: int
    note: str = ""


@dataclass(frozen=True, slots=True)
class Withdrawn:
    amount: int


@event_type("contract.renamed", schema_version=1)
@dataclass(frozen=True, slots=True)
class RenamedV1:
    name: str


@event_type("contract.renamed", schema_version=2)
@dataclass(frozen=True, slots=True)
class RenamedV2:
    first: str
    last: str


@dataclass(frozen=True, slots=True)
class NotRegisteredForReaders:
    secret: str


@dataclass(frozen=True, slots=True)
class Holds:
    value: object


@dataclass(frozen=True, slots=True)
class Measured:
    value: float
    previous: float | None = None
    history: tuple[float, ...] = ()


@event_type("contract.counted")
@dataclass(frozen=True, slots=True)
class Counted:
    count: int


@event_type("contract.counted")
@dataclass(frozen=True, slots=True)
class CountedAsText:
    """A reader's class for ``contract.counted`` that the stored bodies do not fit."""

    count: list[str]


KNOWN_EVENTS = (
    Opened,
    Deposited,
    Withdrawn,
    RenamedV1,
    NotRegisteredForReaders,
    Holds,
    Measured,
    Counted,
)

# Stream ids no store can hold, each with the words of the rule it breaks.
UNSTORABLE_STREAM_IDS = [
    pytest.param("", "it is empty", id="empty"),
    pytest.param("S" * 256, "it is 256 characters long", id="too-long"),
    pytest.param("Account-\x00-1", "a NUL character", id="nul"),
    pytest.param("Account-\ud800-1", "a lone surrogate", id="lone-surrogate"),
    pytest.param(42, "it is a `int`, not a string", id="not-a-string"),
]


def _stream() -> str:
    return f"Account-{uuid.uuid4()}"


class EventStoreContract:
    """The behaviour every ``EventStore`` adapter must show; subclass and provide the factory."""

    @pytest_asyncio.fixture
    async def event_store_factory(
        self,
        *_fixtures: Any,
        **_named_fixtures: Any,  # subclasses take the fixtures they need
    ) -> AsyncIterator[EventStoreFactory]:
        """Abstract: yield a factory of sessions on a fresh (or test-isolated) store."""
        raise NotImplementedError(
            f"{type(self).__name__} subclasses EventStoreContract but does not override the "
            "`event_store_factory` fixture. Hint: define it as an async fixture that yields a "
            "factory of sessions on the store under test."
        )
        yield  # type: ignore[unreachable]  # an async generator, like the overrides

    @pytest.fixture
    def serializer(self) -> Serializer:
        return Serializer(TypeRegistry(KNOWN_EVENTS))

    @pytest.fixture
    def session(
        self, event_store_factory: EventStoreFactory, serializer: Serializer
    ) -> Callable[[], AbstractAsyncContextManager[EventStore]]:
        return lambda: event_store_factory(serializer)

    # ------------------------------------------------------------------------ append and read

    async def test_appended_events_read_back_in_order(self, session: _Session) -> None:
        stream = _stream()
        before = datetime.now(UTC)
        async with session() as store:
            result = await store.append(
                stream, [Opened("ann"), Deposited(10, "first"), Withdrawn(3)], NO_STREAM
            )
        assert (result.stream_id, result.first_version, result.last_version) == (stream, 1, 3)
        assert result.first_position < result.last_position
        async with session() as store:
            events = await store.read_stream(stream)
        assert [e.data for e in events] == [Opened("ann"), Deposited(10, "first"), Withdrawn(3)]
        assert [e.stream_version for e in events] == [1, 2, 3]
        assert [e.type_name for e in events] == ["Opened", "Deposited", "Withdrawn"]
        assert {e.stream_id for e in events} == {stream}
        positions = [e.global_position for e in events]
        assert positions == sorted(positions)
        assert (positions[0], positions[-1]) == (result.first_position, result.last_position)
        assert len({e.event_id for e in events}) == 3
        for event in events:
            assert event.metadata.schema_version == 1
            assert event.metadata.timestamp >= before
            assert event.recorded_at >= before
            assert event.recorded_at.tzinfo is not None

    async def test_new_event_keeps_its_id_and_metadata(self, session: _Session) -> None:
        stream, event_id = _stream(), uuid.uuid4()
        at = datetime(2024, 2, 29, 12, 30, tzinfo=UTC)
        wrapped = NewEvent(
            Opened("bo"),
            event_id=event_id,
            correlation_id="corr",
            causation_id="cause",
            timestamp=at,
        )
        async with session() as store:
            await store.append(stream, [wrapped], NO_STREAM)
        async with session() as store:
            (event,) = await store.read_stream(stream)
        assert event.event_id == event_id
        assert event.data == Opened("bo")
        assert event.metadata.correlation_id == "corr"
        assert event.metadata.causation_id == "cause"
        assert event.metadata.timestamp == at

    async def test_an_unknown_stream_reads_as_empty(self, session: _Session) -> None:
        async with session() as store:
            assert list(await store.read_stream(_stream())) == []
            assert list(await store.read_stream(_stream(), backwards=True)) == []

    async def test_an_empty_append_is_refused(self, session: _Session) -> None:
        async with session() as store:
            with pytest.raises(ValueError, match="at least one event"):
                await store.append(_stream(), [], NO_STREAM)

    # ------------------------------------------------------------------- expected versions

    @pytest.mark.parametrize(
        ("expected", "stream_exists", "ok"),
        [
            (NO_STREAM, False, True),
            (NO_STREAM, True, False),
            (0, False, True),
            (0, True, False),
            (2, True, True),
            (1, True, False),
            (3, True, False),
            (2, False, False),
            (STREAM_EXISTS, True, True),
            (STREAM_EXISTS, False, False),
            (ANY, True, True),
            (ANY, False, True),
        ],
    )
    async def test_expected_version_is_checked(
        self,
        session: _Session,
        expected: int | ExpectedVersion,
        stream_exists: bool,
        ok: bool,
    ) -> None:
        stream = _stream()
        actual = 2 if stream_exists else 0
        if stream_exists:
            async with session() as store:
                await store.append(stream, [Opened("a"), Deposited(1)], NO_STREAM)
        async with session() as store:
            if ok:
                result = await store.append(stream, [Withdrawn(1)], expected)
                assert (result.first_version, result.last_version) == (actual + 1, actual + 1)
            else:
                with pytest.raises(ConcurrencyError) as info:
                    await store.append(stream, [Withdrawn(1)], expected)
                error = info.value
                assert (error.stream_id, error.expected, error.actual) == (
                    stream,
                    expected,
                    actual,
                )
        async with session() as store:
            assert len(await store.read_stream(stream)) == actual + (1 if ok else 0)

    async def test_concurrency_error_message(self, session: _Session) -> None:
        stream = _stream()
        async with session() as store:
            await store.append(stream, [Opened("a"), Deposited(1)], NO_STREAM)
        async with session() as store:
            with pytest.raises(ConcurrencyError) as info:
                await store.append(stream, [Withdrawn(1)], 1)
        assert str(info.value) == (
            f"Stream `{stream}` was expected at version 1 but is at version 2. Hint: reload the "
            "stream, decide again on the fresh state and retry; pass `expected_version=ANY` "
            "only if the order of writers does not matter."
        )

    async def test_two_writers_on_one_version_exactly_one_wins(self, session: _Session) -> None:
        stream = _stream()
        async with session() as store:
            await store.append(stream, [Opened("a")], NO_STREAM)

        async def write(amount: int) -> AppendResult:
            async with session() as store:
                return await store.append(stream, [Deposited(amount)], 1)

        outcomes = await asyncio.gather(write(1), write(2), return_exceptions=True)
        won = [o for o in outcomes if isinstance(o, AppendResult)]
        lost = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(won) == 1, outcomes
        assert len(lost) == 1, outcomes
        assert isinstance(lost[0], ConcurrencyError), repr(lost[0])
        assert (lost[0].stream_id, lost[0].expected, lost[0].actual) == (stream, 1, 2)
        async with session() as store:
            events = await store.read_stream(stream)
        winner = Deposited(1) if outcomes[0] is won[0] else Deposited(2)
        assert [e.data for e in events] == [Opened("a"), winner]

    # ------------------------------------------------------------------------- idempotency

    async def test_a_retried_append_with_the_same_key_is_a_no_op(self, session: _Session) -> None:
        stream = _stream()
        async with session() as store:
            first = await store.append(stream, [Opened("a")], NO_STREAM, idempotency_key="k1")
        async with session() as store:
            again = await store.append(stream, [Opened("a")], NO_STREAM, idempotency_key="k1")
            other = await store.append(stream, [Deposited(5)], 1, idempotency_key="k2")
            other_again = await store.append(stream, [Deposited(5)], 1, idempotency_key="k2")
        assert again == first
        assert other_again == other
        assert (other.first_version, other.last_version) == (2, 2)
        async with session() as store:
            events = await store.read_stream(stream)
        assert [e.data for e in events] == [Opened("a"), Deposited(5)]

    async def test_concurrent_retries_with_one_key_append_once(self, session: _Session) -> None:
        stream = _stream()

        async def attempt() -> AppendResult:
            async with session() as store:
                return await store.append(stream, [Opened("a")], NO_STREAM, idempotency_key="k")

        first, second = await asyncio.gather(attempt(), attempt())
        assert first == second
        async with session() as store:
            assert [e.data for e in await store.read_stream(stream)] == [Opened("a")]

    async def test_idempotency_keys_belong_to_one_stream(self, session: _Session) -> None:
        one, two = _stream(), _stream()
        async with session() as store:
            await store.append(one, [Opened("a")], NO_STREAM, idempotency_key="same")
            result = await store.append(two, [Opened("b")], NO_STREAM, idempotency_key="same")
        assert result.stream_id == two
        async with session() as store:
            assert [e.data for e in await store.read_stream(two)] == [Opened("b")]

    # --------------------------------------------------------------------------- read_all

    async def test_read_all_follows_the_global_order(self, session: _Session) -> None:
        streams = [_stream() for _ in range(3)]
        appended: list[tuple[str, int]] = []
        for round_ in range(3):
            for index, stream in enumerate(streams):
                async with session() as store:
                    await store.append(stream, [Deposited(round_ * 10 + index)], ANY)
                appended.append((stream, round_ + 1))
        read = await self._read_everything(session, set(streams), expected=9)
        assert [(e.stream_id, e.stream_version) for e in read] == appended
        positions = [e.global_position for e in read]
        assert positions == sorted(set(positions))

    async def test_read_all_pages_with_after_and_limit(self, session: _Session) -> None:
        stream = _stream()
        async with session() as store:
            await store.append(stream, [Deposited(i) for i in range(7)], NO_STREAM)
        # read_all sees committed events; a transaction's own may or may not show (PostgreSQL: not)
        everything = await self._read_everything(session, {stream}, expected=7)
        assert len(everything) == 7
        start = everything[0].global_position - 1
        async with session() as store:
            page = await store.read_all(after_position=start, limit=3)
            assert [e.data for e in page] == [Deposited(0), Deposited(1), Deposited(2)]
            page = await store.read_all(after_position=page[-1].global_position, limit=3)
            assert [e.data for e in page] == [Deposited(3), Deposited(4), Deposited(5)]
            page = await store.read_all(after_position=everything[-1].global_position, limit=3)
            assert all(e.stream_id != stream for e in page)

    async def test_read_all_filters_by_event_type(self, session: _Session) -> None:
        stream = _stream()
        async with session() as store:
            await store.append(stream, [Opened("a"), Deposited(1), Withdrawn(1)], NO_STREAM)
            await store.append(stream, [Deposited(2)], 3)
        await self._read_everything(session, {stream}, expected=4)  # visible to read_all
        async with session() as store:
            by_class = await store.read_all(limit=100_000, event_types=[Deposited])
            by_name = await store.read_all(limit=100_000, event_types=["Withdrawn", "Opened"])
        assert [e.data for e in by_class if e.stream_id == stream] == [Deposited(1), Deposited(2)]
        assert [e.data for e in by_name if e.stream_id == stream] == [Opened("a"), Withdrawn(1)]
        assert {e.type_name for e in by_class} == {"Deposited"}

    # ------------------------------------------------------------------ delete and truncate

    async def test_a_deleted_stream_refuses_appends_and_reads(self, session: _Session) -> None:
        stream, neighbour = _stream(), _stream()
        async with session() as store:
            await store.append(stream, [Opened("a"), Deposited(1)], NO_STREAM)
            await store.append(neighbour, [Opened("n")], NO_STREAM)
        async with session() as store:
            await store.delete_stream(stream)
        for expected in (2, ANY, NO_STREAM):
            async with session() as store:
                with pytest.raises(StreamDeletedError) as info:
                    await store.append(stream, [Deposited(2)], expected)
            assert (info.value.stream_id, info.value.version) == (stream, 2)
            assert str(info.value) == (
                f"Cannot append to stream `{stream}`: it was deleted at version 2 and a deleted "
                "stream stays deleted. Hint: start a new stream under a new id."
            )
        async with session() as store:
            with pytest.raises(StreamDeletedError, match="Cannot read stream"):
                await store.read_stream(stream)
            assert [e.data for e in await store.read_stream(neighbour)] == [Opened("n")]
        read = await self._read_everything(session, {stream, neighbour}, expected=1)
        assert [e.stream_id for e in read] == [neighbour]

    async def test_deleting_an_unknown_stream_keeps_it_from_being_created(
        self, session: _Session
    ) -> None:
        stream = _stream()
        async with session() as store:
            await store.delete_stream(stream)
        async with session() as store:
            with pytest.raises(StreamDeletedError):
                await store.append(stream, [Opened("a")], NO_STREAM)

    async def test_truncate_before_drops_older_events_and_keeps_the_version(
        self, session: _Session
    ) -> None:
        stream = _stream()
        async with session() as store:
            await store.append(stream, [Deposited(i) for i in range(1, 6)], NO_STREAM)
        async with session() as store:
            await store.truncate_before(stream, 4)
        async with session() as store:
            kept = await store.read_stream(stream)
            assert [(e.stream_version, e.data) for e in kept] == [
                (4, Deposited(4)),
                (5, Deposited(5)),
            ]
            result = await store.append(stream, [Deposited(6)], 5)
        assert result.last_version == 6
        read = await self._read_everything(session, {stream}, expected=3)
        assert [e.stream_version for e in read] == [4, 5, 6]

    # ------------------------------------------------------------------- sizes and contents

    async def test_a_one_megabyte_payload_round_trips(self, session: _Session) -> None:
        stream, note = _stream(), "é" * (1024 * 1024)
        async with session() as store:
            await store.append(stream, [Deposited(1, note)], NO_STREAM)
        async with session() as store:
            (event,) = await store.read_stream(stream)
        assert event.data == Deposited(1, note)

    async def test_unicode_in_stream_ids_and_data(self, session: _Session) -> None:
        stream = f"Cuenta-ñandú-日本語-🚀-{uuid.uuid4()}"
        notes = ["żółć", "日本語のテキスト", "emoji 🎉👩‍👩‍👧", "rtl עברית", "nul\u0001ctl", ""]
        async with session() as store:
            await store.append(stream, [Deposited(i, n) for i, n in enumerate(notes)], NO_STREAM)
        async with session() as store:
            events = await store.read_stream(stream)
        assert [e.data for e in events] == [Deposited(i, n) for i, n in enumerate(notes)]
        assert {e.stream_id for e in events} == {stream}

    async def test_a_ten_thousand_event_stream(self, session: _Session) -> None:
        stream, count = _stream(), 10_000
        async with session() as store:
            await store.append(stream, [Deposited(i) for i in range(5_000)], NO_STREAM)
        async with session() as store:
            await store.append(stream, [Deposited(i) for i in range(5_000, count)], 5_000)
        async with session() as store:
            events = await store.read_stream(stream)
            tail = await store.read_stream(stream, backwards=True, limit=3)
            middle = await store.read_stream(stream, from_version=5_000, limit=2)
        assert [e.data for e in events] == [Deposited(i) for i in range(count)]
        assert [e.stream_version for e in events] == list(range(1, count + 1))
        assert [e.stream_version for e in tail] == [10_000, 9_999, 9_998]
        assert [e.data for e in middle] == [Deposited(4_999), Deposited(5_000)]

    async def test_backwards_reads(self, session: _Session) -> None:
        stream = _stream()
        async with session() as store:
            await store.append(stream, [Deposited(i) for i in range(1, 6)], NO_STREAM)
        async with session() as store:
            everything = await store.read_stream(stream, backwards=True)
            from_three = await store.read_stream(stream, from_version=3, backwards=True)
            two_from_four = await store.read_stream(stream, 4, 2, backwards=True)
        assert [e.stream_version for e in everything] == [5, 4, 3, 2, 1]
        assert [e.stream_version for e in from_three] == [3, 2, 1]
        assert [e.stream_version for e in two_from_four] == [4, 3]

    # ----------------------------------------------------------------------- bad input

    async def test_an_event_that_cannot_be_serialized_writes_nothing(
        self, session: _Session
    ) -> None:
        stream = _stream()
        async with session() as store:
            await store.append(stream, [Opened("a")], NO_STREAM)
        async with session() as store:
            with pytest.raises(SerializationError) as info:
                await store.append(stream, [Deposited(1), Holds(object())], 1)
        error = info.value
        assert (error.stream_id, error.stream_version, error.event_type) == (stream, 3, "Holds")
        assert str(error).startswith(
            f"Cannot serialize event `Holds` in stream `{stream}` at version 3: "
        )
        assert "Nothing was appended." in str(error)
        async with session() as store:
            assert [e.data for e in await store.read_stream(stream)] == [Opened("a")]
            await store.append(stream, [Deposited(1)], 1)

    async def test_unknown_types_fail_clearly_or_are_skipped(
        self, event_store_factory: EventStoreFactory, serializer: Serializer
    ) -> None:
        stream = _stream()
        async with event_store_factory(serializer) as store:
            await store.append(stream, [Opened("a"), NotRegisteredForReaders("x")], NO_STREAM)
            await store.append(stream, [NotRegisteredForReaders(str(i)) for i in range(5)], 2)
            await store.append(stream, [Deposited(1)], 7)
        everyone = lambda: event_store_factory(serializer)  # noqa: E731
        await self._read_everything(everyone, {stream}, expected=8)  # visible to read_all
        reader = Serializer(TypeRegistry([Opened, Deposited]))
        async with event_store_factory(reader) as store:
            with pytest.raises(UnknownEventTypeError) as info:
                await store.read_stream(stream)
            error = info.value
            assert (error.type_name, error.stream_id, error.stream_version) == (
                "NotRegisteredForReaders",
                stream,
                2,
            )
            assert f"in stream `{stream}` at version 2, global position " in str(error)
            skipped = await store.read_stream(stream, skip_unknown=True)
            assert [e.data for e in skipped] == [Opened("a"), Deposited(1)]
            first = (await store.read_stream(stream, limit=1))[0].global_position
            # a page of unknowns must not end the read early: the limit counts returned events
            page = await store.read_all(after_position=first, limit=1, skip_unknown=True)
            assert [e.data for e in page] == [Deposited(1)]

    async def test_older_schema_versions_are_upcast_on_read(
        self, event_store_factory: EventStoreFactory, serializer: Serializer
    ) -> None:
        stream = _stream()
        async with event_store_factory(serializer) as store:
            await store.append(stream, [RenamedV1("Ada Lovelace")], NO_STREAM)
        registry = TypeRegistry([RenamedV2])

        @registry.upcaster(RenamedV2, from_version=1)
        def split_name(data: JsonObject) -> JsonObject:
            first, _, last = data["name"].partition(" ")
            return {"first": first, "last": last}

        async with event_store_factory(Serializer(registry)) as store:
            (event,) = await store.read_stream(stream)
        assert event.data == RenamedV2("Ada", "Lovelace")
        assert event.metadata.schema_version == 1
        assert event.type_name == "contract.renamed"

    # ------------------------------------------------------------ refused at the door

    @pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
    async def test_non_finite_floats_are_refused_naming_the_field(
        self, session: _Session, value: float
    ) -> None:
        # JSON has no NaN or infinity: stored as null, a `float` field could never be read
        # again and a `float | None` one would silently read back None.
        stream = _stream()
        cases = [
            (Measured(value), "`value`"),
            (Measured(1.5, previous=value), "`previous`"),
            (Measured(1.5, history=(0.5, value)), "`history[1]`"),
        ]
        for event, field_name in cases:
            async with session() as store:
                with pytest.raises(SerializationError) as info:
                    await store.append(stream, [Opened("a"), event], 0)
            error = info.value
            assert (error.event_type, error.stream_id, error.stream_version) == (
                "Measured",
                stream,
                2,
            )
            assert f"field {field_name} is {value!r}" in str(error), str(error)
            assert "Nothing was appended." in str(error)
        async with session() as store:
            assert list(await store.read_stream(stream)) == []
            await store.append(stream, [Measured(1.5, None, (2.5,))], NO_STREAM)
        async with session() as store:
            (read,) = await store.read_stream(stream)
        assert read.data == Measured(1.5, None, (2.5,))

    @pytest.mark.parametrize(("stream_id", "rule"), UNSTORABLE_STREAM_IDS)
    async def test_stream_ids_no_store_can_hold_are_refused_everywhere(
        self, session: _Session, stream_id: str, rule: str
    ) -> None:
        operations: dict[str, Callable[[EventStore], Awaitable[object]]] = {
            "append": lambda store: store.append(stream_id, [Opened("a")], NO_STREAM),
            "read_stream": lambda store: store.read_stream(stream_id),
            "delete_stream": lambda store: store.delete_stream(stream_id),
            "truncate_before": lambda store: store.truncate_before(stream_id, 2),
        }
        for name, operation in operations.items():
            async with session() as store:
                with pytest.raises(InvalidStreamIdError) as info:
                    await operation(store)
            error = info.value
            assert error.stream_id == stream_id, name
            assert rule in str(error), (name, str(error))
            assert str(error).startswith("Stream id "), str(error)
            assert "1 to 255 characters" in str(error)
        async with session() as store:  # the store is still usable
            await store.append(_stream(), [Opened("a")], NO_STREAM)

    async def test_a_stream_id_of_255_characters_of_any_script_is_held(
        self, session: _Session
    ) -> None:
        stream = (f"Ac-{uuid.uuid4().hex}-" + "日🚀é" * 100)[:255]
        async with session() as store:
            await store.append(stream, [Opened("a")], NO_STREAM)
        async with session() as store:
            (event,) = await store.read_stream(stream)
        assert (event.stream_id, event.data) == (stream, Opened("a"))

    async def test_a_reused_event_id_is_refused(self, session: _Session) -> None:
        first, second, event_id = _stream(), _stream(), uuid.uuid4()
        async with session() as store:
            await store.append(first, [NewEvent(Opened("a"), event_id=event_id)], NO_STREAM)
        for events in (
            [NewEvent(Opened("b"), event_id=event_id)],
            [Opened("b"), NewEvent(Deposited(1), event_id=event_id), Deposited(2)],
        ):
            async with session() as store:
                with pytest.raises(DuplicateEventIdError) as info:
                    await store.append(second, events, NO_STREAM)
            error = info.value
            assert (error.event_id, error.stream_id) == (event_id, second)
            assert str(error) == (
                f"Event id `{event_id}` is already stored, so the append to stream `{second}` "
                "was refused and nothing was appended. Hint: event ids are unique across all "
                "streams; let the store make them (leave out `NewEvent(event_id=...)`), or "
                "pass `idempotency_key=` so that a retried append is a no-op."
            )
        async with session() as store:
            assert list(await store.read_stream(second)) == []
            (kept,) = await store.read_stream(first)
            await store.append(second, [Opened("b")], NO_STREAM)
        assert (kept.event_id, kept.data) == (event_id, Opened("a"))

    async def test_one_event_id_twice_in_one_append_is_refused(self, session: _Session) -> None:
        stream, event_id = _stream(), uuid.uuid4()
        twice = [
            NewEvent(Opened("a"), event_id=event_id),
            NewEvent(Deposited(1), event_id=event_id),
        ]
        async with session() as store:
            with pytest.raises(DuplicateEventIdError) as info:
                await store.append(stream, twice, NO_STREAM)
        assert (info.value.event_id, info.value.stream_id) == (event_id, stream)
        assert str(info.value).startswith(
            f"Event id `{event_id}` appears twice in the append to stream `{stream}`, so it "
            "was refused and nothing was appended. Hint: "
        )
        async with session() as store:
            assert list(await store.read_stream(stream)) == []

    async def test_an_event_that_no_longer_decodes_names_its_place(
        self, event_store_factory: EventStoreFactory, serializer: Serializer
    ) -> None:
        stream = _stream()
        async with event_store_factory(serializer) as store:
            result = await store.append(stream, [Opened("a"), Counted(3)], NO_STREAM)
        await self._read_everything(lambda: event_store_factory(serializer), {stream}, expected=2)
        reader = Serializer(TypeRegistry([Opened, CountedAsText]))
        async with event_store_factory(reader) as store:
            with pytest.raises(CorruptEventError) as in_stream:
                await store.read_stream(stream)
            with pytest.raises(CorruptEventError) as in_log:
                await store.read_all(after_position=result.first_position, limit=10)
        for error in (in_stream.value, in_log.value):
            assert (error.type_name, error.stream_id, error.stream_version, error.position) == (
                "contract.counted",
                stream,
                2,
                result.last_position,
            )

    # --------------------------------------------------------- LogHeadReader (optional port)

    async def test_a_log_head_reader_answers_what_a_scan_of_the_log_would(
        self, session: _Session
    ) -> None:
        async with session() as store:
            if not isinstance(store, LogHeadReader):
                pytest.skip(f"`{type(store).__name__}` is no LogHeadReader (an optional port)")
        stream = _stream()
        async with session() as store:
            first = await store.append(stream, [Opened("ann"), Deposited(1)], NO_STREAM)
        async with session() as store:
            last = await store.append(stream, [Withdrawn(1)], 2)
        before = first.first_position - 1
        (*_, newest) = await self._read_everything(session, {stream}, expected=3)
        assert newest.global_position == last.last_position
        async with session() as store:
            assert isinstance(store, LogHeadReader)
            # nothing is open any more: the newest committed event is final
            assert await store.log_heads() == (last.last_position, last.last_position)
            assert await store.held_back_by() is None
            assert await store.count_after(before) == len(await store.read_all(before))
            assert await store.count_after(first.last_position) == 1
            assert await store.count_after(last.last_position) == 0

    # ---------------------------------------------------------------------------- helpers

    @staticmethod
    async def _read_everything(
        session: _Session, streams: set[str], *, expected: int
    ) -> list[RecordedEvent]:
        """Page through the whole log, keeping the events of ``streams``.

        A committed event may become visible to ``read_all`` a little later (PostgreSQL
        waits for every older writing transaction in the cluster to finish), so this reads
        again until ``expected`` events show up or 10 seconds pass.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while True:
            found: list[RecordedEvent] = []
            after = 0
            while True:
                async with session() as store:
                    page = await store.read_all(after_position=after, limit=500)
                if not page:
                    break
                found.extend(e for e in page if e.stream_id in streams)
                after = page[-1].global_position
            if len(found) >= expected or loop.time() > deadline:
                return found
            await asyncio.sleep(0.05)


_Session = Callable[[], AbstractAsyncContextManager[EventStore]]
