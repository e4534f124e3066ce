"""Writing a stream of events as the Responses API's event stream.

Translated (any target answering in chat's shape): `response.created` and
`response.in_progress` first; reasoning text (`reasoning_content`) as a `reasoning` item
(`output_item.added`, `reasoning_text.delta` ..., `reasoning_text.done`,
`output_item.done`), closed when the answer itself starts; the answer's text as one `message` item
(`output_item.added`, `content_part.added`, `output_text.delta` ..., then
`output_text.done`, `content_part.done`, `output_item.done`); each tool call as a
`function_call` item (`output_item.added`, `function_call_arguments.delta` ...,
`.done`, `output_item.done`); then exactly one of `response.completed`,
`response.incomplete` (the answer hit its token ceiling or a content filter) or
`response.failed` (the stream was cut or the provider failed: never a silent end).
Every event carries a rising `sequence_number`.

Native (a target that speaks the Responses API): the upstream's events go out as they
came, except that those carrying the whole response are renamed to the gateway's id
and the client's alias. Either way the final response is kept for storing.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson

from gateway.api.openai.response_input import ResponsesCall, item_id
from gateway.api.openai.response_object import (
    call_item,
    envelope,
    finished,
    from_native,
    message_item,
    reasoning_item,
    text_part,
    usage_of,
)
from gateway.api.sse import write
from gateway.config.snapshot import RESPONSES_API
from gateway.providers.events import (
    End,
    Event,
    EventStream,
    Finish,
    Frame,
    Start,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from gateway.providers.tokens import CHARS_PER_TOKEN

# Upstream events that carry the whole response, which the client gets under the gateway's id.
_WHOLE = (b"response.created", b"response.in_progress", b"response.queued", b"response.completed",
          b"response.incomplete", b"response.failed")
_TERMINAL = (b"response.completed", b"response.incomplete", b"response.failed")


def frame(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


class _Call:
    """One function call being streamed: its item and where it sits in the output."""

    __slots__ = ("item", "index", "arguments")

    def __init__(self, item: dict[str, Any], index: int) -> None:
        self.item = item
        self.index = index
        self.arguments: list[str] = []


class ResponseEvents:
    """The state of one Responses stream: the sequence, the open items, and the final response."""

    def __init__(self, call: ResponsesCall, response_id: str) -> None:
        self.call = call
        self.response = envelope(call, response_id, int(time.time()), "in_progress")
        self.sequence = 0
        self.started = False
        self.output: list[dict[str, Any]] = []
        self.message: dict[str, Any] | None = None  # the message item being written
        self.message_index = 0
        self.reasoning: dict[str, Any] | None = None  # the reasoning item being written
        self.reasoning_index = 0
        self.thought: list[str] = []
        self.text: list[str] = []
        self.calls: dict[int, _Call] = {}  # chat tool-call index -> its item
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.final: dict[str, Any] | None = None  # the response as it ended, to store
        self.ended = False  # a terminal event went out (a native stream's own)

    def _emit(self, kind: str, **fields: Any) -> bytes:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return frame(event)

    def start(self) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        snapshot = dict(self.response)
        return [self._emit("response.created", response=snapshot), self._emit("response.in_progress", response=snapshot)]

    # ------------------------------------------------------------- translated

    def event(self, event: Event) -> Iterable[bytes]:
        if isinstance(event, TextDelta):
            if event.choice != 0:
                return ()
            if event.field == "reasoning_content":
                return self._reasoning(event.text)
            return self._text(event.text)
        if isinstance(event, ToolCallDelta):
            return self._tool_call(event) if event.choice == 0 else ()
        if isinstance(event, Finish):
            if event.choice == 0:
                self.finish_reason = event.reason
        elif isinstance(event, Usage):
            self.usage = event.usage
        elif isinstance(event, Start):
            return self.start()
        return ()

    def _reasoning(self, text: str) -> list[bytes]:
        out = self.start()
        if self.reasoning is None:
            self.reasoning = reasoning_item("", "in_progress")
            self.reasoning["content"] = []
            self.reasoning_index = len(self.output)
            self.output.append(self.reasoning)
            self.thought = []
            out.append(self._emit("response.output_item.added", output_index=self.reasoning_index,
                                  item=dict(self.reasoning)))
        self.thought.append(text)
        out.append(self._emit("response.reasoning_text.delta", item_id=self.reasoning["id"],
                              output_index=self.reasoning_index, content_index=0, delta=text))
        return out

    def _close_reasoning(self, status: str) -> list[bytes]:
        """The reasoning item ends where the answer starts (or the stream ends)."""
        item = self.reasoning
        if item is None:
            return []
        self.reasoning = None
        text = "".join(self.thought)
        item.update(status=status, content=[{"type": "reasoning_text", "text": text}])
        return [
            self._emit("response.reasoning_text.done", item_id=item["id"], output_index=self.reasoning_index,
                       content_index=0, text=text),
            self._emit("response.output_item.done", output_index=self.reasoning_index, item=item),
        ]

    def _text(self, text: str) -> list[bytes]:
        out = self.start()
        out.extend(self._close_reasoning("completed"))
        if self.message is None:
            out.extend(self._open_message())
        self.text.append(text)
        out.append(self._emit("response.output_text.delta", item_id=self.message["id"], output_index=self.message_index,
                              content_index=0, delta=text, logprobs=[]))
        return out

    def _open_message(self) -> list[bytes]:
        self.message = message_item("", "in_progress")
        self.message["content"] = []
        self.message_index = len(self.output)
        self.output.append(self.message)
        item = self.message["id"]
        return [
            self._emit("response.output_item.added", output_index=self.message_index, item=dict(self.message)),
            self._emit("response.content_part.added", item_id=item, output_index=self.message_index,
                       content_index=0, part=text_part("")),
        ]

    def _close_message(self, status: str) -> list[bytes]:
        message = self.message
        if message is None:
            return []
        self.message = None
        text = "".join(self.text)
        part = text_part(text)
        message.update(status=status, content=[part])
        index, item = self.message_index, message["id"]
        return [
            self._emit("response.output_text.done", item_id=item, output_index=index, content_index=0, text=text,
                       logprobs=[]),
            self._emit("response.content_part.done", item_id=item, output_index=index, content_index=0, part=part),
            self._emit("response.output_item.done", output_index=index, item=message),
        ]

    def _tool_call(self, event: ToolCallDelta) -> list[bytes]:
        out = self.start()
        call = self.calls.get(event.index)
        if call is None:
            out.extend(self._close_reasoning("completed"))
            out.extend(self._close_message("completed"))
            item = call_item(event.id or item_id("call"), event.name or "", "", "in_progress")
            call = self.calls[event.index] = _Call(item, len(self.output))
            self.output.append(item)
            out.append(self._emit("response.output_item.added", output_index=call.index, item=dict(item)))
        if event.arguments:
            call.arguments.append(event.arguments)
            out.append(self._emit("response.function_call_arguments.delta", item_id=call.item["id"],
                                  output_index=call.index, delta=event.arguments))
        return out

    def _close_calls(self, status: str) -> list[bytes]:
        out = []
        for call in self.calls.values():
            arguments = "".join(call.arguments)
            call.item.update(arguments=arguments, status=status)
            out.append(self._emit("response.function_call_arguments.done", item_id=call.item["id"],
                                  output_index=call.index, name=call.item["name"], arguments=arguments))
            out.append(self._emit("response.output_item.done", output_index=call.index, item=call.item))
        self.calls = {}
        return out

    def end(self, end: End, native: bool) -> Iterable[bytes]:
        if native:
            return () if self.ended else (self._failed(end),)
        out = self.start()
        status = "completed" if end.complete else "incomplete"
        out.extend(self._close_reasoning(status))
        if not any(item["type"] != "reasoning" for item in self.output) and end.complete:
            out.extend(self._open_message())  # an empty answer is still one (empty) message
        out.extend(self._close_message(status))
        out.extend(self._close_calls(status))
        response = self.response
        response["output"] = self.output
        estimate = (self.call.request.prompt_tokens, -(-len("".join(self.text)) // CHARS_PER_TOKEN))
        response["usage"] = usage_of(self.usage, estimate)
        if not end.complete:
            out.append(self._failed(end))
            return out
        finished(response, self.finish_reason)
        self.final = response
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        out.append(self._emit(kind, response=response))
        return out

    def whole(self, output: list[dict[str, Any]], usage: dict[str, Any]) -> list[bytes]:
        """The events of a response made whole before its stream starts (a compaction):
        each item added and done at once, then `response.completed`."""
        out = self.start()
        for index, item in enumerate(output):
            out.append(self._emit("response.output_item.added", output_index=index, item=item))
            out.append(self._emit("response.output_item.done", output_index=index, item=item))
        response = self.response
        response.update(output=output, usage=usage)
        self.final = finished(response, "stop")
        out.append(self._emit("response.completed", response=response))
        return out

    def _failed(self, end: End) -> bytes:
        """`response.failed`, with an error code the API lists (`server_error`)."""
        error = end.error if isinstance(end.error, dict) else {}
        response = self.response
        response.update(status="failed", completed_at=None, output=self.output,
                        error={"code": "server_error", "message": str(error.get("message") or "the answer was interrupted")})
        self.final = response
        return self._emit("response.failed", response=response)

    # ----------------------------------------------------------------- native

    def renamed(self, data: bytes) -> bytes:
        """An upstream event for the client: one carrying the whole response gets the
        gateway's id and the client's alias (and is kept, when it ends the stream)."""
        self._follow(data)
        head = data[7:data.index(b"\n")] if data.startswith(b"event: ") else b""
        if head not in _WHOLE:
            return data
        start = data.index(b"data: ") + 6
        event = orjson.loads(data[start:])
        response = from_native(self.call, self.response["id"], event.get("response") or {})
        event["response"] = response
        if head in _TERMINAL:
            self.ended = True
            self.final = response
        return frame(event)


    def _follow(self, data: bytes) -> None:
        """Keep the next sequence number above the upstream's, for an end of our own."""
        at = data.find(b'"sequence_number":')
        if at < 0:
            return
        digits = data[at + 18:at + 40].lstrip()
        end = 0
        while end < len(digits) and 48 <= digits[end] <= 57:
            end += 1
        if end:
            self.sequence = max(self.sequence, int(digits[:end]) + 1)


async def _renamed(events: AsyncIterator[Event], writer: ResponseEvents) -> AsyncIterator[Event]:
    async for event in events:
        yield Frame(writer.renamed(event.data)) if isinstance(event, Frame) else event


def responses_sse(stream: EventStream, writer: ResponseEvents) -> AsyncIterator[bytes]:
    """The Responses event stream of `stream`; closing this closes the stream."""
    if stream.wire == RESPONSES_API:
        stream = EventStream(_renamed(stream.events, writer), stream.wire)
    return write(stream, RESPONSES_API, writer)
