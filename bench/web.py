"""Web: what the FastAPI and Litestar integrations add to a request over a bare endpoint.

Issue #15's target: the per-request overhead of an endpoint that takes
``FromDockyard[ISender]`` (one dockyard scope per request, the integration's unit of work)
over one that calls ``await app.send(cmd)`` on an app it holds itself is ≤ 10 %.

For each framework and each app, six ``POST`` endpoints that differ only in how they reach
dockyard, each answering ``{"total": n}`` from the same command (``Add``, whose
handler has one scoped dependency, as in ``bench.messaging``). Each endpoint is the only route
of a web app of its own, picked by path with a dict lookup (``Dispatch``), so route matching
costs every row the same (FastAPI tries its routes in order: in one app with five, the last
paid ~1 µs per route before it); the six are served together by uvicorn in a subprocess
(httptools and uvloop when installed, as ``uvicorn[standard]`` serves in production; no access
log):

* ``framework alone`` — no dockyard: the framework's own cost per request, for scale;
* ``framework + empty yield dep`` — no dockyard, one ``yield`` dependency taking the request
  that does nothing (FastAPI ``Depends(..., scope="function")``, Litestar ``Provide`` of an
  async generator): the least a scope per request through the framework's DI costs;
* ``bare app.send`` — ``await app.send(Add(amount=1))`` on an ``App`` the web app opens in its
  own lifespan (``async with app``): one dockyard scope per request, opened by ``send``, which
  is the unit of work (committed before ``send`` returns, rolled back if it raises) — the
  issue's baseline;
* ``by hand`` — the same app, ``async with app.scope({Request: request}) as scope`` and
  ``ISender`` from it: exactly the work the integration does (a scope with the request in its
  context, ``ISender`` resolved in it), as a user would write it; the second baseline, printed
  beside the first (the ratio to it is what the integration's mechanism costs);
* ``FromDockyard[ISender]`` — the integration: ``setup_dockyard`` (FastAPI) or
  ``DockyardPlugin`` with ``Inject(ISender)`` (Litestar) on a second ``App`` of the same
  modules;
* ``FromDockyard[ISender], @inject`` — the same with the endpoint wrapped, its injection no
  framework dependency, on a third ``App``: FastAPI under ``route_class=DockyardRoute`` (which
  applies ``inject`` to every endpoint), Litestar with ``@inject`` under ``@post`` and no
  ``Inject`` dependency.

Two apps: ``minimal`` (the command's module alone) and ``app shape`` — what the docs have users
build: ``SqlModule`` on SQLite (a file) and ``OutboxModule`` with ``SqlOutboxBackend`` and a
route. The command touches neither, so no transaction is opened (the unit of work is lazy) in
any variant: what is compared is the scope and the integration around it.

Two tables per framework and app, all rows interleaved round by round, in a new order each round:

1. **In process**: the ASGI app called directly (no server, no socket), timed with
   ``time.process_time``: the CPU this process ran, which a loaded machine disturbs far less
   than wall time. The precise figure for what each variant adds.
2. **Under load**: uvicorn in a subprocess, driven by ``wrk`` (``apt-get install wrk``) when it
   is on ``PATH`` — one thread, ``CONNECTIONS`` keep-alive connections — or else by a small
   asyncio HTTP/1.1 client in this process (it costs more CPU per request than wrk, so absolute
   req/s are lower). Each row is ``ROUNDS`` runs of ``SECONDS``; it prints the median req/s,
   p50 and p99 latency, and the server's CPU time per request (``/proc/<pid>/task/*/schedstat``
   over the requests served; 1/req/s where there is no ``/proc``). Ratios are taken inside each
   round against the bare ``app.send`` of that round, and their median is printed with the
   rounds' own, so a noisy moment of a shared machine weighs on both sides of a ratio. The
   whole request is measured here — uvicorn and httptools included — so ratios are smaller
   than in process, and noisier.

Run: ``python -m bench web`` (or ``make bench ARGS=web``). Settings: ``DOCKYARD_BENCH_ROUNDS``
(default 7), ``DOCKYARD_BENCH_WEB_SECONDS`` (whole seconds, default 2),
``DOCKYARD_BENCH_WEB_CONNECTIONS`` (default 16), ``DOCKYARD_BENCH_WEB`` (which servers, e.g.
``fastapi:minimal,litestar:shape``; default all four).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.metadata
import importlib.util
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI
from fastapi import Request as FastApiRequest
from litestar import Litestar, post
from litestar import Request as LitestarRequest
from litestar.di import Provide

from bench._harness import Contender, Scenario, print_table, run_async
from bench.messaging import Add, Added, AddHandler, Counter
from dockyard import App, ISender, module, scoped
from dockyard.integrations import fastapi as dockyard_fastapi
from dockyard.integrations import litestar as dockyard_litestar
from dockyard.outbox import OutboxModule, route
from dockyard.sql import SqlModule, SqlOutboxBackend
from dockyard.transport.memory import InMemoryTransport

ROUNDS = int(os.environ.get("DOCKYARD_BENCH_ROUNDS", "7"))
SECONDS = int(os.environ.get("DOCKYARD_BENCH_WEB_SECONDS", "2"))  # wrk takes whole seconds
CONNECTIONS = int(os.environ.get("DOCKYARD_BENCH_WEB_CONNECTIONS", "16"))
SERVERS = os.environ.get(
    "DOCKYARD_BENCH_WEB", "fastapi:minimal,fastapi:shape,litestar:minimal,litestar:shape"
)
IN_PROCESS_N = 2_000
TARGET = 1.10

# (path, row name); the first is the floor for scale, the second the baseline of every ratio
ENDPOINTS = (
    ("/framework", "framework alone"),
    ("/framework-di", "framework + empty yield dep"),
    ("/bare", "bare app.send"),
    ("/by-hand", "by hand: app.scope(Request) + ISender"),
    ("/integrated", "FromDockyard[ISender]"),
    ("/routed", "FromDockyard[ISender], @inject"),
)
ROUTED = "/routed"  # FastAPI: DockyardRoute; Litestar: @inject


def endpoints(framework: str) -> tuple[tuple[str, str], ...]:
    """The rows measured for ``framework`` (both frameworks measure every row)."""
    del framework
    return ENDPOINTS


BASELINE = "/bare"
INTEGRATIONS = ("/integrated", ROUTED)  # the rows the summary judges against the target
BY_HAND = "/by-hand"
SHAPES = {"minimal": "minimal app", "shape": "app shape (SQLite + SQL outbox)"}

# -- the dockyard apps (built in the server process) ---------------------------------------------


def build_app(shape: str, folder: Path) -> App:
    """The command's module alone, or inside the app shape (SqlModule + OutboxModule)."""
    if shape == "minimal":

        @module(providers=[scoped(Counter)], handlers=[AddHandler])
        class Minimal: ...

        return App.build(Minimal)
    sql = SqlModule.register(f"sqlite+aiosqlite:///{folder / 'web.db'}", create_tables=True)
    outbox = OutboxModule.register(
        transport=InMemoryTransport(),
        backend=SqlOutboxBackend(),
        routes=[route(Added).to("added")],
    )

    @module(providers=[scoped(Counter)], handlers=[AddHandler], imports=[sql, outbox])
    class Shop: ...

    return App.build(Shop)


