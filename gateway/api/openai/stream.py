"""Writing a stream of events as OpenAI's chat completion SSE stream.

When the upstream itself spoke OpenAI's stream, its own chunks (the stream's frames)
are sent as they came, so nothing a provider adds (logprobs, fingerprints, annotations)
is lost. Otherwise each event becomes a chunk: the role first, then content and
tool-call deltas, the finish reason, and usage when the client asked for it
(`stream_options.include_usage`). A complete stream ends with `[DONE]`; one that was
cut or failed ends with an error event in OpenAI's error shape and no `[DONE]`, so a
client can tell a cut answer from a complete one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson

from gateway.api.sse import HEADERS, write
from gateway.providers.events import (
    End,
    Event,
    EventStream,
    Finish,
    Start,
    TextDelta,
    ToolCallDelta,
    Usage,
)

__all__ = ["DONE", "HEADERS", "WIRE", "ChunkWriter", "error_frame", "sse"]

WIRE = "openai"
DONE = b"data: [DONE]\n\n"


def sse(stream: EventStream, model: str, include_usage: bool) -> AsyncIterator[bytes]:
    """The SSE bytes of `stream` for an OpenAI client; closing this closes the stream."""
    return write(stream, WIRE, ChunkWriter(model, include_usage))


class ChunkWriter:
    """Typed events as OpenAI chat completion chunks."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.base: dict[str, Any] = {"id": "chatcmpl-gateway", "object": "chat.completion.chunk", "created": 0,
                                     "model": model}
        self.include_usage = include_usage

    def event(self, event: Event) -> Iterable[bytes]:
        base = self.base
        if isinstance(event, TextDelta):
            return (_chunk(base, event.choice, {event.field: event.text}),)
        if isinstance(event, ToolCallDelta):
            return (_chunk(base, event.choice, {"tool_calls": [_tool_call(event)]}),)
        if isinstance(event, Finish):
            return (_frame({**base, "choices": [{"index": event.choice, "delta": {}, "finish_reason": event.reason}]}),)
        if isinstance(event, Usage):
            return (_frame({**base, "choices": [], "usage": event.usage}),) if self.include_usage else ()
        if isinstance(event, Start):
            self.base = {**base, "id": event.id, "created": event.created, "model": event.model}
            return (_chunk(self.base, 0, {"role": "assistant", "content": ""}),)
        return ()

    def end(self, end: End, native: bool) -> Iterable[bytes]:
        return (DONE if end.complete else error_frame(end),)


def error_frame(end: End) -> bytes:
    error = end.error or {}
    body = {"error": {
        "message": str(error.get("message") or "the answer was interrupted"),
        "type": error.get("type") or "upstream_error",
        "param": None,
        "code": error.get("code"),
    }}
    return _frame(body)


def _tool_call(event: ToolCallDelta) -> dict[str, Any]:
    call: dict[str, Any] = {"index": event.index}
    if event.id:
        call["id"] = event.id
        call["type"] = "function"
    function: dict[str, Any] = {"arguments": event.arguments}
    if event.name:
        function["name"] = event.name
    call["function"] = function
    return call


def _chunk(base: dict[str, Any], choice: int, delta: dict[str, Any]) -> bytes:
    return _frame({**base, "choices": [{"index": choice, "delta": delta, "finish_reason": None}]})


def _frame(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"
