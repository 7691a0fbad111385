"""Helpers of the two web integrations' own tests: one request through the ASGI call alone (no
server, and no client to add objects), and a scoped object that sees its scope end."""

import json
from collections.abc import AsyncGenerator, MutableMapping
from typing import Any


async def asgi_get(web: Any, path: str) -> tuple[int, Any]:
    """``GET path`` (a query string allowed); the status and the body (decoded if JSON)."""
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    route, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": route,
        "raw_path": route.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"test")],
        "client": ("127.0.0.1", 50000),
        "server": ("test", 80),
        "state": {},
    }
    await web(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent[1:])
    headers = dict(sent[0].get("headers", ()))
    if b"json" in headers.get(b"content-type", b""):
        return int(sent[0]["status"]), json.loads(body)
    return int(sent[0]["status"]), body.decode()


class Till:
    """A scoped object whose scope's end the test sees: committed, or rolled back."""


def till_of(ends: list[str]) -> Any:
    async def till() -> AsyncGenerator[Till, BaseException | None]:
        error = yield Till()  # Dishka sends the scope's error to its finalizers
        ends.append("rolled back" if error is not None else "committed")

    return till
