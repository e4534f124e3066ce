"""OpenAI chunk streams written as Anthropic's event sequence."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.api.anthropic.stream import MessageEvents, anthropic_events


def frames(*chunks: Any, done: bool = True) -> list[bytes]:
    out = [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks]
    return out + ([b"data: [DONE]\n\n"] if done else [])


def delta(**fields: Any) -> dict[str, Any]:
    return {"model": "up", "choices": [{"index": 0, "delta": fields, "finish_reason": None}]}


def finish(reason: str) -> dict[str, Any]:
    return {"model": "up", "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}


async def translate(pieces: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
    async def source() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    out = []
    async for raw in anthropic_events(source(), MessageEvents("target-model", 12)):
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


async def test_an_error_frame_after_content_is_an_error_event_and_no_stop():
    events = await translate(frames(
        delta(content="partial"),
        {"error": {"message": "broke off", "type": "upstream_error", "code": "stream_interrupted"}},
        done=False,
    ))
    names = [name for name, _ in events]
    assert names == ["message_start", "content_block_start", "content_block_delta", "error"]
    assert events[-1][1]["error"] == {"type": "api_error", "message": "broke off", "code": "stream_interrupted"}


async def test_a_stream_that_stops_without_done_is_an_error_not_a_clean_end():
    events = await translate(frames(delta(content="partial"), done=False))
    assert events[-1][0] == "error"
    assert "message_stop" not in [name for name, _ in events]


async def test_frames_split_across_reads_are_reassembled():
    whole = b"".join(frames(delta(content="ab"), finish("length")))
    events = await translate([whole[:7], whole[7:40], whole[40:]])
    assert [name for name, _ in events][-2:] == ["message_delta", "message_stop"]
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"


async def test_without_usage_the_output_is_estimated():
    events = await translate(frames(delta(content="x" * 40), finish("stop")))
    usage = events[-2][1]["usage"]
    assert usage["input_tokens"] == 12 and usage["output_tokens"] == 10
