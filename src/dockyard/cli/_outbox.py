"""``dockyard outbox``: what waits in an app's outbox, and its dead letters.

``status`` counts messages per destination and per transport, with each transport's relay
loop and its settings; ``dead-letters list|show|replay|purge`` read and
operate on the messages that could not be delivered or handled, chosen by ids or filters
(destination, type, since, error text). Replaying makes a dead letter pending again with
its attempts reset: the relay publishes it once more (consumers that handled it skip it
through their inbox).
"""

from __future__ import annotations

import base64
import time
import typing
from dataclasses import dataclass
from typing import Annotated

import typer

from dockyard.cli._commands import cli
from dockyard.cli._common import (
    EXIT_FAILED,
    EXIT_USAGE,
    AppArgument,
    DebugOption,
    JsonOption,
    emit_json,
    fail,
)
from dockyard.cli._operate import YesOption, confirm, operate, parse_since, resolve, table
from dockyard.cli._operate import timestamp as when

if typing.TYPE_CHECKING:
    from dockyard.app import App
    from dockyard.outbox import OutboxMessage, OutboxStore

__all__ = ["outbox"]

outbox = typer.Typer(
    name="outbox", help="The app's outbox: counts, dead letters.", no_args_is_help=True
)
dead_letters = typer.Typer(
    name="dead-letters",
    help="List, show, replay and purge dead letters.",
    no_args_is_help=True,
)
outbox.add_typer(dead_letters)
cli.add_typer(outbox)

_PAGE = 500  # dead letters read (and replayed or purged) per statement
_ERROR_WIDTH = 60  # characters of `last_error` a listing shows

DestinationOption = Annotated[
    str | None, typer.Option("--destination", "-d", help="Only those to this destination.")
]
TypeOption = Annotated[
    str | None, typer.Option("--type", "-t", help="Only those of this stable type name.")
]
SinceOption = Annotated[
    str | None,
    typer.Option(
        help="Only those written since: a duration back from now (30m, 2h, 7d) or an ISO "
        "8601 date or time (UTC unless it has an offset)."
    ),
]
ErrorOption = Annotated[
    str | None,
    typer.Option(
        "--error", "-e", help="Only those whose last error contains this text (any case)."
    ),
]


async def _store(app: App) -> OutboxStore:
    from dockyard.outbox import OutboxStore

    store: OutboxStore = await resolve(
        app,
        OutboxStore,  # type: ignore[type-abstract]  # a Protocol: the container's key
        "outbox (it does not import `OutboxModule`)",
    )
    return store


@dataclass(frozen=True, slots=True)
class Filters:
    """The dead letters a command works on."""

    destination: str | None = None
    type_name: str | None = None
    since: float | None = None
    error: str | None = None

    @property
    def given(self) -> bool:
        return any(
            v is not None for v in (self.destination, self.type_name, self.since, self.error)
        )

    def keywords(self) -> dict[str, typing.Any]:
        return {
            "destination": self.destination,
            "type_name": self.type_name,
            "since": self.since,
            "error": self.error,
        }

    def described(self, since: str | None) -> str:
        parts = [
            f"{label} {value}"
            for label, value in (
                ("to", self.destination),
                ("of type", self.type_name),
                ("since", since),
            )
            if value is not None
        ]
        if self.error is not None:
            parts.append(f"with an error containing {self.error!r}")
        return " ".join(parts)


def _filters(destination: str | None, type_name: str | None, since: str | None,
             error: str | None) -> Filters:  # fmt: skip
    return Filters(destination, type_name, parse_since(since), error)


