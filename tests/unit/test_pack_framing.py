"""Stream framings split upstream bodies into events the way each provider writes them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from gateway.providers.packs._framing import ndjson_events, sse_events


async def _lines(raw: bytes) -> AsyncIterator[bytes]:
    for line in raw.split(b"\n"):
        yield line.rstrip(b"\r")


def events(framing, raw: bytes) -> list[tuple[str | None, bytes]]:
    async def collect():
        return [e async for e in framing(_lines(raw))]
    return asyncio.run(collect())


def test_sse_named_events_comments_and_multiline_data():
    raw = (b": keep-alive\n\nevent: ping\ndata: {}\n\nid: 7\nevent: message_delta\ndata: {\"a\":\ndata: 1}\n\n"
           b"data:{\"no\":\"space\"}\n\n")
    assert events(sse_events, raw) == [("ping", b"{}"), ("message_delta", b'{"a":\n1}'), (None, b'{"no":"space"}')]


def test_sse_with_crlf_separators_and_no_trailing_blank_line():
    raw = b"data: {\"x\": 1}\r\n\r\ndata: {\"x\": 2}"
    assert events(sse_events, raw) == [(None, b'{"x": 1}'), (None, b'{"x": 2}')]


def test_ndjson_skips_blank_lines():
    assert events(ndjson_events, b'{"a":1}\n\n{"b":2}\n') == [(None, b'{"a":1}'), (None, b'{"b":2}')]
