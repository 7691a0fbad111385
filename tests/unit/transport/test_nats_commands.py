"""``NatsTransport.publish_many`` writes the ``HPUB`` command nats-py's ``publish`` writes."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("nats")

from nats.aio.client import Client
from nats.errors import BadHeaderError, MaxPayloadError

from dockyard.transport import TransportMessage
from dockyard.transport.nats import _hpub

header_names = st.text(st.characters(codec="ascii"), max_size=12)


async def written_by_nats_py(
    subject: str, reply: str, payload: bytes, headers: dict[str, str]
) -> bytes:
    written: list[bytes] = []
    client = Client()

    async def capture(command: bytes, priority: bool = False) -> None:
        written.append(command)

    client._send_command = capture  # type: ignore[method-assign,assignment]
    await client._send_publish(subject, reply, payload, len(payload), headers)
    return b"".join(written)


@settings(max_examples=60, deadline=None)
@given(
    headers=st.dictionaries(header_names, st.text(max_size=20), max_size=5),
    payload=st.binary(max_size=40),
    key=st.none() | st.text(max_size=10),
)
def test_the_command_is_nats_pys_or_its_error(
    headers: dict[str, str], payload: bytes, key: str | None
) -> None:
    message = TransportMessage(
        "m-1", "orders", "Placed", payload, headers=headers, partition_key=key
    )
    ours = _hpub("orders", "_INBOX.x.7", "orders", message, 1_000)
    sent = dict(headers)
    sent.update({"message-id": "m-1", "message-type": "Placed", "schema-version": "1"})
    if key is not None:
        sent["partition-key"] = key
    sent.update({"Nats-Msg-Id": "m-1", "Nats-Expected-Stream": "orders"})
    try:
        expected = asyncio.run(written_by_nats_py("orders", "_INBOX.x.7", payload, sent))
    except BadHeaderError:
        assert isinstance(ours, BadHeaderError)
    else:
        assert ours == expected


def test_a_payload_over_the_servers_limit_is_refused() -> None:
    message = TransportMessage("m-1", "orders", "Placed", b"x" * 11)
    assert isinstance(_hpub("orders", "r", "orders", message, 10), MaxPayloadError)