async def _empty_scope(request: FastApiRequest) -> AsyncIterator[int]:
    """A yield dependency that does nothing: what the framework charges for one."""
    del request
    yield 1


async def _empty_provide(request: LitestarRequest[Any, Any, Any]) -> AsyncIterator[int]:
    del request
    yield 1


# The endpoints' annotations are read by the frameworks from this module's globals.
EmptyScope = Annotated[int, Depends(_empty_scope, scope="function")]
FastApiSender = dockyard_fastapi.FromDockyard[ISender]
LitestarSender = dockyard_litestar.FromDockyard[ISender]


class Dispatch:
    """One web app per endpoint, picked by path with a dict lookup.

    Each endpoint is the only route of its own FastAPI or Litestar app, so route matching
    costs them all the same (a framework tries its routes in order: in one app the fifth
    route pays for four failed matches, ~1 µs each in FastAPI). The lifespan enters
    ``lifespan`` (the bare endpoints' ``App``) and then each app's own.
    """

    def __init__(
        self,
        apps: dict[str, Any],
        lifespan: Callable[[], contextlib.AbstractAsyncContextManager[Any]],
    ) -> None:
        self.apps = apps
        self.lifespan = lifespan

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.apps[scope["path"]](scope, receive, send)
            return
        await receive()  # lifespan.startup
        async with contextlib.AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(self.lifespan())
                for web in self.apps.values():
                    await stack.enter_async_context(asgi_lifespan(web))
            except Exception as exc:  # reported to the server, as ASGI says
                await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
        await send({"type": "lifespan.shutdown.complete"})


