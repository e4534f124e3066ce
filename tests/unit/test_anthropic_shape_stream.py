"""Typed event streams written as Anthropic's event sequence (translated and native)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.api.anthropic.stream import MessageEvents, anthropic_sse
from gateway.providers.events import (
    COMPLETE,
    CUT,
    FAILED,
    End,
    Event,
    EventStream,
    Frame,
    Start,
    chunk_events,
)


def frames(*chunks: Any, done: bool = True, end: End | None = None) -> list[Event]:
    """The events a pack reads from these OpenAI-shaped chunks, ended as said."""
    out: list[Event] = [Start("chatcmpl-1", "up", 0)]
    for chunk in chunks:
        chunk_events(chunk, out)
    return out + [end or End(COMPLETE if done else CUT, None if done else {"message": "cut", "code": "stream_interrupted"})]


def delta(**fields: Any) -> dict[str, Any]:
    return {"model": "up", "choices": [{"index": 0, "delta": fields, "finish_reason": None}]}


def finish(reason: str) -> dict[str, Any]:
    return {"model": "up", "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}


async def translate(pieces: list[Event], wire: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    async def source() -> AsyncIterator[Event]:
        for piece in pieces:
            yield piece

    out = []
    async for raw in anthropic_sse(EventStream(source(), wire), MessageEvents("target-model", 12)):
        name_line, data_line = raw.decode().strip().split("\n")
        out.append((name_line.removeprefix("event: "), orjson.loads(data_line.removeprefix("data: "))))
    return out


async def test_text_then_two_tool_calls_get_their_own_block_indexes():
    events = await translate(frames(
        delta(role="assistant", content=""),
        delta(content="Let me "), delta(content="check."),
        delta(tool_calls=[{"index": 0, "id": "a", "type": "function", "function": {"name": "w", "arguments": ""}}]),
        delta(tool_calls=[{"index": 0, "function": {"arguments": '{"city":'}}]),
        delta(tool_calls=[{"index": 0, "function": {"arguments": '"Oslo"}'}}]),
        delta(tool_calls=[{"index": 1, "id": "b", "type": "function", "function": {"name": "w", "arguments": '{"city":"Rome"}'}}]),
        finish("tool_calls"),
        {"model": "up", "choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 9}},
    ))
    shape = [(name, data.get("index"), (data.get("delta") or data.get("content_block") or {}).get("type")) for name, data in events]
    assert shape == [
        ("message_start", None, None),
        ("content_block_start", 0, "text"),
        ("content_block_delta", 0, "text_delta"),
        ("content_block_delta", 0, "text_delta"),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, "tool_use"),
        ("content_block_delta", 1, "input_json_delta"),
        ("content_block_delta", 1, "input_json_delta"),
        ("content_block_stop", 1, None),
        ("content_block_start", 2, "tool_use"),
        ("content_block_delta", 2, "input_json_delta"),
        ("content_block_stop", 2, None),
        ("message_delta", None, None),
        ("message_stop", None, None),
    ]
    assert events[0][1]["message"]["model"] == "up"
    assert events[0][1]["message"]["usage"]["input_tokens"] == 12, "an estimate until the real count arrives"
    assert events[5][1]["content_block"] == {"type": "tool_use", "id": "a", "name": "w", "input": {}}
    message_delta = events[-2][1]
    assert message_delta["delta"]["stop_reason"] == "tool_use"
    assert message_delta["usage"] == {"input_tokens": 30, "output_tokens": 9}


async def test_a_failed_end_after_content_is_an_error_event_and_no_stop():
    events = await translate(frames(
        delta(content="partial"),
        end=End(FAILED, {"message": "broke off", "type": "upstream_error", "code": "stream_interrupted"}),
    ))
    names = [name for name, _ in events]
    assert names == ["message_start", "content_block_start", "content_block_delta", "error"]
    assert events[-1][1]["error"] == {"type": "api_error", "message": "broke off", "code": "stream_interrupted"}


async def test_a_stream_that_stops_without_done_is_an_error_not_a_clean_end():
    events = await translate(frames(delta(content="partial"), done=False))
    assert events[-1][0] == "error"
    assert "message_stop" not in [name for name, _ in events]


async def test_a_native_stream_forwards_its_frames_and_writes_its_own_end():
    upstream = [b'event: message_start\ndata: {"type":"message_start"}\n\n',
                b'event: content_block_delta\ndata: {"type":"content_block_delta"}\n\n']
    events = [Start("m", "up", 0), Frame(upstream[0]), Frame(upstream[1])]
    names = [name for name, _ in await translate([*events, End(COMPLETE)], wire="anthropic")]
    assert names == ["message_start", "content_block_delta", "message_stop"]
    cut = [name for name, _ in await translate([*events, End(CUT, {"message": "gone"})], wire="anthropic")]
    assert cut == ["message_start", "content_block_delta", "error"]


async def test_without_usage_the_output_is_estimated():
    events = await translate(frames(delta(content="x" * 40), finish("stop")))
    usage = events[-2][1]["usage"]
    assert usage["input_tokens"] == 12 and usage["output_tokens"] == 10
