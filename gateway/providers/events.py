"""The typed stream every streamed answer is read into, whatever provider sent it.

A pack turns the upstream's stream into these events, once: `Start` (with the first
upstream event), then text and tool-call deltas, finish reasons and usage, and
exactly one `End` that says whether the answer is complete, was cut (the connection
broke or the stream stopped early) or failed (the provider sent an error). Metering,
metrics, logs, traces and the cache read the events; only the front-end of the API the
client spoke turns them into bytes.

A stream whose wire format is the client's own API (an OpenAI client and an
OpenAI-compatible server; an Anthropic client and Anthropic) also carries the
upstream's own bytes as `Frame` events, so that front-end can forward them unchanged:
nothing a translation could lose is lost. Every other reader ignores frames. The end
of the stream is never a frame: the writer writes its own, from `End`.

Why not the provider's chunks themselves: they differ by provider, and a consumer that
reads bytes must guess where a stream ended; three guessed differently before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from gateway.values import value

COMPLETE = "complete"  # the provider's own end marker arrived
CUT = "cut"  # the stream stopped before its end: connection lost, timeout, closed early
FAILED = "failed"  # the provider reported an error in the stream


@value
class Start:
    """The answer's identity, sent along with the first upstream event."""

    id: str
    model: str
    created: int


@value
class TextDelta:
    text: str
    choice: int = 0
    field: str = "content"  # content | refusal | reasoning_content


@value
class ToolCallDelta:
    """A piece of one tool call; `id` and `name` come with its first piece."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    choice: int = 0


@value
class Finish:
    reason: str  # OpenAI's finish reasons: stop | length | tool_calls | content_filter
    choice: int = 0


@value
class Usage:
    usage: dict[str, Any]  # in OpenAI's terms: prompt_tokens, completion_tokens, total_tokens, details


@value
class Frame:
    """The upstream's own bytes for one event, for a writer of the stream's wire format."""

    data: bytes


@value
class End:
    status: str  # COMPLETE | CUT | FAILED
    error: dict[str, Any] | None = None  # {"message", "type", "code"} when not complete

    @property
    def complete(self) -> bool:
        return self.status == COMPLETE


Event = Start | TextDelta | ToolCallDelta | Finish | Usage | Frame | End


@dataclass(slots=True)
class EventStream:
    """A committed stream: its events, and the wire format its frames are in (None: no frames)."""

    events: AsyncIterator[Event]
    wire: str | None = None


def start_of(chunk: dict[str, Any], model: str) -> Start:
    """The `Start` of a stream whose first chunk is `chunk` (OpenAI's chunk shape)."""
    created = chunk.get("created")
    return Start(
        str(chunk.get("id") or "chatcmpl-gateway"),
        str(chunk.get("model") or model),
        created if isinstance(created, int) else 0,
    )


def chunk_events(chunk: dict[str, Any], out: list[Event]) -> None:
    """Append the events one chunk in OpenAI's shape says (what pack templates produce;
    a legacy text completion chunk's `text` reads as content)."""
    for choice in chunk.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        index = choice.get("index") or 0
        delta = choice.get("delta")
        if isinstance(delta, dict) and delta:
            for name in ("content", "refusal", "reasoning_content"):
                text = delta.get(name)
                if isinstance(text, str) and text:
                    out.append(TextDelta(text, index, name))
            calls = delta.get("tool_calls")
            if calls:
                _tool_call_events(calls, index, out)
        text = choice.get("text")  # a legacy text completion's chunk
        if isinstance(text, str) and text:
            out.append(TextDelta(text, index))
        reason = choice.get("finish_reason")
        if reason:
            out.append(Finish(str(reason), index))
    usage = chunk.get("usage")
    if isinstance(usage, dict) and usage:
        out.append(Usage(usage))


def _tool_call_events(calls: Any, choice: int, out: list[Event]) -> None:
    for position, call in enumerate(calls if isinstance(calls, list) else ()):
        if not isinstance(call, dict):
            continue
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        index = call.get("index")
        out.append(ToolCallDelta(
            index if isinstance(index, int) else position,
            call.get("id") or None,
            function.get("name") or None,
            function.get("arguments") or "",
            choice,
        ))


def text_chars(event: Event) -> int:
    """Characters of generated text an event carries (the estimate when no usage comes)."""
    if isinstance(event, TextDelta):
        return len(event.text)
    if isinstance(event, ToolCallDelta):
        return len(event.name or "") + len(event.arguments)
    return 0
