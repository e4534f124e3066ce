"""OpenAI's Responses API as an upstream speaks it: what the pipeline reads of its answers
and its event streams.

A target whose pack has a `responses` call is sent a Responses client's body as it is;
its answer and its events go back to that client in their own shape (the front-end only
renames the response). The pipeline still needs its own reading of them, the same as
for any other answer: a chat completion for accounting and the cache, and typed events
(text, tool calls, usage, one end) for metering and a stream's record. This module is
that reading; nothing here changes what the client receives.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from gateway.config.snapshot import Target
from gateway.providers.events import (
    COMPLETE,
    End,
    Event,
    Finish,
    Frame,
    Start,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from gateway.providers.packs._framing import sse_events
from gateway.providers.packs._values import decode_event, failure_from_value
from gateway.providers.packs.wire import bad_upstream_body, stream_cut

# The events that end a Responses stream, each carrying the whole response.
TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def chat_usage(usage: Any) -> dict[str, Any] | None:
    """A Responses `usage` in chat completion terms (what metering and the ledger read)."""
    if not isinstance(usage, dict):
        return None
    prompt = _int(usage.get("input_tokens"))
    completion = _int(usage.get("output_tokens"))
    out: dict[str, Any] = {
        "prompt_tokens": prompt, "completion_tokens": completion,
        "total_tokens": _int(usage.get("total_tokens")) or prompt + completion,
    }
    details = usage.get("input_tokens_details")
    if isinstance(details, dict) and details.get("cached_tokens"):
        out["prompt_tokens_details"] = {"cached_tokens": _int(details["cached_tokens"])}
    details = usage.get("output_tokens_details")
    if isinstance(details, dict) and details.get("reasoning_tokens"):
        out["completion_tokens_details"] = {"reasoning_tokens": _int(details["reasoning_tokens"])}
    return out


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def finish_reason(response: dict[str, Any], called: bool) -> str:
    """The chat finish reason a Response's status and output amount to."""
    if response.get("status") == "incomplete":
        details = response.get("incomplete_details")
        why = details.get("reason") if isinstance(details, dict) else None
        return "content_filter" if why == "content_filter" else "length"
    return "tool_calls" if called else "stop"


def chat_of_response(target: Target, data: Any) -> dict[str, Any]:
    """A Response object read as a chat completion: its text, its function calls, its usage."""
    if not isinstance(data, dict) or not isinstance(data.get("output"), list):
        raise bad_upstream_body(target, "a response without 'output'")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in data["output"]:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            for part in item.get("content") or ():
                if isinstance(part, dict) and part.get("type") == "output_text":
                    texts.append(str(part.get("text") or ""))
        elif item.get("type") == "function_call":
            calls.append({"id": item.get("call_id") or item.get("id"), "type": "function", "function": {
                "name": item.get("name") or "", "arguments": item.get("arguments") or ""}})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    out: dict[str, Any] = {
        "id": data.get("id"), "object": "chat.completion", "created": _int(data.get("created_at")) or int(time.time()),
        "model": data.get("model") or target.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(data, bool(calls))}],
    }
    usage = chat_usage(data.get("usage"))
    if usage is not None:
        out["usage"] = usage
    return out


async def response_events(target: Target, lines: AsyncIterator[bytes]) -> AsyncIterator[Event]:
    """A Responses event stream: every upstream event as a `Frame` (for the Responses
    client, who gets them as they came), with the typed events the pipeline reads.

    Unlike a chat stream, the event that ends it is a frame too (it carries the whole
    response, which the client's writer renames and sends); the `End` follows it. A
    `response.failed` or `error` event fails the stream after its frame; a stream that
    stops before a terminal event was cut.
    """
    started = False
    async for name, payload in sse_events(lines):
        event = decode_event(target, payload)
        if not isinstance(event, dict):
            raise bad_upstream_body(target, "a stream event that is not a JSON object")
        kind = str(event.get("type") or name or "")
        if not started:
            started = True
            yield _start(target, event)
        yield Frame(b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n")
        for typed in _typed(kind, event):
            yield typed
        if kind in TERMINAL:
            if kind == "response.failed":
                raise _failure(event.get("response", {}).get("error"))
            yield End(COMPLETE)
            return
        if kind == "error":
            raise _failure(event.get("error", event))
    raise stream_cut(target, "a stream that ended before response.completed")


def _start(target: Target, event: dict[str, Any]) -> Start:
    response = event.get("response") if isinstance(event.get("response"), dict) else {}
    return Start(str(response.get("id") or "resp_upstream"), str(response.get("model") or target.model),
                 _int(response.get("created_at")) or int(time.time()))


def _typed(kind: str, event: dict[str, Any]) -> list[Event]:
    """The typed events one Responses stream event says (function calls by output index)."""
    if kind == "response.output_text.delta":
        return [TextDelta(str(event.get("delta") or ""))]
    if kind == "response.output_item.added":
        item = event.get("item")
        if isinstance(item, dict) and item.get("type") == "function_call":
            return [ToolCallDelta(_int(event.get("output_index")), item.get("call_id"), item.get("name"))]
    elif kind == "response.function_call_arguments.delta":
        return [ToolCallDelta(_int(event.get("output_index")), arguments=str(event.get("delta") or ""))]
    elif kind in TERMINAL:
        response = event.get("response") if isinstance(event.get("response"), dict) else {}
        out: list[Event] = []
        called = any(isinstance(i, dict) and i.get("type") == "function_call" for i in response.get("output") or ())
        out.append(Finish(finish_reason(response, called)))
        usage = chat_usage(response.get("usage"))
        if usage is not None:
            out.append(Usage(usage))
        return out
    return []


def _failure(error: Any) -> Exception:
    error = error if isinstance(error, dict) else {}
    return failure_from_value({
        "message": str(error.get("message") or "the upstream response failed"),
        "type": "upstream_error", "code": error.get("code") or "server_error",
    }, 502)