@outbox.command()
def status(app: AppArgument, json_output: JsonOption = False, debug: DebugOption = False) -> None:
    """Messages per destination and per transport: pending, scheduled, dead letters,
    delivered (kept for the relay's retention); each transport's relay loop and its settings."""
    from dockyard.outbox import OutboxStatus, outbox_status

    order = (OutboxStatus.PENDING, OutboxStatus.SCHEDULED, OutboxStatus.DEAD,
             OutboxStatus.DELIVERED)  # fmt: skip

    async def read(loaded: App) -> tuple[dict[str, dict[str, int]], dict[str, typing.Any]]:
        await _store(loaded)  # the same error as the other commands' without an outbox
        found = await outbox_status(loaded)
        counts = {
            destination: {str(s): by_status[s] for s in order}
            for transport in found
            for destination, by_status in transport.destinations.items()
        }
        transports = {
            transport.name: {
                "relay": transport.relay,
                "batch_size": transport.settings.batch_size,
                "max_attempts": transport.settings.retry.max_attempts,
                "destinations": sorted(transport.destinations),
                **{str(s): transport.counts[s] for s in order},
            }
            for transport in found
        }
        return dict(sorted(counts.items())), transports

    counts, transports = operate(app, read, debug=debug)
    totals = {str(s): sum(c[str(s)] for c in counts.values()) for s in order}
    if json_output:
        emit_json({"destinations": counts, "transports": transports, "total": totals})
        return
    numbers = frozenset({2, 3, 4, 5})
    if counts:
        owner = {d: name for name, t in transports.items() for d in t["destinations"]}
        header = ["destination", "transport", "pending", "scheduled", "dead", "delivered"]
        rows = [[d, owner[d], *(str(n) for n in c.values())] for d, c in counts.items()]
        rows.append(["total", "", *(str(n) for n in totals.values())])
        typer.echo(table(header, rows, right=numbers))
    else:
        typer.echo("the outbox is empty")
    header = ["transport", "relay loop", "batch", "attempts", "pending", "dead"]
    rows = [
        [name, t["relay"] or "- (run_relay=False)", str(t["batch_size"]),
         str(t["max_attempts"]), str(t["pending"]), str(t["dead"])]
        for name, t in transports.items()
    ]  # fmt: skip
    typer.echo("")
    typer.echo(table(header, rows, right=numbers))


