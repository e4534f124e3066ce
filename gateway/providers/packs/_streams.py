"""Reading a streamed answer: upstream events in, typed events out.

Two readers: OpenAI-shaped SSE read line by line (the pass-through hot path, where only
the chunks Azure adds without content may be dropped), and translated streams, where the
pack's framing yields events and each event's template outputs zero or more chunks with
the stream's `state`. A translated stream must reach its end (the `done` payload or
`state.finish()`); one that closes earlier was cut and fails, never ends quietly.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.config.snapshot import Target
from gateway.ids import random_hex
from gateway.providers.events import (
    COMPLETE,
    End,
    Event,
    Frame,
    Start,
    chunk_events,
    start_of,
)
from gateway.providers.packs._framing import FRAMINGS
from gateway.providers.packs._helpers import StreamState
from gateway.providers.packs._templates import (
    RENDER_ERRORS,
    TextTemplate,
    ValueTemplate,
)
from gateway.providers.packs._values import (
    answer_value,
    decode_event,
    openai_failure,
    reason,
)
from gateway.providers.packs.wire import UpstreamFailure, bad_upstream_body, stream_cut

Headers = tuple[tuple[str, TextTemplate], ...]


@dataclass(frozen=True, slots=True)
class CompiledStream:
    url: TextTemplate | None
    query: Headers
    framing: str
    done: bytes | None
    skip_empty_chunks: bool
    events: Mapping[str, ValueTemplate]
    end: ValueTemplate | None


OPENAI_STREAM = CompiledStream(None, (), "sse", b"[DONE]", False, {}, None)
END_COMPLETE = End(COMPLETE)


async def openai_events(
    target: Target, spec: CompiledStream, lines: AsyncIterator[bytes], frames: bool
) -> AsyncIterator[Event]:
    """An OpenAI-shaped SSE stream, read line by line: the pass-through hot path.

    With `frames`, each chunk's own line is kept as a `Frame` for an OpenAI client.
    """
    started = False
    out: list[Event] = []
    async for line in lines:
        if not line.startswith(b"data:"):
            continue  # blank separators, `event:` lines and `: keep-alive` comments
        payload = line[5:].strip()
        if payload == spec.done:
            yield END_COMPLETE
            return
        event = decode_event(target, payload)
        if spec.skip_empty_chunks and empty_chunk(event):
            continue
        chunk = openai_chunk(target, event)
        if not started:
            started = True
            out.append(start_of(chunk, target.model))
        if frames:
            out.append(Frame(line + b"\n\n"))
        chunk_events(chunk, out)
        for item in out:
            yield item
        out.clear()
    if spec.done is not None:
        raise stream_cut(target, f"a stream that ended without {spec.done.decode()}")
    yield END_COMPLETE


def empty_chunk(event: Any) -> bool:
    """A chunk that says nothing: no choice with a delta or a finish, no usage, no error
    (Azure's content-filter annotations before and after the answer)."""
    if not isinstance(event, dict) or event.get("usage") or "error" in event:
        return False
    return all(not c.get("delta") and c.get("finish_reason") is None for c in event.get("choices") or () if isinstance(c, dict))


def openai_chunk(target: Target, event: Any) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise bad_upstream_body(target, "a stream event that is not a JSON object")
    if "error" in event:
        raise openai_failure(event, 502)
    return event


async def translated_events(
    target: Target, spec: CompiledStream, variables: dict[str, Any], state: StreamState,
    lines: AsyncIterator[bytes], frames: bool,
) -> AsyncIterator[Event]:
    """Each upstream event through its template; `variables` is the stream's scope.

    With `frames` (the client speaks this provider's own API), each upstream event is
    also kept as a `Frame`, except the one that ends the stream: the client's writer
    writes its own end.
    """
    start = Start("chatcmpl-" + random_hex(), target.model, int(time.time()))
    started = False
    complete = False
    out: list[Event] = []
    async for name, payload in FRAMINGS[spec.framing](lines):
        if spec.done is not None and payload.strip() == spec.done:
            complete = True
            break
        event = decode_event(target, payload)
        if not spec.events:
            values = [openai_chunk(target, event)]
        else:
            template = spec.events.get(name) if name is not None else None
            if template is None:
                template = spec.events.get("default")
            if template is None:
                values = []  # an event the pack has nothing to say about (ping, citations, ...)
            else:
                variables["event"] = event
                variables["event_name"] = name
                values = event_values(target, template, variables)
        if not started:
            started = True
            out.append(start)
        if frames and not state.finished:
            out.append(Frame(_sse_frame(name, payload)))
        for value in values:
            chunk_events(value, out)
        for item in out:
            yield item
        out.clear()
    else:
        if spec.end is not None:
            variables["event"] = None
            variables["event_name"] = None
            for value in event_values(target, spec.end, variables):
                chunk_events(value, out)
            if out and not started:
                out.insert(0, start)
            for item in out:
                yield item
    if not complete and not state.finished and (spec.done is not None or spec.events):
        raise stream_cut(target, "a stream that ended before its last event")
    yield END_COMPLETE


def _sse_frame(name: str | None, payload: bytes) -> bytes:
    head = b"event: " + name.encode() + b"\n" if name else b""
    return head + b"data: " + payload + b"\n\n"


def event_values(target: Target, template: ValueTemplate, variables: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        values = [answer_value(v) for v in template.render(variables)]
    except UpstreamFailure:
        raise
    except RENDER_ERRORS as exc:
        raise bad_upstream_body(target, f"a stream event the pack could not read ({reason(exc)})") from None
    out = []
    for value in values:
        if value is None or value == "":
            continue
        if not isinstance(value, dict):
            raise bad_upstream_body(target, "a stream event the pack turned into something other than a chunk")
        if "error" in value:
            raise openai_failure(value, int(value.get("status") or 502))
        out.append(value)
    return out
