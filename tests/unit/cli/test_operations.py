"""``dockyard outbox``, ``projections`` and ``sagas``: the real command, each in a process of
its own (forked from a warm interpreter: ``tests/warm_processes.py``), on SQLite and on
PostgreSQL (a schema of each test's own).

Against ``docs/examples/cli_operations_app.py``, seeded by its ``seed`` command: four orders
in the log (three applied by the projection), one message pending in the outbox, three dead
letters (fixed ids and times), a completed saga and two parked ones, three process manager
instances (one completed). Outputs are compared whole
where nothing in them depends on the clock or the host.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services import POSTGRES_URL
from warm_processes import warm_processes

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
APP = "docs.examples.cli_operations_app:app"
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ")


@dataclass(frozen=True, slots=True)
class Place:
    """Where a test's database is: the environment the app reads it from."""

    env: dict[str, str]

    def dockyard(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """``dockyard ARGS`` as a user runs it, from the repository's root."""
        return WARM.run(["dockyard", *args], env=self.env, cwd=ROOT, stdin=stdin)

    def ok(self, *args: str) -> str:
        result = self.dockyard(*args)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        return result.stdout

    def error(self, *args: str, code: int = 1) -> str:
        """The one line the command printed on stderr, having exited with ``code``."""
        result = self.dockyard(*args)
        assert result.returncode == code, (result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        return lines[0]

    def seed(self) -> None:
        """``python -m docs.examples.cli_operations_app seed``."""
        module = "docs.examples.cli_operations_app"
        seeded = WARM.run([module, "seed"], env=self.env, cwd=ROOT, module=module)
        assert seeded.returncode == 0, seeded.stderr


_PYTHONPATH = os.pathsep.join(sys.path)
WARM = warm_processes(_PYTHONPATH)


def _environment(**database: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": _PYTHONPATH, **database}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Place]:
    """An empty database of the test's own: a SQLite file, or a PostgreSQL schema."""
    if request.param == "sqlite":
        yield Place(_environment(DOCKYARD_DATABASE_URL=f"sqlite:///{tmp_path / 'ops.db'}"))
        return
    schema = f"cli_{uuid.uuid4().hex[:12]}"
    _schema(f'CREATE SCHEMA "{schema}"')
    try:
        url = POSTGRES_URL
        yield Place(_environment(DOCKYARD_DATABASE_URL=url, DOCKYARD_DATABASE_SCHEMA=schema))
    finally:
        _schema(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _schema(statement: str) -> None:
    """Run one statement on the test server (through asyncpg, the driver already installed)."""
    import asyncio

    import asyncpg

    async def run() -> None:
        url = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


@pytest.fixture
def seeded(place: Place) -> Place:
    place.seed()
    return place


# -- outbox -------------------------------------------------------------------------------


def test_outbox_status_counts_each_destination_and_transport(seeded: Place) -> None:
    assert seeded.ok("outbox", "status", APP) == (
        "destination         transport  pending  scheduled  dead  delivered\n"
        "billing://invoices  billing          0          0     1          0\n"
        "orders              default          1          0     2          0\n"
        "total                                1          0     3          0\n"
        "\n"
        "transport  relay loop            batch  attempts  pending  dead\n"
        "default    outbox-relay            500        10        1     2\n"
        "billing    outbox-relay:billing    100         5        0     1\n"
    )
    counts = json.loads(seeded.ok("outbox", "status", APP, "--json"))
    assert counts["transports"]["billing"] == {
        "relay": "outbox-relay:billing",
        "batch_size": 100,
        "max_attempts": 5,
        "destinations": ["billing://invoices"],
        "pending": 0,
        "scheduled": 0,
        "dead": 1,
        "delivered": 0,
    }
    assert counts["transports"]["default"]["destinations"] == ["orders"]
    assert counts["destinations"]["orders"] == {
        "pending": 1,
        "scheduled": 0,
        "dead": 2,
        "delivered": 0,
    }
    assert counts["total"]["dead"] == 3


def test_dead_letters_are_listed_with_filters_and_counts(seeded: Place) -> None:
    listing = "dead-letters", "list", APP
    assert seeded.ok("outbox", *listing) == (
        "3 dead letters\n"
        "id   destination         type         attempts  written               error\n"
        "m-1  orders              OrderPlaced         5  2026-11-30 00:54:20Z  TransportUnavailableError: broker refused\n"  # noqa: E501
        "m-2  billing://invoices  InvoiceDue          5  2026-11-30 00:55:20Z  consumer:billing://invoices:mail: KeyError: 'email'\n"  # noqa: E501
        "m-3  orders              OrderPlaced         5  2026-11-30 00:56:20Z  TransportUnavailableError: broker refused\n"  # noqa: E501
    )
    assert seeded.ok("outbox", *listing, "-d", "orders", "--limit", "1").splitlines()[0] == (
        "2 dead letters to orders (showing the first 1)"
    )
    found = json.loads(
        seeded.ok("outbox", *listing, "--since", "2026-11-30T00:55", "--error", "BROKER", "--json")
    )
    assert found["count"] == 1
    assert [d["message_id"] for d in found["dead_letters"]] == ["m-3"]
    assert json.loads(seeded.ok("outbox", *listing, "--type", "InvoiceDue", "--json"))[
        "dead_letters"
    ][0]["error"] == ("consumer:billing://invoices:mail: KeyError: 'email'")
    assert seeded.ok("outbox", *listing, "--since", "1h") == "0 dead letters since 1h\n"
    assert seeded.error("outbox", *listing, "--since", "yesterday", code=2) == (
        "error: --since `yesterday` is neither a duration (30m, 2h, 7d) nor an ISO 8601 date "
        "or time (2026-12-01, 2026-12-01T08:00)"
    )


def test_a_dead_letter_is_shown_whole(seeded: Place) -> None:
    assert seeded.ok("outbox", "dead-letters", "show", APP, "m-2") == (
        "message id      m-2\n"
        "destination     billing://invoices\n"
        "type            InvoiceDue (schema 1)\n"
        "partition key   -\n"
        "written         2026-11-30 00:55:20Z\n"
        "attempts        5\n"
        "headers\n"
        "  correlation-id: c-2\n"
        "payload (utf-8)\n"
        '  {"order_id":"o-2"}\n'
        "error\n"
        "  consumer:billing://invoices:mail: KeyError: 'email'\n"
    )
    assert seeded.error("outbox", "dead-letters", "show", APP, "m-404") == (
        "error: no dead letter has the message id `m-404`: it was never dead-lettered, or was "
        f"replayed or purged since (list them: dockyard outbox dead-letters list {APP})"
    )


def test_replay_and_purge_need_a_choice_and_a_confirmation(seeded: Place) -> None:
    replay = "outbox", "dead-letters", "replay", APP
    assert seeded.error(*replay, code=2) == (
        "error: `dead-letters replay` needs message ids, filters (--destination, --type, "
        "--since, --error) or --all: exactly one of them"
    )
    assert seeded.error(*replay, "m-1", "--all", code=2).startswith("error: `dead-letters")
    # no terminal to ask on: a script must say --yes; nothing changed
    assert seeded.error(*replay, "--error", "broker", code=2) == (
        "error: Replay 2 dead letters with an error containing 'broker'? "
        "Pass --yes to confirm (no terminal to ask on)."
    )
    assert json.loads(seeded.ok("outbox", "status", APP, "--json"))["total"]["dead"] == 3
    assert seeded.ok(*replay, "--error", "broker", "--yes") == "replayed 2 dead letters\n"
    # replayed once: pending again with attempts reset, and no longer dead letters
    assert seeded.ok(*replay, "--error", "broker", "--yes") == (
        "no dead letters match: nothing to do\n"
    )
    status = json.loads(seeded.ok("outbox", "status", APP, "--json"))
    assert status["destinations"]["orders"] == {
        "pending": 3,
        "scheduled": 0,
        "dead": 0,
        "delivered": 0,
    }
    assert seeded.error(*replay, "m-1", "--yes").startswith(
        "error: no dead letter has the message id `m-1`"
    )
    purge = "outbox", "dead-letters", "purge", APP
    assert json.loads(seeded.ok(*purge, "--all", "--yes", "--json")) == {"purged": ["m-2"]}
    assert seeded.ok("outbox", "dead-letters", "list", APP) == "0 dead letters\n"


def test_replay_by_id_replays_those_only(seeded: Place) -> None:
    result = seeded.ok("outbox", "dead-letters", "replay", APP, "m-3", "m-2", "--yes", "--json")
    assert sorted(json.loads(result)["replayed"]) == ["m-2", "m-3"]
    listed = json.loads(seeded.ok("outbox", "dead-letters", "list", APP, "--json"))
    assert [d["message_id"] for d in listed["dead_letters"]] == ["m-1"]


# -- projections ----------------------------------------------------------------------------


def test_projections_pause_resume_and_rebuild(seeded: Place) -> None:
    assert seeded.ok("projections", "status", APP) == (
        "name          state    position  head  lag  owner\n"
        "order-totals  stopped         3     4    1  -\n"
    )
    assert seeded.ok("projections", "pause", APP, "order-totals") == "paused `order-totals`\n"
    assert seeded.ok("projections", "pause", APP, "order-totals") == (
        "`order-totals` was paused already: nothing to do\n"
    )
    status = json.loads(seeded.ok("projections", "status", APP, "order-totals", "--json"))
    assert status[0]["state"] == "paused"
    assert status[0]["paused_at"] is not None
    assert seeded.ok("projections", "rebuild", APP, "order-totals", "--yes") == (
        "reset `order-totals`; it is paused: it replays once resumed\n"
    )
    assert seeded.ok("projections", "resume", APP, "order-totals") == "resumed `order-totals`\n"
    rebuilt = seeded.dockyard("projections", "rebuild", APP, "order-totals", "--yes")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout == "rebuilt `order-totals`: at position 4 of 4\n"
    assert "4/4" in rebuilt.stderr  # the progress bar, on stderr
    assert seeded.ok("projections", "status", APP) == (
        "name          state    position  head  lag  owner\n"
        "order-totals  stopped         4     4    0  -\n"
    )


def test_projection_errors_are_one_line(seeded: Place) -> None:
    assert seeded.error("projections", "skip", APP, "order-totals", "--yes") == (
        "error: Cannot skip the failed event of projection `order-totals`: it is not parked "
        "on a failed event. Hint: check `await control.status()` first; only a projection "
        "in state `failed` can be retried or skipped."
    )
    assert seeded.error("projections", "status", APP, "orders").startswith(
        "error: No catch-up projection named `orders` is registered (registered: `order-totals`)."
    )
    assert seeded.error("projections", "rebuild", APP, "order-totals", code=2) == (
        "error: Rebuild `order-totals`? Its read model is cleared and replayed. "
        "Pass --yes to confirm (no terminal to ask on)."
    )


def test_a_rebuild_and_a_pause_work_against_a_running_worker(seeded: Place) -> None:
    script = Path(sys.executable).with_name("dockyard")
    worker = subprocess.Popen(
        [str(script), "worker", APP, "--grace", "5"],
        cwd=ROOT,
        env=seeded.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:  # the worker's runner takes the lease and catches up
            (status,) = json.loads(seeded.ok("projections", "status", APP, "--json"))
            if status["owner"] is not None and status["lag"] == 0:
                break
            assert worker.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        owner = status["owner"]
        rebuilt = seeded.ok("projections", "rebuild", APP, "order-totals", "--yes", "--json")
        assert json.loads(rebuilt) | {"seconds": 0} == {
            "name": "order-totals",
            "done": True,
            "paused": False,
            "position": 4,
            "head": 4,
            "seconds": 0,
        }
        (status,) = json.loads(seeded.ok("projections", "status", APP, "--json"))
        assert (status["state"], status["owner"]) == ("running", owner)  # the worker rebuilt
        seeded.ok("projections", "pause", APP, "order-totals")
        (status,) = json.loads(seeded.ok("projections", "status", APP, "--json"))
        assert (status["state"], status["owner"]) == ("paused", owner)  # leased, not running
        seeded.ok("projections", "resume", APP, "order-totals")
        (status,) = json.loads(seeded.ok("projections", "status", APP, "--json"))
        assert status["state"] == "running"
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            _, errors = worker.communicate(timeout=60)
        finally:
            worker.kill()
    assert worker.returncode == 0, errors
    assert "lost its lease" not in errors


# -- sagas ----------------------------------------------------------------------------------


def test_sagas_are_listed_shown_retried_and_cancelled(seeded: Place) -> None:
    assert seeded.ok("sagas", "list", APP) == (
        "id         saga         status     step        attempts  error\n"
        "ship-o-1   shipping v1  completed  -                  0  -\n"
        "ship-o-9   shipping v1  failed     ship (act)         1  RuntimeError: the carrier refused order o-9\n"  # noqa: E501
        "ship-o-95  shipping v1  failed     ship (act)         1  RuntimeError: the carrier refused order o-95\n"  # noqa: E501
    )
    assert seeded.ok("sagas", "list", APP, "--state", "completed", "--name", "shipping") == (
        "id        saga         status     step  attempts  error\n"
        "ship-o-1  shipping v1  completed  -            0  -\n"
    )
    shown = TIME.sub("<time>", seeded.ok("sagas", "show", APP, "ship-o-9"))
    assert shown == (
        "saga        shipping v1\n"
        "id          ship-o-9\n"
        "status      failed\n"
        "step        ship (act), 1 failed attempts\n"
        "state       Shipping(order_id='o-9')\n"
        "owner       -\n"
        "created     <time>\n"
        "updated     <time>\n"
        "error       RuntimeError: the carrier refused order o-9\n"
        "log\n"
        "  <time>  reserve: completed (attempt 1)\n"
        "  <time>  ship: failed (attempt 1): RuntimeError: the carrier refused order o-9\n"
        "  <time>  ship: parked (attempt 1): RuntimeError: the carrier refused order o-9\n"
    )
    assert seeded.error("sagas", "cancel", APP, "ship-o-1", "--yes") == (
        "error: Cannot cancel saga `ship-o-1`: it is completed, not failed. Hint: only a "
        "parked (failed) saga can be retried, skipped or cancelled; check "
        "`(await control.get(saga_id)).status` first."
    )
    assert seeded.error("sagas", "show", APP, "ship-o-404").startswith(
        "error: No saga instance has the id `ship-o-404`."
    )
    assert seeded.error("sagas", "cancel", APP, "ship-o-9", code=2) == (
        "error: Cancel saga `ship-o-9`? Nothing more runs and nothing is undone. "
        "Pass --yes to confirm (no terminal to ask on)."
    )
    assert seeded.ok("sagas", "retry", APP, "ship-o-9") == (
        "retrying `ship-o-9`: running at step ship\n"
    )
    record = json.loads(seeded.ok("sagas", "show", APP, "ship-o-9", "--json"))
    assert (record["status"], record["attempts"]) == ("running", 0)
    assert record["log"][-1]["kind"] == "retried"


def test_a_parked_saga_is_drawn_skipped_and_finished_ones_purged(seeded: Place) -> None:
    assert seeded.ok("sagas", "show", APP, "ship-o-9", "--diagram", "mermaid") == (
        "stateDiagram-v2\n"
        '    state "reserve" as step0\n'
        '    state "ship" as step1\n'
        '    state "failed (parked) (now)" as failed\n'
        "    [*] --> step0\n"
        "    step0 --> step1 : done\n"
        "    step1 --> failed : gave up after 1 attempt\n"
    )
    assert seeded.ok("sagas", "show", APP, "ship-o-9", "--diagram", "dot").startswith(
        'digraph "shipping ship-o-9" {\n'
    )
    assert seeded.error("sagas", "skip", APP, "ship-o-9", code=2) == (
        "error: Skip step `ship` (act) of saga `ship-o-9`? It is not run again; the saga goes "
        "on as if it had completed. Pass --yes to confirm (no terminal to ask on)."
    )
    skipped = seeded.ok(
        "sagas", "skip", APP, "ship-o-9", "--yes", "--by", "ann", "--reason", "sent by hand"
    )
    assert skipped == "skipped `ship` of `ship-o-9`: completed\n"
    shown = TIME.sub("<time>", seeded.ok("sagas", "show", APP, "ship-o-9"))
    assert shown.splitlines()[-1] == "  <time>  ship: skipped (by ann: sent by hand)"
    assert seeded.error("sagas", "skip", APP, "ship-o-9", "--yes") == (
        "error: Cannot skip saga `ship-o-9`: it is completed, not failed. Hint: only a parked "
        "(failed) saga can be retried, skipped or cancelled; check "
        "`(await control.get(saga_id)).status` first."
    )
    assert seeded.error("sagas", "purge", APP, "--older-than", "soon", code=2) == (
        "error: --older-than `soon` is not a duration (30s, 30m, 2h, 7d, 2w)"
    )
    assert seeded.ok("sagas", "purge", APP, "--older-than", "1h", "--yes") == (
        "purged 0 finished saga instances\n"
    )
    assert json.loads(
        seeded.ok("sagas", "purge", APP, "--older-than", "0s", "--yes", "--json")
    ) == {"purged": 2}
    left = json.loads(seeded.ok("sagas", "list", APP, "--json"))
    assert [(r["saga_id"], r["status"]) for r in left] == [("ship-o-95", "failed")]


# -- process managers ------------------------------------------------------------------------


def test_process_instances_are_listed_shown_cancelled_and_purged(seeded: Place) -> None:
    listed = TIME.sub("<time>", seeded.ok("processes", "list", APP))
    assert listed == (
        "process      key  status     timeout at  updated\n"
        "delivery v1  p-1  active     -           <time>\n"
        "delivery v1  p-2  completed  -           <time>\n"
        "delivery v1  p-3  active     -           <time>\n"
    )
    active = json.loads(
        seeded.ok("processes", "list", APP, "--state", "active", "--name", "delivery", "--json")
    )
    assert [(r["key"], r["status"]) for r in active] == [("p-1", "active"), ("p-3", "active")]
    shown = TIME.sub("<time>", seeded.ok("processes", "show", APP, "delivery", "p-1"))
    assert shown.splitlines()[:5] == [
        "process     delivery v1",
        "key         p-1",
        "status      active",
        "state       Delivery(scans=['booked'])",
        "timeout     -",
    ]
    assert seeded.error("processes", "show", APP, "delivery", "p-404").startswith(
        "error: Process manager `delivery` has no instance `p-404`."
    )
    assert seeded.error("processes", "cancel", APP, "delivery", "p-3", code=2).startswith(
        "error: Cancel process `delivery` instance `p-3`? Every later message of its key is "
        "ignored."
    )
    assert seeded.ok("processes", "cancel", APP, "delivery", "p-3", "--yes") == (
        "cancelled `delivery` instance `p-3`\n"
    )
    assert seeded.error("processes", "cancel", APP, "delivery", "p-3", "--yes") == (
        "error: Cannot cancel process `delivery` instance `p-3`: it is cancelled, not active. "
        "Hint: only an active instance can be cancelled; a finished one takes no more "
        "messages already."
    )
    record = json.loads(seeded.ok("processes", "show", APP, "delivery", "p-3", "--json"))
    assert (record["status"], record["state"]) == ("cancelled", "Delivery(scans=['booked'])")
    assert seeded.ok("processes", "purge", APP, "--older-than", "1h", "--yes") == (
        "purged 0 finished process manager instances\n"
    )
    assert json.loads(
        seeded.ok("processes", "purge", APP, "--older-than", "0s", "--yes", "--json")
    ) == {"purged": 2}
    left = json.loads(seeded.ok("processes", "list", APP, "--json"))
    assert [(r["key"], r["status"]) for r in left] == [("p-1", "active")]


# -- stores that are not there ----------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("outbox", "status"),
        ("outbox", "dead-letters", "list"),
        ("projections", "status"),
        ("sagas", "list"),
        ("processes", "list"),
    ],
    ids=" ".join,
)
def test_missing_tables_say_how_to_create_them(place: Place, command: tuple[str, ...]) -> None:
    assert place.error(*command, APP) == (
        f"error: dockyard's tables are missing: run `dockyard db create {APP}`"
    )


def test_a_database_that_does_not_answer_is_one_line_and_exit_1() -> None:
    nowhere = Place(_environment(DOCKYARD_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none"))
    result = nowhere.dockyard("outbox", "status", APP)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: The database did not answer while trying to ")
    assert result.stderr.splitlines()[-1] == "(run with --debug for the traceback)"


FAILING_HOOK = """
from dockyard import App, module
from dockyard.modules import OnAppInit
from dockyard.outbox import OutboxModule
from dockyard.transport.memory import InMemoryTransport


class OpenVault(OnAppInit):
    async def on_app_init(self, app: App) -> None:
        raise RuntimeError("the vault is sealed")


@module(imports=[OutboxModule.register(transport=InMemoryTransport())], extensions=[OpenVault()])
class Root: ...


app = App.build(Root)
"""

NO_SAGAS = """
from dockyard import App, module


@module()
class Root: ...


app = App.build(Root)
"""


@pytest.mark.parametrize(
    ("source", "args", "says"),
    [
        (
            FAILING_HOOK,
            ("outbox", "status"),
            (
                "error: the app did not start: RuntimeError: the vault is sealed "
                "(run with --debug for the traceback)"
            ),
        ),
        (
            NO_SAGAS,
            ("sagas", "list"),
            "error: the app has no sagas (it does not import `SagasModule`)",
        ),
        (
            NO_SAGAS,
            ("processes", "list"),
            "error: the app has no process managers (it does not import `ProcessManagersModule`)",
        ),
        (
            NO_SAGAS,
            ("projections", "status"),
            "error: the app has no catch-up projections (it does not import `ProjectionsModule`)",
        ),
        (
            NO_SAGAS,
            ("outbox", "dead-letters", "list"),
            "error: the app has no outbox (it does not import `OutboxModule`)",
        ),
    ],
    ids=["hook-raises", "no-sagas", "no-processes", "no-projections", "no-outbox"],
)
def test_an_app_that_cannot_be_operated_says_why(
    tmp_path: Path, source: str, args: tuple[str, ...], says: str
) -> None:
    (tmp_path / "user_app.py").write_text(source)
    script = Path(sys.executable).with_name("dockyard")
    result = subprocess.run(
        [str(script), *args[:-1], args[-1], "user_app:app"],
        cwd=tmp_path,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stderr) == (1, says + "\n")
