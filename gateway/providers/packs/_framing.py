"""Stream framings: turning an upstream body's lines into (event name, payload) pairs.

A pack names its framing; the code for each lives here, once, for every provider:
- `sse`: Server-Sent Events. `event:` names the event, `data:` lines (joined) carry the
  payload, a blank line ends an event; `:` comments (keep-alives) and `id:`/`retry:`
  fields are ignored. Events separated by `\\r\\n\\r\\n` (Gemini) read the same way.
- `ndjson`: one JSON document per line, no names (Ollama).

The input is the line iterator from `gateway.providers.upstream.lines`, already split and with
line endings removed.
"""

from __future__ import annotations

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


FRAMINGS: dict[str, Callable[[AsyncIterator[bytes]], AsyncIterator[Event]]] = {
    "sse": sse_events,
    "ndjson": ndjson_events,
}
