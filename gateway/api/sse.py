"""The loop every API's stream writer shares: frames, typed events, one end.

A stream whose frames are in the client's own wire format goes out as those frames;
any other is written from its typed events by the API's writer. Either way the stream's
`End` is the writer's to say (a complete end, or the API's own error event), and
closing the output closes the stream, so the upstream connection goes back at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Protocol

from gateway.providers.events import End, Event, EventStream, Frame

HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}  # no proxy buffering of a stream


class Writer(Protocol):
    def event(self, event: Event) -> Iterable[bytes]:
        """The bytes of one typed event (never a frame or the end) in the client's API."""

    def end(self, end: End, native: bool) -> Iterable[bytes]:
        """How the stream ends for the client; `native`: its frames went out as they came."""


async def write(stream: EventStream, wire: str, writer: Writer) -> AsyncIterator[bytes]:
    """The bytes of `stream` for a client whose API's wire format is `wire`."""
    events = stream.events
    native = stream.wire == wire
    try:
        async for event in events:
            if isinstance(event, Frame):
                if native:
                    yield event.data
            elif isinstance(event, End):
                for out in writer.end(event, native):
                    yield out
                return
            elif not native:
                for out in writer.event(event):
                    yield out
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
