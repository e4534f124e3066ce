"""Stream framings: turning an upstream body's lines into (event name, payload) pairs.

A pack names its framing; the code for each lives here, once, for every provider:
- `sse`: Server-Sent Events. `event:` names the event, `data:` lines (joined) carry the
  payload, a blank line ends an event; `:` comments (keep-alives) and `id:`/`retry:`
  fields are ignored. Events separated by `\\r\\n\\r\\n` (Gemini) read the same way.
- `ndjson`: one JSON document per line, no names (Ollama).
- `aws-eventstream`: AWS's binary frames (Bedrock's ConverseStream), each a length-prefixed
  message with typed headers and two CRC32 checksums, decoded by botocore's own parser. An
  event is named by its `:event-type` header; an exception frame is the event `error`,
  its payload `{"message", "type"}`. Its input is the body's raw chunks, not lines.

The input is the line iterator from `gateway.providers.upstream.lines`, already split and with
line endings removed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

Event = tuple[str | None, bytes]


async def sse_events(lines: AsyncIterator[bytes]) -> AsyncIterator[Event]:
    name: str | None = None
    data: list[bytes] = []
    async for line in lines:
        if not line:
            if data:
                yield name, b"\n".join(data)
            name, data = None, []
            continue
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace") or None
        # `:` comments, `id:` and `retry:` carry nothing a pack needs
    if data:
        yield name, b"\n".join(data)


async def ndjson_events(lines: AsyncIterator[bytes]) -> AsyncIterator[Event]:
    async for line in lines:
        if line.strip():
            yield None, line


async def aws_eventstream_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[Event]:
    """Decode AWS event-stream frames as they arrive; a frame that fails its checksum or
    stops half-way is a broken stream (ValueError), never a quietly shorter answer."""
    from botocore.eventstream import EventStreamBuffer, ParserError

    buffer = EventStreamBuffer()
    async for data in chunks:
        buffer.add_data(data)
        try:
            messages = list(buffer)
        except ParserError as exc:
            raise ValueError(f"malformed AWS event-stream frame ({type(exc).__name__})") from None
        for message in messages:
            headers = message.headers
            kind = headers.get(":message-type", "event")
            if kind == "event":
                yield headers.get(":event-type"), message.payload
            else:  # exception | error: the provider failed after its 200
                name = headers.get(":exception-type") or headers.get(":error-code") or "error"
                text = message.payload.decode("utf-8", "replace")
                try:
                    detail = json.loads(text).get("message", text)
                except (ValueError, AttributeError):
                    detail = text
                yield "error", json.dumps({"message": detail, "type": name}).encode()
    if getattr(buffer, "_data", b""):
        raise ValueError("the AWS event-stream ended inside a frame")


FRAMINGS: dict[str, Callable[[AsyncIterator[bytes]], AsyncIterator[Event]]] = {
    "sse": sse_events,
    "ndjson": ndjson_events,
    "aws-eventstream": aws_eventstream_events,
}
