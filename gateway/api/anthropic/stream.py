"""A stream of events, written as Anthropic's Messages event stream.

When the upstream is Anthropic itself and was sent the client's own body, its events
(the stream's frames) go out as they came. Otherwise the typed events become what an
Anthropic client expects, in order: `message_start`, for each content block
`content_block_start` / `content_block_delta` (`text_delta`, `input_json_delta`) /
`content_block_stop`, then `message_delta` with the stop reason and usage, then
`message_stop`.

With `thinking` asked for, a chat target's reasoning text is a `thinking` block
(`thinking_delta`s, then a `signature_delta` with the gateway's mark before it stops).
Tool calls carry their own index and never interleave with text; Anthropic numbers
every block, text included. The stop reason and usage arrive as separate events, so
both are held until the stream ends. A stream whose `End` is not complete ends with
`event: error`, never a clean `message_stop`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson

from gateway.api.anthropic.shape import (
    ERROR_TYPES,
    GATEWAY_SIGNATURE,
    message_id,
    stop_reason,
    usage_of,
)
from gateway.api.sse import write
from gateway.ids import short_id
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
from gateway.providers.tokens import CHARS_PER_TOKEN

WIRE = "anthropic"
KNOWN_ERROR_TYPES = frozenset(ERROR_TYPES.values()) | {"api_error"}


def event_frame(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class MessageEvents:
    """The state of one translated stream: the open block, each tool call's block, and what is held."""

    def __init__(self, model: str, input_estimate: int, thinking: bool = False) -> None:
        self.model = model
        self.input_estimate = input_estimate
        self.thinking = thinking  # the client asked for thinking: reasoning text is shown
        self.started = False
        self.blocks = 0  # content blocks opened so far; the next one gets this index
        self.open: int | None = None  # the index of the block now open
        self.open_kind = ""
        self.tool_blocks: dict[int, int] = {}  # OpenAI tool-call index -> block index
        self.tool_ids: dict[int, str] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.output_chars = 0

    def start(self) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        message = {
            "id": message_id(), "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": self.input_estimate, "output_tokens": 0},
        }
        return [event_frame("message_start", {"type": "message_start", "message": message})]

    def text(self, event: TextDelta) -> list[bytes]:
        if event.choice != 0:
            return []  # Anthropic answers with one message; n > 1 has no place in it
        if event.field == "reasoning_content":
            return self._thought(event.text) if self.thinking else []
        out = self.start()
        if self.open_kind != "text":
            out.extend(self._open("text", {"type": "text", "text": ""}))
        self.output_chars += len(event.text)
        out.append(self._block_delta(self.open, {"type": "text_delta", "text": event.text}))  # type: ignore[arg-type]
        return out

    def _thought(self, text: str) -> list[bytes]:
        out = self.start()
        if self.open_kind != "thinking":
            out.extend(self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""}))
        self.output_chars += len(text)
        out.append(self._block_delta(self.open, {"type": "thinking_delta", "thinking": text}))  # type: ignore[arg-type]
        return out

    def tool_call(self, event: ToolCallDelta) -> list[bytes]:
        if event.choice != 0:
            return []
        out = self.start()
        position = event.index
        is_new = position not in self.tool_blocks or (event.id is not None and event.id != self.tool_ids[position])
        if is_new:
            call_id = event.id or short_id("toolu_")
            block = {"type": "tool_use", "id": call_id, "name": event.name or "", "input": {}}
            out.extend(self._open("tool_use", block))
            self.tool_blocks[position] = self.open  # type: ignore[assignment]
            self.tool_ids[position] = call_id
        if event.arguments:
            self.output_chars += len(event.arguments)
            delta = {"type": "input_json_delta", "partial_json": event.arguments}
            out.append(self._block_delta(self.tool_blocks[position], delta))
        return out

    def _open(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        out = self._close()
        self.open, self.open_kind = self.blocks, kind
        self.blocks += 1
        out.append(event_frame("content_block_start", {"type": "content_block_start", "index": self.open, "content_block": block}))
        return out

    def _close(self) -> list[bytes]:
        if self.open is None:
            return []
        index, kind = self.open, self.open_kind
        self.open, self.open_kind = None, ""
        out = []
        if kind == "thinking":
            out.append(self._block_delta(index, {"type": "signature_delta", "signature": GATEWAY_SIGNATURE}))
        out.append(event_frame("content_block_stop", {"type": "content_block_stop", "index": index}))
        return out

    @staticmethod
    def _block_delta(index: int, delta: dict[str, Any]) -> bytes:
        return event_frame("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def finish(self) -> list[bytes]:
        out = self.start() + self._close()
        if self.usage is not None:
            usage = usage_of(self.usage)
        else:  # an upstream that reports no usage: say what we can estimate
            usage = {"input_tokens": self.input_estimate, "output_tokens": -(-self.output_chars // CHARS_PER_TOKEN)}
        reason = stop_reason(self.finish_reason, bool(self.tool_blocks))
        out.append(event_frame("message_delta", {
            "type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": None}, "usage": usage,
        }))
        out.append(event_frame("message_stop", {"type": "message_stop"}))
        return out

    def event(self, event: Event) -> Iterable[bytes]:
        if isinstance(event, TextDelta):
            return self.text(event)
        if isinstance(event, ToolCallDelta):
            return self.tool_call(event)
        if isinstance(event, Finish):
            if event.choice == 0:
                self.finish_reason = event.reason
        elif isinstance(event, Usage):
            self.usage = event.usage
        elif isinstance(event, Start):
            if not self.started:
                self.model = event.model or self.model
            return self.start()
        return ()

    def end(self, end: End, native: bool) -> Iterable[bytes]:
        if not end.complete:
            return (self.error(end.error),)
        if native:  # the provider's events went out as they came: only the end is ours
            return (event_frame("message_stop", {"type": "message_stop"}),)
        return self.finish()

    @staticmethod
    def error(error: Any) -> bytes:
        error = error if isinstance(error, dict) else {"message": str(error)}
        kind = error.get("type")
        detail: dict[str, Any] = {
            "type": kind if kind in KNOWN_ERROR_TYPES else "api_error",
            "message": str(error.get("message") or "the answer was interrupted"),
        }
        if error.get("code"):
            detail["code"] = error["code"]
        return event_frame("error", {"type": "error", "error": detail})


def anthropic_sse(stream: EventStream, state: MessageEvents) -> AsyncIterator[bytes]:
    """The Messages event stream of `stream` for an Anthropic client; closing this closes the stream."""
    return write(stream, WIRE, state)