def fastapi_web(bare: App, integrated: App, routed_app: App) -> Dispatch:
    def one(path: str, endpoint: Callable[..., Any], dockyard: App | None = None) -> FastAPI:
        web = FastAPI()
        if dockyard is not None:
            dockyard_fastapi.setup_dockyard(web, dockyard)
        web.post(path)(endpoint)
        return web

    async def framework() -> dict[str, int]:
        return {"total": 1}

    async def framework_di(empty: EmptyScope) -> dict[str, int]:
        return {"total": empty}

    async def bare_send() -> dict[str, int]:
        return {"total": await bare.send(Add(amount=1))}

    async def by_hand(request: FastApiRequest) -> dict[str, int]:
        async with bare.scope({FastApiRequest: request}) as scope:
            sender = await scope.get(ISender)
            return {"total": await sender.send(Add(amount=1))}

    async def integrated_send(sender: FastApiSender) -> dict[str, int]:
        return {"total": await sender.send(Add(amount=1))}

    functions: tuple[Callable[..., Any], ...] = (
        framework,
        framework_di,
        bare_send,
        by_hand,
        integrated_send,
    )
    apps = {
        path: one(path, function, integrated if path == "/integrated" else None)
        for (path, _), function in zip(ENDPOINTS, functions, strict=False)
    }
    routed = FastAPI()
    routed.router.route_class = dockyard_fastapi.DockyardRoute
    dockyard_fastapi.setup_dockyard(routed, routed_app)

    @routed.post("/routed")
    async def routed_send(sender: FastApiSender) -> dict[str, int]:
        return {"total": await sender.send(Add(amount=1))}

    apps["/routed"] = routed
    return Dispatch(apps, lambda: bare)


def litestar_web(bare: App, integrated: App, routed_app: App) -> Dispatch:
    @post("/framework")
    async def framework() -> dict[str, int]:
        return {"total": 1}

    @post("/framework-di", dependencies={"empty": Provide(_empty_provide)})
    async def framework_di(empty: int) -> dict[str, int]:
        return {"total": empty}

    @post("/bare")
    async def bare_send() -> dict[str, int]:
        return {"total": await bare.send(Add(amount=1))}

    @post("/by-hand")
    async def by_hand(request: LitestarRequest[Any, Any, Any]) -> dict[str, int]:
        async with bare.scope({LitestarRequest: request}) as scope:
            sender = await scope.get(ISender)
            return {"total": await sender.send(Add(amount=1))}

    @post("/integrated", dependencies={"sender": dockyard_litestar.Inject(ISender)})
    async def integrated_send(sender: LitestarSender) -> dict[str, int]:
        return {"total": await sender.send(Add(amount=1))}

    @post("/routed")
    @dockyard_litestar.inject
    async def routed_send(sender: LitestarSender) -> dict[str, int]:
        return {"total": await sender.send(Add(amount=1))}

    handlers = (framework, framework_di, bare_send, by_hand)
    apps: dict[str, Any] = {
        path: Litestar(route_handlers=[handler])
        for (path, _), handler in zip(ENDPOINTS, handlers, strict=False)
    }
    apps["/integrated"] = Litestar(
        route_handlers=[integrated_send], plugins=[dockyard_litestar.DockyardPlugin(integrated)]
    )
    apps["/routed"] = Litestar(
        route_handlers=[routed_send], plugins=[dockyard_litestar.DockyardPlugin(routed_app)]
    )
    return Dispatch(apps, lambda: bare)


