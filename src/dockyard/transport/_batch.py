"""``publish_in_waves``: the semantics of ``publish_many``, shared by every transport.

A batch is cut into waves: wave *i* holds the *i*-th message of each partition key (and wave
0 every message without a key). A wave is published at once and its confirms awaited
together; the next wave then goes out without the keys that failed. So messages of one key
are accepted in order, a failed message holds back the rest of its key, and different keys
never wait for each other beyond one wave. Relay batches rarely hold more than a few
messages of one key, so most batches are one or two waves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from dockyard.transport._port import BatchPublishError, TransportMessage

__all__ = ["UNSETTLED", "PublishWave", "WaveOutcomes", "publish_in_waves", "waves"]

PublishWave = Callable[[Sequence[TransportMessage]], Awaitable[Sequence[BaseException | None]]]
"""Publish one wave; one outcome per message, in order: ``None`` (accepted) or the error."""


def waves(messages: Sequence[TransportMessage]) -> list[list[TransportMessage]]:
    """``messages`` cut into waves (see the module docstring), each in the given order."""
    result: list[list[TransportMessage]] = [[]]
    depth: dict[str, int] = {}
    for message in messages:
        key = message.partition_key
        if key is None:
            result[0].append(message)
            continue
        level = depth.get(key, 0)
        depth[key] = level + 1
        if level == len(result):
            result.append([])
        result[level].append(message)
    return result


async def publish_in_waves(
    transport: str, messages: Sequence[TransportMessage], publish_wave: PublishWave
) -> int:
    """Publish ``messages`` wave by wave; return how many were accepted.

    Raises:
        BatchPublishError: Some messages were not accepted (they, and the later messages of
            their keys, are named); all the others were.
    """
    failed: dict[str, BaseException] = {}
    stopped: set[str] = set()
    held_back: list[str] = []
    accepted = 0
    for wave in waves(messages):
        todo = wave
        if stopped:
            todo = []
            for message in wave:
                if message.partition_key in stopped:
                    held_back.append(message.message_id)
                else:
                    todo.append(message)
        if not todo:
            continue
        outcomes = await publish_wave(todo)
        for message, outcome in zip(todo, outcomes, strict=True):
            if outcome is None:
                accepted += 1
                continue
            failed[message.message_id] = outcome
            if message.partition_key is not None:
                stopped.add(message.partition_key)
    if failed:
        raise BatchPublishError(transport, failed, held_back)
    return accepted


UNSETTLED: Any = object()
"""An outcome of ``WaveOutcomes`` that no confirm, refusal or error has reached yet."""


class WaveOutcomes:
    """The broker's answers to one wave: an outcome per message and one future for them all.

    A future per message (with its done callbacks, and a gather over them) costs more CPU
    than the publish itself on a relay batch; a broker transport settles slots here instead,
    and the future completes when the last one is settled.
    """

    __slots__ = ("future", "outcomes", "unsettled")

    def __init__(self, size: int, future: asyncio.Future[None]) -> None:
        self.outcomes: list[Any] = [UNSETTLED] * size
        self.unsettled = size
        self.future = future
        if size == 0:
            future.set_result(None)

    def settle(self, index: int, outcome: object) -> None:
        """Record message ``index``'s outcome; the first one counts, later ones are ignored."""
        if self.outcomes[index] is not UNSETTLED or self.future.done():
            return
        self.outcomes[index] = outcome
        self.unsettled -= 1
        if self.unsettled == 0:
            self.future.set_result(None)
