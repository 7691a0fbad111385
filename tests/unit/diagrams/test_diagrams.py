"""``dockyard.diagrams``: an app as data and drawings, with the names and errors users see."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from diagram_syntax import check_dot, check_mermaid
from dockyard import App, Event, Request, module, singleton
from dockyard.diagrams import chains, describe, dot, mermaid
from dockyard.exceptions import ChainNotFoundError, SagaNotRegisteredError
from dockyard.messaging import ChainHandler, EventHandler, RequestHandler
from dockyard.outbox import OutboxModule, route
from dockyard.transport.memory import InMemoryTransport


@dataclass(frozen=True)
class Ping(Request[str]):
    pass


@dataclass(frozen=True)
class Quote(Request[int]):
    pass


@dataclass(frozen=True)
class Noticed(Event):
    pass


class PingHandler(RequestHandler[Ping, str]):
    async def handle(self, request: Ping, /) -> str:
        return "pong"


class FirstQuote(ChainHandler[Quote, int]):
    async def handle(self, request: Quote, call_next: Callable[[], Awaitable[int]], /) -> int:
        return await call_next()


class Store:
    pass


class Setting1:
    pass


class LongExportNameNumberTwo:
    pass


class LongExportNameNumberThree:
    pass


@module(
    providers=[
        singleton(Store),
        singleton(Setting1),
        singleton(LongExportNameNumberTwo),
        singleton(LongExportNameNumberThree),
    ],
    exports=[Store, Setting1, LongExportNameNumberTwo, LongExportNameNumberThree],
)
class Storage: ...


def _app(*handlers: type, imports: tuple[Any, ...] = ()) -> App:
    @module(imports=[Storage, *imports], handlers=list(handlers))
    class Root: ...

    return App.build(Root)


def test_a_plain_request_is_a_request_and_other_kinds_keep_their_names() -> None:
    app = _app(PingHandler, FirstQuote)
    kinds = {m.name: m.kind for m in describe(app).messages}
    assert kinds == {"Ping": "request", "Quote": "chain"}
    assert [m.name for m in chains(describe(app))] == ["Quote"]


def test_long_export_lists_wrap_and_every_line_stays_in_one_box() -> None:
    drawing = mermaid(_app())
    check_mermaid(drawing)
    (storage,) = (line for line in drawing.splitlines() if '"Storage' in line)
    assert storage == (
        '    m1["Storage<br/>exports: LongExportNameNumberThree,<br/>'
        'LongExportNameNumberTwo, Setting1, Store"]'
    )


def test_labels_keep_quotes_and_brackets_literal() -> None:
    weird = 'a "quoted" <destination> #1'
    app = _app(
        route(Noticed).to(weird), imports=(OutboxModule.register(transport=InMemoryTransport()),)
    )
    drawn = mermaid(app, "messages")
    check_mermaid(drawn)
    assert '[/"a #quot;quoted#quot; #lt;destination#gt; #35;1"/]' in drawn
    as_dot = dot(app, "messages")
    check_dot(as_dot)
    assert 'label="a \\"quoted\\" <destination> #1"' in as_dot


def test_an_app_without_messages_draws_an_empty_flow() -> None:
    assert mermaid(_app(), "messages") == "flowchart LR"
    check_dot(dot(_app(), "messages"))


@pytest.mark.parametrize(
    ("view", "name", "error", "says"),
    [
        ("saga", "checkout", SagaNotRegisteredError, "registered: none"),
        ("chain", "Qoute", ChainNotFoundError, "(chains: `Quote`)"),
        ("saga", None, ValueError, "the saga view needs a name: the saga's name"),
        ("chain", None, ValueError, "needs a name: the request type the chain answers"),
        ("modules", "Root", ValueError, "the modules view takes no name (got 'Root')"),
        ("imports", None, ValueError, "unknown view 'imports': choose one of modules, messages"),
    ],
)
def test_a_wrong_view_or_name_says_what_there_is(
    view: Any, name: str | None, error: type[Exception], says: str
) -> None:
    app = _app(FirstQuote)
    for draw in (mermaid, dot):
        with pytest.raises(error) as raised:
            draw(app, view, name)
        assert says in str(raised.value)


def test_a_chain_is_found_by_its_class_name_or_its_path() -> None:
    app = _app(FirstQuote)
    path = f"{Quote.__module__}.Quote"
    assert mermaid(app, "chain", path) == mermaid(app, "chain", "Quote")
    assert '    link0 -->|"call_next()"| exhausted' in mermaid(app, "chain", "Quote")


class OnNoticed(EventHandler[Noticed]):
    async def handle(self, event: Noticed, /) -> None:
        del event


def test_the_routes_of_a_description_are_its_outbox_handlers() -> None:
    app = _app(
        OnNoticed,
        route(Noticed).to("audit", partition_key=lambda e: "k"),
        imports=(OutboxModule.register(transport=InMemoryTransport()),),
    )
    description = describe(app)
    assert [(m.name, r.destination, r.partition_key) for m, r in description.routes] == [
        ("Noticed", "audit", True)
    ]
    assert description.as_dict()["routes"] == [
        {"message": "Noticed", "destination": "audit", "partition_key": True}
    ]
    assert description.handler_count == 2