def serve(framework: str, shape: str, folder: str) -> None:
    """The server process: uvicorn on 127.0.0.1, a free port it prints, until SIGTERM.

    It binds its own TCP socket: given a file descriptor (``--fd``), uvicorn takes it for a Unix
    socket and the accepted connections miss ``TCP_NODELAY``, so every keep-alive response
    waits ~40 ms for a delayed ACK.
    """
    bare, integrated, routed = (build_app(shape, Path(folder)) for _ in range(3))
    web: Any = (
        fastapi_web(bare, integrated, routed)
        if framework == "fastapi"
        else litestar_web(bare, integrated, routed)
    )
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listening.bind(("127.0.0.1", 0))
    print(f"port {listening.getsockname()[1]}", flush=True)
    # loop and http "auto": uvloop and httptools when installed
    config = uvicorn.Config(web, access_log=False, log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[listening])


# -- load ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Load:
    """One timed run against one endpoint."""

    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us: float | None = None
    """The server process's CPU time per request (Linux: from ``/proc``; else ``None``)."""


_REQUEST = b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
_WRK_SCRIPT = 'wrk.method = "POST"\n'


def _wrk_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def run_wrk(wrk: str, script: Path, url: str, seconds: int) -> Load:
    out = subprocess.run(
        [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
    if rate is None or total is None or p50 is None or p99 is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors:.*", out)
    errors = int(bad.group(1)) if bad else 0
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(0)))
    return Load(
        int(total.group(1)),
        float(rate.group(1)),
        _wrk_ms(p50.group(1)),
        _wrk_ms(p99.group(1)),
        errors,
    )