@dead_letters.command("list")
def list_dead_letters(
    app: AppArgument,
    destination: DestinationOption = None,
    type_name: TypeOption = None,
    since: SinceOption = None,
    error: ErrorOption = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 50,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Dead letters, oldest first, with how many match in all."""
    filters = _filters(destination, type_name, since, error)

    async def read(loaded: App) -> tuple[int, list[OutboxMessage]]:
        store = await _store(loaded)
        found = await store.dead_letters(limit=limit, **filters.keywords())
        return await store.count_dead_letters(**filters.keywords()), found

    count, found = operate(app, read, debug=debug)
    if json_output:
        emit_json({"count": count, "dead_letters": [_summary(m) for m in found]})
        return
    matching = f" {filters.described(since)}" if filters.given else ""
    noun = "dead letter" if count == 1 else "dead letters"
    shown = f" (showing the first {len(found)})" if len(found) < count else ""
    typer.echo(f"{count} {noun}{matching}{shown}")
    if not found:
        return
    header = ["id", "destination", "type", "attempts", "written", "error"]
    rows = [
        [
            m.message_id,
            m.destination,
            m.type_name,
            str(m.attempts),
            when(m.created_at),
            _shorten(m.last_error or ""),
        ]
        for m in found
    ]
    typer.echo(table(header, rows, right=frozenset({3})))


@dead_letters.command()
def show(
    app: AppArgument,
    message_id: Annotated[str, typer.Argument(help="The dead letter's message id.")],
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """One dead letter: every field, its headers, its payload and its whole error."""
    from dockyard.outbox import OutboxStatus

    async def read(loaded: App) -> OutboxMessage | None:
        return await (await _store(loaded)).get(message_id)

    found = operate(app, read, debug=debug)
    if found is None or found.status is not OutboxStatus.DEAD:
        fail(_not_dead([message_id], app), code=EXIT_FAILED)
    if json_output:
        emit_json(_summary(found) | _details(found))
        return
    details = _details(found)
    lines = [
        f"message id      {found.message_id}",
        f"destination     {found.destination}",
        f"type            {found.type_name} (schema {found.schema_version})",
        f"partition key   {found.partition_key or '-'}",
        f"written         {when(found.created_at)}",
        f"attempts        {found.attempts}",
        "headers" + ("         -" if not found.headers else ""),
        *(f"  {key}: {value}" for key, value in sorted(found.headers.items())),
        f"payload ({details['payload_encoding']})",
        f"  {details['payload']}",
        "error",
        *(f"  {line}" for line in (found.last_error or "-").splitlines()),
    ]
    typer.echo("\n".join(lines))


@dead_letters.command()
def replay(
    app: AppArgument,
    message_ids: Annotated[
        list[str] | None, typer.Argument(help="Message ids (or use filters, or --all).")
    ] = None,
    destination: DestinationOption = None,
    type_name: TypeOption = None,
    since: SinceOption = None,
    error: ErrorOption = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Every dead letter (when no id or filter is given).")
    ] = False,
    yes: YesOption = False,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Make dead letters pending again, attempts reset: the relay publishes each once more."""
    _operate_on(
        "replay", app, message_ids, _filters(destination, type_name, since, error), since,
        everything=everything, yes=yes, json_output=json_output, debug=debug,
    )  # fmt: skip


@dead_letters.command()
def purge(
    app: AppArgument,
    message_ids: Annotated[
        list[str] | None, typer.Argument(help="Message ids (or use filters, or --all).")
    ] = None,
    destination: DestinationOption = None,
    type_name: TypeOption = None,
    since: SinceOption = None,
    error: ErrorOption = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Every dead letter (when no id or filter is given).")
    ] = False,
    yes: YesOption = False,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Delete dead letters for good."""
    _operate_on(
        "purge", app, message_ids, _filters(destination, type_name, since, error), since,
        everything=everything, yes=yes, json_output=json_output, debug=debug,
    )  # fmt: skip


def _operate_on(action: str, target: str, message_ids: list[str] | None, filters: Filters,
                since: str | None, *, everything: bool, yes: bool, json_output: bool,
                debug: bool) -> None:  # fmt: skip
    """Replay or purge the dead letters named by ids, chosen by filters, or all of them.

    The ones that match are read first, then changed by id, a page at a time: each is
    replayed (or purged) once, even if it dies again meanwhile, and one that someone else
    replayed or purged in between is left alone (and not counted).
    """
    ids = list(message_ids or [])
    chosen = sum([bool(ids), filters.given, everything])
    if chosen != 1:
        fail(
            f"`dead-letters {action}` needs message ids, filters (--destination, --type, "
            "--since, --error) or --all: exactly one of them",
            code=EXIT_USAGE,
        )

    past = "replayed" if action == "replay" else "purged"
    which = f" {filters.described(since)}" if filters.given else ""

    async def work(loaded: App) -> tuple[list[str], list[str]]:
        store = await _store(loaded)
        selected = await _select(store, ids, filters, target)
        if not selected:
            return [], []
        noun = "dead letter" if len(selected) == 1 else "dead letters"
        confirm(f"{action.capitalize()} {len(selected)} {noun}{which}?", yes=yes)
        done: list[str] = []
        for start in range(0, len(selected), _PAGE):
            page = selected[start : start + _PAGE]
            if action == "replay":
                done += await store.replay(page, time.time())
            else:
                done += await store.purge_dead(page)
        return selected, done

    selected, done = operate(target, work, debug=debug)
    if json_output:
        emit_json({past: done})
    elif not selected:
        typer.echo("no dead letters match: nothing to do")
    else:
        noun = "dead letter" if len(done) == 1 else "dead letters"
        typer.echo(f"{past} {len(done)} {noun}")
        if len(done) < len(selected):
            others = len(selected) - len(done)
            typer.echo(f"({others} meanwhile replayed or purged by someone else: left alone)")


def _not_dead(message_ids: list[str], target: str) -> str:
    listed = ", ".join(f"`{m}`" for m in message_ids)
    return (
        f"no dead letter has the message id {listed}: it was never dead-lettered, or was "
        f"replayed or purged since (list them: dockyard outbox dead-letters list {target})"
    )


async def _select(store: OutboxStore, ids: list[str], filters: Filters, target: str) -> list[str]:
    """The ids of the dead letters to change, in outbox order; exit 1 if a given id is not
    a dead letter (then nothing is changed)."""
    from dockyard.outbox import OutboxStatus

    if ids:
        found = [await store.get(message_id) for message_id in ids]
        missing = [
            message_id
            for message_id, message in zip(ids, found, strict=True)
            if message is None or message.status is not OutboxStatus.DEAD
        ]
        if missing:
            fail(_not_dead(missing, target), code=EXIT_FAILED)
        return list(dict.fromkeys(ids))
    selected: list[str] = []
    after = None
    while page := await store.dead_letters(limit=_PAGE, after=after, **filters.keywords()):
        selected += [m.message_id for m in page]
        after = page[-1].message_id
    return selected


def _shorten(text: str) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= _ERROR_WIDTH else line[: _ERROR_WIDTH - 1] + "…"


def _summary(message: OutboxMessage) -> dict[str, typing.Any]:
    return {
        "message_id": message.message_id,
        "destination": message.destination,
        "type": message.type_name,
        "attempts": message.attempts,
        "written": when(message.created_at),
        "error": message.last_error,
    }


def _details(message: OutboxMessage) -> dict[str, typing.Any]:
    try:
        payload, encoding = message.payload.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        payload, encoding = base64.b64encode(message.payload).decode(), "base64"
    return {
        "schema_version": message.schema_version,
        "partition_key": message.partition_key,
        "headers": dict(message.headers),
        "payload": payload,
        "payload_encoding": encoding,
    }
