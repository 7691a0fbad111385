"""What handlers and services inject to send and publish: ``ISender``, ``IPublisher``,
``IMessageBus``. Prefer the narrowest one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine, Mapping
from typing import Any, Protocol, TypeVar

from dockyard.messaging._messages import Request, StreamRequest

__all__ = ["IMessageBus", "IPublisher", "ISender"]

R = TypeVar("R")
T = TypeVar("T")


class ISender(Protocol):
    """Sends requests to their one handler, in the scope it was injected into.

    A send from inside a handler carries the handler's message as its cause.
    """

    def send(
        self,
        request: Request[R],
        /,
        *,
        message_id: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Coroutine[Any, Any, R]:
        """Run ``request`` through the pipeline to its handler; await it for the answer.

        ``await sender.send(cmd)`` gives an ``R``. (It is a plain method returning the
        coroutine, which saves a frame per call; to the caller it is like ``async def``.)

        Args:
            request: The command or query.
            message_id: Its id, when it comes with one (e.g. from a broker); else made lazily.
            correlation_id: The conversation id; by default the current message's, or this
                message's own id.
            causation_id: The id of the message that caused this one; by default the one
                being handled.
            headers: String headers, readable through ``MessageContext``.

        Raises:
            HandlerNotFoundError: No handler is registered for the request's type.
        """
        ...

    def stream(
        self,
        request: StreamRequest[T],
        /,
        *,
        message_id: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[T]:
        """Iterate over the items the stream handler yields for ``request``.

        Arguments are those of :meth:`send`.
        """
        ...


class IPublisher(Protocol):
    """Publishes events to every handler of their type and of its bases."""

    async def publish(
        self,
        event: object,
        /,
        *,
        message_id: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Deliver ``event`` to its handlers; with none, do nothing.

        Arguments are those of :meth:`ISender.send`.

        Raises:
            ExceptionGroup: With concurrent delivery, every handler's error together.
        """
        ...


class IMessageBus(ISender, IPublisher, Protocol):
    """Both ``ISender`` and ``IPublisher``."""
