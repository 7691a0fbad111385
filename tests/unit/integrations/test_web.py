"""The framework-neutral parts of the web integrations: problem details and SSE framing."""

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from dockyard.exceptions import AggregateNotFoundError, ConcurrencyError
from dockyard.integrations import ProblemMapping, RuleViolation
from dockyard.integrations._web import (
    sse_comment,
    sse_event,
    sse_stream,
    status_problem,
    validation_problem,
)


class OutOfStock(RuleViolation):
    pass


class AlreadyShipped(RuleViolation):
    status = 409
    title = "Order already shipped"


def test_dockyard_errors_map_to_404_and_409_without_their_developer_messages() -> None:
    mapping = ProblemMapping()
    status, body = mapping.problem(AggregateNotFoundError("Order", "o-1", "order-o-1"))
    assert status == 404
    assert body == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "No Order with id o-1.",
    }
    status, body = mapping.problem(ConcurrencyError("order-o-1", 1, 2), instance="/orders/o-1")
    assert status == 409
    assert body["instance"] == "/orders/o-1"
    assert "Hint" not in body["detail"]


def test_rule_violations_use_their_class_status_and_message() -> None:
    mapping = ProblemMapping()
    assert mapping.problem(OutOfStock("no more socks")) == (
        400,
        {"type": "about:blank", "title": "Rule violated", "status": 400, "detail": "no more socks"},
    )
    status, body = mapping.problem(AlreadyShipped("shipped on Monday"))
    assert status == 409
    assert (body["title"], body["detail"]) == ("Order already shipped", "shipped on Monday")


def test_the_most_specific_entry_wins_and_add_chains() -> None:
    mapping = ProblemMapping().add(LookupError, 404).add(KeyError, 410, title="Gone for good")
    assert mapping.problem(KeyError("k"))[0] == 410
    assert mapping.problem(IndexError("i")) == (
        404,
        {"type": "about:blank", "title": "Not Found", "status": 404},
    )
    mapping.add(OutOfStock, 422, detail=str)
    assert mapping.problem(OutOfStock("none"))[1]["detail"] == "none"
    assert mapping.problem(AlreadyShipped("x"))[0] == 409
    with pytest.raises(ValueError, match="4xx or 5xx"):
        mapping.add(ValueError, 200)


def test_anything_else_is_a_500_that_says_nothing_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="dockyard.web"):
        status, body = ProblemMapping().problem(RuntimeError("password=hunter2"))
    assert (status, body) == (
        500,
        {"type": "about:blank", "title": "Internal Server Error", "status": 500},
    )
    assert caplog.records[0].exc_info is not None
    assert "hunter2" in str(caplog.records[0].exc_info[1])


def test_validation_problem_is_a_422_listing_the_errors() -> None:
    status, body = validation_problem([{"loc": ["body", "qty"], "msg": "bad"}], instance="/x")
    assert status == 422
    assert body["errors"] == [{"loc": ["body", "qty"], "msg": "bad"}]
    assert body["instance"] == "/x"


def test_sse_event_framing() -> None:
    assert sse_event("hi") == b"data: hi\n\n"
    assert sse_event(b"a\nb\r\nc", id="7", event="status", retry=3000) == (
        b"id: 7\nevent: status\nretry: 3000\ndata: a\ndata: b\ndata: c\n\n"
    )
    assert sse_comment() == b":\n\n"
    assert sse_comment("ping") == b": ping\n\n"
    for bad in ({"id": "a\nb"}, {"event": "x\ry"}, {"retry": -1}):
        with pytest.raises(ValueError, match="SSE"):
            sse_event("x", **bad)


async def test_sse_stream_numbers_events_pings_when_idle_and_closes_the_source() -> None:
    release = asyncio.Event()
    closed = asyncio.Event()

    async def items() -> AsyncIterator[int]:
        try:
            yield 1
            await release.wait()
            yield 2
            await asyncio.Event().wait()  # never set: only cancellation ends it
        finally:
            closed.set()

    frames = sse_stream(items(), str, retry=500, ping=0.01)
    assert await anext(frames) == b"id: 1\nretry: 500\ndata: 1\n\n"
    assert await anext(frames) == b": ping\n\n"
    release.set()
    frame = await anext(frames)
    while frame == b": ping\n\n":
        frame = await anext(frames)
    assert frame == b"id: 2\ndata: 2\n\n"
    await frames.aclose()  # what a framework does when the client goes away
    assert closed.is_set()


async def test_sse_stream_ends_with_its_source() -> None:
    async def items() -> AsyncIterator[str]:
        yield "only"

    assert [f async for f in sse_stream(items(), str, event="e", ping=None)] == [
        b"id: 1\nevent: e\ndata: only\n\n"
    ]


def test_status_problem_names_the_status_and_drops_a_detail_that_repeats_it() -> None:
    assert status_problem(404, detail="Not Found") == (
        404,
        {"type": "about:blank", "title": "Not Found", "status": 404},
    )
    assert status_problem(499, detail="gone", instance="/x")[1] == {
        "type": "about:blank",
        "title": "Error",
        "status": 499,
        "detail": "gone",
        "instance": "/x",
    }
