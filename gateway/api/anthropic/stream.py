"""An OpenAI chunk stream, written as Anthropic's Messages event stream.

The request path streams OpenAI's SSE frames whatever provider answered; this turns
them into the events an Anthropic client expects, in order: `message_start`, for each
content block `content_block_start` / `content_block_delta` (`text_delta`,
`input_json_delta`) / `content_block_stop`, then `message_delta` with the stop reason
and usage, then `message_stop`.

OpenAI counts tool calls by their own index and interleaves nothing with text; Anthropic
numbers every block, text included. The stop reason and usage arrive in separate
chunks, so both are held until the stream ends. A failure after the first byte (the
request path's `data: {"error": ...}` frame, or a stream that stops without `[DONE]`)
becomes `event: error`, never a clean `message_stop`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.api.anthropic.shape import ERROR_TYPES, message_id, stop_reason, usage_of
from gateway.providers.tokens import CHARS_PER_TOKEN

KNOWN_ERROR_TYPES = frozenset(ERROR_TYPES.values()) | {"api_error"}


def event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class MessageEvents:
    """The state of one translated stream: the open block, each tool call's block, and what is held."""

    def __init__(self, model: str, input_estimate: int) -> None:
        self.model = model
        self.input_estimate = input_estimate
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
        return [event("message_start", {"type": "message_start", "message": message})]

    def chunk(self, chunk: dict[str, Any]) -> list[bytes]:
        if not self.started and isinstance(chunk.get("model"), str) and chunk["model"]:
            self.model = chunk["model"]
        out = self.start()
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # Anthropic answers with one message; n > 1 has no place in it
            delta = choice.get("delta")
            if isinstance(delta, dict):
                out.extend(self._delta(delta))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return out

    def _delta(self, delta: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        for field in ("content", "refusal"):
            text = delta.get(field)
            if isinstance(text, str) and text:
                if self.open_kind != "text":
                    out.extend(self._open("text", {"type": "text", "text": ""}))
                self.output_chars += len(text)
                out.append(self._block_delta(self.open, {"type": "text_delta", "text": text}))  # type: ignore[arg-type]
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                out.extend(self._tool_call(call))
        return out

    def _tool_call(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        position = call.get("index") if isinstance(call.get("index"), int) else len(self.tool_blocks)
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        call_id = call.get("id")
        is_new = position not in self.tool_blocks or (isinstance(call_id, str) and call_id and call_id != self.tool_ids[position])
        if is_new:
            call_id = call_id if isinstance(call_id, str) and call_id else f"toolu_{uuid.uuid4().hex[:24]}"
            block = {"type": "tool_use", "id": call_id, "name": function.get("name") or "", "input": {}}
            out.extend(self._open("tool_use", block))
            self.tool_blocks[position] = self.open  # type: ignore[assignment]
            self.tool_ids[position] = call_id
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            self.output_chars += len(arguments)
            out.append(self._block_delta(self.tool_blocks[position], {"type": "input_json_delta", "partial_json": arguments}))
        return out

    def _open(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        out = self._close()
        self.open, self.open_kind = self.blocks, kind
        self.blocks += 1
        out.append(event("content_block_start", {"type": "content_block_start", "index": self.open, "content_block": block}))
        return out

    def _close(self) -> list[bytes]:
        if self.open is None:
            return []
        index, self.open, self.open_kind = self.open, None, ""
        return [event("content_block_stop", {"type": "content_block_stop", "index": index})]

    @staticmethod
    def _block_delta(index: int, delta: dict[str, Any]) -> bytes:
        return event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def finish(self) -> list[bytes]:
        out = self.start() + self._close()
        if self.usage is not None:
            usage = usage_of(self.usage)
        else:  # an upstream that reports no usage: say what we can estimate
            usage = {"input_tokens": self.input_estimate, "output_tokens": -(-self.output_chars // CHARS_PER_TOKEN)}
        reason = stop_reason(self.finish_reason, bool(self.tool_blocks))
        out.append(event("message_delta", {
            "type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": None}, "usage": usage,
        }))
        out.append(event("message_stop", {"type": "message_stop"}))
        return out

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
        return event("error", {"type": "error", "error": detail})


async def anthropic_events(frames: AsyncIterator[bytes], state: MessageEvents) -> AsyncIterator[bytes]:
    """Read OpenAI SSE frames, write Anthropic events; closing this closes the upstream stream."""
    buffer = b""
    try:
        async for piece in frames:
            buffer += piece
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                for line in frame.split(b"\n"):
                    if not line.startswith(b"data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        for out in state.finish():
                            yield out
                        return
                    data = orjson.loads(payload)
                    if not isinstance(data, dict) or "error" in data:
                        yield state.error(data.get("error") if isinstance(data, dict) else data)
                        return
                    for out in state.chunk(data):
                        yield out
        yield state.error({"message": "the upstream stream ended before the answer was complete"})
    finally:
        close = getattr(frames, "aclose", None)
        if close is not None:
            await close()
