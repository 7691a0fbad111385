"""``_amqp_frames`` encodes a publish's content header exactly as pamqp does, or declines."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("pamqp")

from pamqp.commands import Basic
from pamqp.common import FieldTable
from pamqp.frame import marshal
from pamqp.header import ContentHeader

from dockyard.transport._amqp_frames import FRAME_BODY, content_header_frame, frame

texts = st.text(max_size=40)
short_texts = st.text(max_size=300)  # past 255 bytes (pamqp refuses) now and then


Header = tuple[int, int, dict[str, str], str, str | None, str]
"""channel, body size, headers, message id, correlation id, message type"""


def pamqp_header(header: Header) -> bytes:
    channel, body_size, headers, message_id, correlation_id, message_type = header
    properties = Basic.Properties(
        headers=FieldTable(headers),
        message_id=message_id,
        correlation_id=correlation_id,
        message_type=message_type,
        delivery_mode=2,
    )
    return marshal(ContentHeader(properties=properties, body_size=body_size), channel)


headers_of = st.tuples(
    st.integers(1, 2047),
    st.integers(0, 2**40),
    st.dictionaries(st.text(max_size=140), texts, max_size=8),
    short_texts,
    st.none() | short_texts,
    short_texts,
)


@given(headers_of)
def test_the_content_header_is_pamqps_or_declined(header: Header) -> None:
    _, _, headers, message_id, correlation_id, message_type = header
    fast = content_header_frame(*header)
    shorts = [message_id, correlation_id or "", message_type]
    outside = any(len(k.encode()) > 128 for k in headers) or any(
        len(s.encode()) > 255 for s in shorts
    )
    if outside:
        assert fast is None
    else:
        assert fast == pamqp_header(header)


def test_a_typical_envelope_is_encoded_fast() -> None:
    headers = {
        "message-id": "m-1",
        "message-type": "OrderPlaced",
        "schema-version": "1",
        "partition-key": "order-7",
        "correlation-id": "c-1",
    }
    header: Header = (3, 17, headers, "m-1", "c-1", "OrderPlaced")
    fast = content_header_frame(*header)
    assert fast is not None
    assert fast == pamqp_header(header)


def test_a_header_value_that_is_not_text_is_left_to_pamqp() -> None:
    assert content_header_frame(1, 0, {"retries": 3}, "m-1", None, "T") is None


@given(channel=st.integers(1, 2047), body=st.binary(max_size=64))
def test_a_body_frame_is_pamqps(channel: int, body: bytes) -> None:
    from pamqp.body import ContentBody

    assert frame(FRAME_BODY, channel, body) == marshal(ContentBody(body), channel)
