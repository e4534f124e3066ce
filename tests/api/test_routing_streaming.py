"""Streams: replaced before the first byte like a plain request; cut or stalled after it, an error event."""

from __future__ import annotations

import time

import httpx
import openai
import orjson
import pytest

from tests.support.configs import openai_provider

HI = [{"role": "user", "content": "one two three four five six"}]


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def text_of(chunks) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("failing", ["fail-500", "fail-429", "overload", "hang"])
def test_stream_falls_back_before_the_first_byte(gateway, upstream, failing):
    base, fake = upstream
    url = gateway(
        {"routes": {"r": {"targets": [f"bad/{failing}", "up/good"], "retry": {"attempts": 1}}}},
        {"bad": openai_provider(base, [failing], timeout={"connect": 1, "read": 0.3}), "up": openai_provider(base, ["good"])},
    )
    with client(url).chat.completions.with_streaming_response.create(model="r", messages=HI, stream=True) as raw:
        assert raw.headers["x-gateway-target"] == "up/good"
        assert raw.headers["x-gateway-attempts"] == "2"
        assert text_of(raw.parse()) == "Upstream good: one two three four five six"


def test_stream_retries_the_same_target_before_the_first_byte(gateway, upstream):
    base, fake = upstream
    url = gateway({"routes": {"r": {"targets": ["up/flaky-1-503-stream"], "retry": {"attempts": 2, "backoff": 0.01}}}},
                  {"up": openai_provider(base, ["flaky-1-503-stream"])})
    chunks = list(client(url).chat.completions.create(model="r", messages=HI, stream=True))
    assert text_of(chunks).startswith("Upstream flaky-1-503-stream")
    assert fake.calls["flaky-1-503-stream"] == 2


def sse_events(url: str, payload: dict) -> tuple[list[bytes], float]:
    started = time.monotonic()
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=payload, timeout=10) as response:
        assert response.status_code == 200
        events = [line[6:].encode() for line in response.iter_lines() if line.startswith("data: ")]
    return events, time.monotonic() - started


def test_cut_stream_ends_with_an_error_event_and_no_done(gateway, upstream):
    base, fake = upstream
    url = gateway({"routes": {"r": {"targets": ["up/cut", "up/good"]}}}, {"up": openai_provider(base, ["cut", "good"])})
    events, _ = sse_events(url, {"model": "r", "messages": HI, "stream": True})
    assert b"[DONE]" not in events
    content = [orjson.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in content) == "Upstream cut: one"
    error = orjson.loads(events[-1])["error"]
    assert error["code"] == "stream_interrupted" and "up/cut" in error["message"]
    assert fake.models_called() == ["cut"]  # committed: no fallback after content was sent


def test_stream_that_stalls_midway_hits_the_read_timeout_and_ends_with_an_error(gateway, upstream):
    base, fake = upstream
    url = gateway({"routes": {"r": {"targets": ["up/stall"]}}},
                  {"up": openai_provider(base, ["stall"], timeout={"connect": 1, "read": 0.4})})
    events, elapsed = sse_events(url, {"model": "r", "messages": HI, "stream": True})
    assert 0.4 <= elapsed < 2
    assert b"[DONE]" not in events
    error = orjson.loads(events[-1])["error"]
    assert error["code"] == "stream_interrupted" and "timeout" in error["message"]
    received = []
    with pytest.raises(openai.APIError):  # the SDK turns the error event into an exception
        for chunk in client(url).chat.completions.create(model="r", messages=HI, stream=True):
            received.append(chunk)
    assert text_of(received) == "Upstream stall: one"


def test_a_cut_stream_counts_against_the_targets_circuit(gateway, upstream):
    base, fake = upstream
    url = gateway({"defaults": {"circuit": {"failures": 2, "cooldown": 30}},
                   "routes": {"r": {"targets": ["up/cut-circuit", "up/good"]}}},
                  {"up": openai_provider(base, ["cut-circuit", "good"])})
    for _ in range(2):
        sse_events(url, {"model": "r", "messages": HI, "stream": True})
    events, _ = sse_events(url, {"model": "r", "messages": HI, "stream": True})
    assert events[-1] == b"[DONE]"
    assert fake.models_called() == ["cut-circuit", "cut-circuit", "good"]