async def _client(
    port: int, path: str, deadline: float, latencies: list[float], errors: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = _REQUEST % path.encode()
    try:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length:\s*(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            latencies.append(time.perf_counter() - start)
            if not head.startswith((b"HTTP/1.1 2", b"HTTP/1.1 3")):
                errors.append(1)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def run_python_client(port: int, path: str, seconds: float) -> Load:
    """The fallback load generator: ``CONNECTIONS`` keep-alive connections in this process."""
    latencies: list[float] = []
    errors: list[int] = []
    start = time.perf_counter()
    deadline = start + seconds
    async with asyncio.TaskGroup() as group:
        for _ in range(CONNECTIONS):
            group.create_task(_client(port, path, deadline, latencies, errors))
    elapsed = time.perf_counter() - start
    cuts = statistics.quantiles(latencies, n=100)
    count = len(latencies)
    return Load(count, count / elapsed, cuts[49] * 1e3, cuts[98] * 1e3, len(errors))


def cpu_ns(pid: int) -> int | None:
    """CPU time the process's threads have run, in ns (Linux schedstat), or ``None``.

    Unlike req/s, which halves when another process takes the core, a request's CPU time
    moves little with the machine's load: it is the figure the ratios are taken on.
    """
    try:
        return sum(
            int(Path(task, "schedstat").read_text().split()[0])
            for task in Path(f"/proc/{pid}/task").iterdir()
        )
    except (OSError, ValueError, IndexError):
        return None


# -- the server under load -----------------------------------------------------------------------


@dataclass(slots=True)
class Server:
    framework: str
    shape: str
    port: int
    process: subprocess.Popen[bytes]
    loads: dict[str, list[Load]] = field(default_factory=dict)


@contextlib.contextmanager
def server(framework: str, shape: str, folder: Path) -> Iterator[Server]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.web", "serve", framework, shape, str(folder)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        if not line.startswith("port "):
            raise RuntimeError(f"the {framework} server did not start: {line!r}")
        yield Server(framework, shape, int(line.split()[1]), process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _post(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_REQUEST % path.encode())
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length:\s*(\d+)", head)
        body = await reader.readexactly(int(length.group(1)) if length else 0)
        return int(head.split()[1]), body
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def wait_ready(srv: Server) -> None:
    """Until every endpoint answers 2xx with a total (the server's lifespan has run)."""
    deadline = time.monotonic() + 60
    while True:
        if srv.process.poll() is not None:
            raise RuntimeError(f"the {srv.framework} server exited with {srv.process.returncode}")
        try:
            answers = [await _post(srv.port, path) for path, _ in endpoints(srv.framework)]
        except OSError:
            answers = []
        if answers and all(200 <= status < 300 and b'"total"' in body for status, body in answers):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {srv.framework} server is not answering: {answers}")
        await asyncio.sleep(0.2)


async def measure(srv: Server, wrk: str | None, script: Path) -> None:
    async def once(path: str, seconds: int) -> Load:
        before = cpu_ns(srv.process.pid)
        if wrk is None:
            load = await run_python_client(srv.port, path, seconds)
        else:
            url = f"http://127.0.0.1:{srv.port}{path}"
            load = await asyncio.to_thread(run_wrk, wrk, script, url, seconds)
        after = cpu_ns(srv.process.pid)
        if before is None or after is None or not load.requests:
            return load
        return dataclasses.replace(load, cpu_us=(after - before) / 1e3 / load.requests)

    paths = [path for path, _ in endpoints(srv.framework)]
    for path in paths:  # warm-up: imports, caches, the connection pool of the app shape
        await once(path, 1)
    srv.loads = {path: [] for path in paths}
    order = random.Random(len(paths))  # a new order each round, the same run to run
    for _ in range(ROUNDS):
        for path in order.sample(paths, len(paths)):
            srv.loads[path].append(await once(path, SECONDS))


# -- in process: the ASGI app called directly, no server, no socket ----------------------------


def _http_scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), (b"content-length", b"0")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


_BODY = {"type": "http.request", "body": b"", "more_body": False}


async def _receive() -> dict[str, Any]:
    return _BODY


@asynccontextmanager
async def asgi_lifespan(web: Any) -> AsyncIterator[dict[str, Any]]:
    """Run ``web``'s ASGI lifespan (start-up before, shut-down after); yield its state."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    state: dict[str, Any] = {}
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}

    async def send(message: dict[str, Any]) -> None:
        await outbox.put(message)

    task = asyncio.create_task(web(scope, inbox.get, send))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"start-up failed: {started}")
    try:
        yield state
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


def asgi_call(web: Any, path: str, state: dict[str, Any]) -> Any:
    """``run(n)``: ``n`` requests to ``path``, each checked for a 2xx."""

    async def run(n: int) -> None:
        status = 0

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        for _ in range(n):
            scope = _http_scope(path)
            scope["state"] = dict(state)
            await web(scope, _receive, send)
            if not 200 <= status < 300:
                raise RuntimeError(f"{path} answered {status}")

    return run


async def in_process(framework: str, shape: str, folder: Path) -> dict[str, tuple[float, float]]:
    """The same endpoints through the ASGI call alone: the framework and dockyard, no server.

    Returns each integration row's ratios to the bare ``app.send`` and to the work by hand."""
    bare, integrated, routed = (build_app(shape, folder) for _ in range(3))
    web: Any = (
        fastapi_web(bare, integrated, routed)
        if framework == "fastapi"
        else litestar_web(bare, integrated, routed)
    )
    async with asgi_lifespan(web) as state:
        contenders = [
            Contender(label, asgi_call(web, path, state)) for path, label in endpoints(framework)
        ]
        results = await run_async(
            contenders, n=IN_PROCESS_N, rounds=max(ROUNDS, 7), clock=time.process_time
        )
    label = dict(ENDPOINTS)
    by_label = {r.name: r for r in results}
    by_hand = by_label[label[BY_HAND]].per_op_us
    bare_us = by_label[label[BASELINE]].per_op_us
    ratios: dict[str, tuple[float, float]] = {}
    for path in INTEGRATIONS:
        if path in label and label[path] in by_label:
            result = by_label[label[path]]
            result.note = f"{result.per_op_us / by_hand:.2f}× by hand"
            ratios[path] = (result.per_op_us / bare_us, result.per_op_us / by_hand)
    name = {"fastapi": "FastAPI", "litestar": "Litestar"}[framework]
    print_table(
        Scenario(
            f"web in process, {name}, {SHAPES[shape]}: the ASGI app called, CPU time/request",
            baseline="bare app.send",
            target=f"FromDockyard[ISender] ≤ {TARGET:.2f}× bare app.send",
        ),
        results,
    )
    return ratios


# -- report --------------------------------------------------------------------------------------


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _cost(load: Load) -> float:
    """µs of server time per request: its CPU time where measured, else 1 / req/s."""
    return load.cpu_us if load.cpu_us is not None else 1e6 / load.requests_per_s


def report(srv: Server, generator: str) -> dict[str, tuple[float, float]]:
    """Print one server's table; return each integration row's median ratios to the bare
    ``app.send`` and to the same work by hand (each taken inside a round)."""
    name = {"fastapi": "FastAPI", "litestar": "Litestar"}[srv.framework]
    base = srv.loads[BASELINE]
    measured = "server CPU" if all(x.cpu_us is not None for x in base) else "1 / req/s"
    print(
        f"\n## web, {name} {_version(srv.framework)}, {SHAPES[srv.shape]}: "
        f"POST → send Add (1 scoped dependency) → JSON"
    )
    print(f"target: FromDockyard[ISender] ≤ {TARGET:.2f}× bare app.send ({measured} per request)")
    print(f"load: {generator}, {ROUNDS} interleaved rounds × {SECONDS} s per endpoint")
    width = max(len(label) for _, label in endpoints(srv.framework))
    print(
        f"{'contender'.ljust(width)}  {'req/s':>6}  {'p50':>7}  {'p99':>7}  {'µs/req':>6}  "
        f"{'× bare':>6}  {'Δ µs':>6}  {'req/s ×':>7}  rounds' × bare"
    )
    medians: dict[str, tuple[float, float]] = {}
    for path, label in endpoints(srv.framework):
        loads = srv.loads[path]
        pairs = list(zip(base, loads, strict=True))
        ratios = [_cost(x) / _cost(b) for b, x in pairs]
        if path in INTEGRATIONS:
            hand = [_cost(x) / _cost(h) for h, x in zip(srv.loads[BY_HAND], loads, strict=True)]
            medians[path] = (statistics.median(ratios), statistics.median(hand))
        errors = sum(x.errors for x in loads)
        print(
            f"{label.ljust(width)}  {statistics.median(x.requests_per_s for x in loads):>6.0f}  "
            f"{statistics.median(x.p50_ms for x in loads):>5.2f}ms  "
            f"{statistics.median(x.p99_ms for x in loads):>5.1f}ms  "
            f"{statistics.median(_cost(x) for x in loads):>6.1f}  "
            f"{statistics.median(ratios):>5.3f}×  "
            f"{statistics.median(_cost(x) - _cost(b) for b, x in pairs):>+6.1f}  "
            f"{statistics.median(b.requests_per_s / x.requests_per_s for b, x in pairs):>6.2f}×  "
            f"{' '.join(f'{r:.2f}' for r in ratios)}" + (f"  ({errors} errors!)" if errors else "")
        )
    return medians


async def main() -> None:
    wrk = shutil.which("wrk")
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    generator = (
        f"wrk, 1 thread, {CONNECTIONS} connections"
        if wrk
        else f"asyncio client in the bench process (no wrk on PATH), {CONNECTIONS} connections"
    )
    generator += f"; uvicorn {_version('uvicorn')} ({http}, {loop}), 1 process"
    summary: list[tuple[str, dict[str, tuple[float, float]], dict[str, tuple[float, float]]]] = []
    specs = [tuple(spec.strip().split(":")) for spec in SERVERS.split(",")]
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-web-") as folder:
        in_process_ratios = [
            await in_process(framework, shape, Path(folder)) for framework, shape in specs
        ]
        script = Path(folder) / "post.lua"
        script.write_text(_WRK_SCRIPT)
        for framework, shape in specs:
            with server(framework, shape, Path(folder)) as srv:
                await wait_ready(srv)
                await measure(srv, wrk, script)
            served = report(srv, generator)
            summary.append((f"{framework}, {SHAPES[shape]}", in_process_ratios.pop(0), served))
    print(f"\nthe integration over bare app.send (target ≤ {TARGET:.2f}×):")
    row = dict(ENDPOINTS)
    for label, alone, served in summary:
        for path in INTEGRATIONS:
            if path not in served:
                continue
            (bare_alone, hand_alone), (bare_served, hand_served) = alone[path], served[path]
            verdicts = ["ok" if r <= TARGET else "over" for r in (bare_alone, bare_served)]
            print(
                f"  {label}, {row[path]}: in process {bare_alone:.3f}× ({verdicts[0]}; "
                f"{hand_alone:.3f}× by hand), uvicorn {bare_served:.3f}× ({verdicts[1]}; "
                f"{hand_served:.3f}× by hand)"
            )


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        asyncio.run(main())
