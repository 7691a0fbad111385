"""Compression of message payloads above a size (gzip, from the standard library).

The outbox compresses a payload over ``compress_above`` bytes and says so in the message's
``content-encoding`` header; consumers decompress what says ``gzip``, refusing more than
their ``max_payload`` once decompressed (a small message must not expand without bound).
"""

from __future__ import annotations

import zlib

__all__ = ["GZIP", "compress", "decompress"]

GZIP = "gzip"

_GZIP_WBITS = 16 + zlib.MAX_WBITS  # the gzip container, as HTTP's `Content-Encoding: gzip`
_LEVEL = 6  # zlib's default: most of level 9's ratio at a fraction of its time


def compress(data: bytes) -> bytes:
    """``data`` as a gzip stream."""
    compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
    return compressor.compress(data) + compressor.flush()


def decompress(data: bytes, encoding: str, limit: int) -> bytes:
    """The payload ``data`` decoded from ``encoding``, at most ``limit`` bytes.

    Raises:
        ValueError: an encoding other than gzip, a stream that is not gzip (or is cut short,
            or has bytes after its end), or more than ``limit`` bytes once decompressed.
    """
    if encoding != GZIP:
        raise ValueError(f"its `content-encoding` is `{encoding}`, and only gzip is understood")
    decompressor = zlib.decompressobj(_GZIP_WBITS)
    try:
        out = decompressor.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ValueError(f"its gzip payload does not decompress: {exc}") from exc
    if len(out) > limit:
        raise ValueError(f"its payload decompresses to over the endpoint's max_payload ({limit:,})")
    if not decompressor.eof:
        raise ValueError("its gzip payload is cut short")
    if decompressor.unused_data:
        raise ValueError("its gzip payload has bytes after the end of the stream")
    return out
