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

from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.providers.events import End, EventStream, Finish, Frame, Start, TextDelta, ToolCallDelta, Usage

WIRE = "openai"
DONE = b"data: [DONE]\n\n"
HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def sse(stream: EventStream, model: str, include_usage: bool) -> AsyncIterator[bytes]:
    """The SSE bytes of `stream` for an OpenAI client; closing this closes the stream."""
    events = stream.events
    native = stream.wire == WIRE
    base: dict[str, Any] = {"id": "chatcmpl-gateway", "object": "chat.completion.chunk", "created": 0, "model": model}
    try:
        async for event in events:
            if isinstance(event, Frame):
                if native:
                    yield event.data
            elif isinstance(event, End):
                yield DONE if event.complete else error_frame(event)
                return
            elif native:
                continue
            elif isinstance(event, TextDelta):
                yield _chunk(base, event.choice, {event.field: event.text})
            elif isinstance(event, ToolCallDelta):
                yield _chunk(base, event.choice, {"tool_calls": [_tool_call(event)]})
            elif isinstance(event, Finish):
                yield _frame({**base, "choices": [{"index": event.choice, "delta": {}, "finish_reason": event.reason}]})
            elif isinstance(event, Usage):
                if include_usage:
                    yield _frame({**base, "choices": [], "usage": event.usage})
            elif isinstance(event, Start):
                base = {**base, "id": event.id, "created": event.created, "model": event.model}
                yield _chunk(base, 0, {"role": "assistant", "content": ""})
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


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
