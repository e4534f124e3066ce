"""The official anthropic SDK, unchanged, against /v1/messages on a real port.

Each behaviour runs against the in-process echo provider and a real OpenAI-compatible
upstream, so what is proved is the translation, not one provider's luck.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from gateway.server.app import create_app
from tests.support.configs import ECHO_PROVIDER, openai_provider, write_config
from tests.support.openai_upstream import OpenAIUpstream
from tests.support.servers import serve_app

PIXEL = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)).decode()

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
}


def client(url: str, **options: Any) -> anthropic.Anthropic:
    options.setdefault("api_key", "unused")
    return anthropic.Anthropic(base_url=url, max_retries=0, **options)


SECRET = "sk-upstream-secret-0a1b2c3d4e5f6789"


def routes() -> dict[str, Any]:
    one_try = {"retry": {"attempts": 1}}
    return {
        # One try per target and a circuit that stays closed: attempt counts are exact.
        "defaults": {"circuit": {"failures": 1000}},
        "routes": {
            "echo-chat": {"targets": ["echo/echo-1"]},
            "up-chat": {"targets": ["up/m1"]},
            "agent": {"targets": ["up/tool-call"]},
            "fallback": {"targets": ["up/fail-500", "up/good"], **one_try},
            "stream-fallback": {"targets": ["up/fail-500", "echo/echo-1"], **one_try},
            "cut": {"targets": ["up/cut"]},
            "all-fail": {"targets": ["up/fail-500", "up/fail-503"], **one_try},
            "rate-limited": {"targets": ["up/fail-429", "up/good"], "fallback_on": ["server_error"], **one_try},
            "deadline": {"targets": ["up/hang"], "timeout": 0.4},
            "leak": {"targets": ["leaky/echo-key"], "fallback_on": ["rate_limit"]},
        },
    }


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Iterator[tuple[str, OpenAIUpstream]]:
    """One OpenAI-compatible upstream and one gateway for the whole module: (gateway URL, upstream)."""
    fake = OpenAIUpstream()
    with serve_app(fake.app()) as base:
        models = ["m1", "tool-call", "fail-500", "good", "cut", "fail-503", "fail-429", "hang"]
        providers = {"up": openai_provider(base, models), "echo": ECHO_PROVIDER,
                     "leaky": openai_provider(base, ["echo-key"], api_key=SECRET)}
        routes_path, providers_path = write_config(tmp_path_factory.mktemp("messages"), routes(), providers)
        with serve_app(create_app(str(routes_path), str(providers_path))) as url:
            yield url, fake


@pytest.fixture(params=["echo-chat", "up-chat"])
def served(request, env) -> tuple[str, str, str]:
    """(gateway URL, alias, the prefix its answers start with) for the echo provider and the OpenAI upstream."""
    url, _ = env
    return url, request.param, "Echo: " if request.param == "echo-chat" else "Upstream m1: "


def sse_events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) pairs, checking each event's name equals its data's type."""
    import json

    events = []
    for block in response.text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            data = json.loads(lines["data"])
            assert data["type"] == lines["event"]
            events.append((lines["event"], data))
    return events


# ------------------------------------------------------------------ plain and streamed


def test_plain_message_is_answered_in_anthropic_shape(served):
    url, alias, prefix = served
    message = client(url).messages.create(
        model=alias, max_tokens=64, system="be brief", messages=[{"role": "user", "content": "hello world"}]
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == f"{prefix}hello world"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


def test_answer_carries_the_gateway_headers(served):
    url, alias, _ = served
    raw = client(url).messages.with_raw_response.create(
        model=alias, max_tokens=16, messages=[{"role": "user", "content": "x"}], extra_headers={"x-request-id": "req-77"}
    )
    assert raw.headers["x-request-id"] == "req-77"
    assert raw.headers["x-gateway-route"] == alias
    assert raw.headers["x-gateway-target"] in ("echo/echo-1", "up/m1")
    assert raw.headers["x-gateway-attempts"] == "1"
    assert float(raw.headers["x-gateway-overhead-ms"]) >= 0
    assert len(raw.headers["x-gateway-config"]) == 12
    assert raw.parse().content[0].text.endswith("x")


def test_stream_helper_yields_the_text_and_a_complete_final_message(served):
    url, alias, prefix = served
    with client(url).messages.stream(
        model=alias, max_tokens=64, messages=[{"role": "user", "content": "one two three"}]
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1, "the answer arrives in pieces"
    assert "".join(pieces) == f"{prefix}one two three"
    assert final.content[0].text == f"{prefix}one two three"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0


def test_stream_events_come_in_anthropic_order(served):
    url, alias, _ = served
    response = httpx.post(f"{url}/v1/messages", json={
        "model": alias, "max_tokens": 32, "stream": True, "messages": [{"role": "user", "content": "a b"}],
    })
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-gateway-route"] == alias
    names = [name for name, _ in sse_events(response)]
    assert names[:2] == ["message_start", "content_block_start"]
    assert set(names[2:-3]) == {"content_block_delta"}
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    events = dict(sse_events(response))
    assert events["message_start"]["message"]["content"] == []
    assert events["message_delta"]["delta"]["stop_reason"] == "end_turn"


async def test_async_client_plain_and_streamed(served):
    url, alias, prefix = served
    async with anthropic.AsyncAnthropic(base_url=url, api_key="unused", max_retries=0) as aclient:
        message = await aclient.messages.create(model=alias, max_tokens=16, messages=[{"role": "user", "content": "async"}])
        assert message.content[0].text == f"{prefix}async"
        async with aclient.messages.stream(model=alias, max_tokens=16, messages=[{"role": "user", "content": "a b"}]) as stream:
            text = "".join([piece async for piece in stream.text_stream])
        assert text == f"{prefix}a b"


def test_image_block_is_accepted_alongside_text(served):
    url, alias, prefix = served
    message = client(url).messages.create(model=alias, max_tokens=16, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
        {"type": "text", "text": "describe this"},
    ]}])
    assert message.content[0].text == f"{prefix}describe this"


def test_image_block_reaches_an_openai_upstream_as_an_image_part(env):
    url, fake = env
    client(url).messages.create(model="up-chat", max_tokens=16, messages=[{"role": "user", "content": [
        {"type": "text", "text": "compare"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
    ]}])
    parts = fake.requests[-1].body["messages"][-1]["content"]
    assert parts == [
        {"type": "text", "text": "compare"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]


def test_request_fields_reach_an_openai_upstream_translated(env):
    url, fake = env
    client(url).messages.create(
        # This SDK version no longer offers the sampling parameters as arguments; the API still takes them.
        model="up-chat", max_tokens=99, extra_body={"temperature": 0.3, "top_p": 0.9, "top_k": 5}, stop_sequences=["END"],
        metadata={"user_id": "user-42"},
        system=[{"type": "text", "text": "rule one"}, {"type": "text", "text": "rule two"}],
        messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                  {"role": "user", "content": "again"}],
    )
    body = fake.requests[-1].body
    assert body["model"] == "m1"
    assert body["max_tokens"] == 99
    assert body["temperature"] == 0.3 and body["top_p"] == 0.9
    assert body["stop"] == ["END"]
    assert body["user"] == "user-42"
    assert "top_k" not in body, "OpenAI's shape has no top_k"
    assert body["messages"] == [
        {"role": "system", "content": "rule one\n\nrule two"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "again"},
    ]


# ------------------------------------------------------------------ tools


def test_tool_use_then_tool_result_turn(env):
    url, fake = env
    c = client(url)
    question = {"role": "user", "content": "weather in Oslo"}
    first = c.messages.create(model="agent", max_tokens=64, tools=[WEATHER_TOOL], messages=[question])
    assert first.stop_reason == "tool_use"
    [call] = [block for block in first.content if block.type == "tool_use"]
    assert call.name == "get_weather" and call.input == {"query": "weather in Oslo"}
    sent = fake.requests[-1].body
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "parameters": WEATHER_TOOL["input_schema"], "description": WEATHER_TOOL["description"]}}]

    second = c.messages.create(model="agent", max_tokens=64, tools=[WEATHER_TOOL], messages=[
        question,
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "12 degrees, rain"}]},
    ])
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "Upstream tool-call: the tool said 12 degrees, rain"
    history = fake.requests[-1].body["messages"]
    assert history[1]["role"] == "assistant"
    assert history[1]["tool_calls"][0]["id"] == call.id
    assert history[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert history[2] == {"role": "tool", "tool_call_id": call.id, "content": "12 degrees, rain"}


def test_tool_choice_and_parallel_flag_are_translated(env):
    url, fake = env
    client(url).messages.create(
        model="agent", max_tokens=64, tools=[WEATHER_TOOL], messages=[{"role": "user", "content": "x"}],
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    )
    body = fake.requests[-1].body
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False


def test_streamed_tool_use_arrives_as_input_json_deltas(env):
    url, _ = env
    with client(url).messages.stream(
        model="agent", max_tokens=64, tools=[WEATHER_TOOL], messages=[{"role": "user", "content": "weather in Rome"}]
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    assert len(deltas) >= 2 and all(d.type == "input_json_delta" for d in deltas)
    assert final.stop_reason == "tool_use"
    [call] = final.content
    assert call.type == "tool_use" and call.id == "call_upstream_1"
    assert call.input == {"query": "weather in Rome"}


# ------------------------------------------------------------------ fallback and failures


def test_failing_first_target_falls_back_mid_route(env):
    url, fake = env
    raw = client(url).messages.with_raw_response.create(model="fallback", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert raw.parse().content[0].text == "Upstream good: hi"
    assert raw.headers["x-gateway-target"] == "up/good"
    assert raw.headers["x-gateway-attempts"] == "2"
    assert fake.models_called()[-2:] == ["fail-500", "good"]


def test_stream_falls_back_before_the_first_byte(env):
    url, _ = env
    with client(url).messages.stream(model="stream-fallback", max_tokens=16, messages=[{"role": "user", "content": "hi"}]) as stream:
        assert "".join(stream.text_stream) == "Echo: hi"


def test_failure_after_content_ends_with_an_error_event(env):
    url, _ = env
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        with client(url).messages.stream(
            model="cut", max_tokens=64, messages=[{"role": "user", "content": "a b c d e f"}]
        ) as stream:
            for piece in stream.text_stream:
                received.append(piece)
    assert received, "content was streamed before the cut"
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "api_error"

    response = httpx.post(f"{url}/v1/messages", json={
        "model": "cut", "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "a b c d e f"}],
    })
    names = [name for name, _ in sse_events(response)]
    assert names[-1] == "error"
    assert "message_stop" not in names and "message_delta" not in names


def test_every_target_failing_is_a_502_listing_attempts(env):
    url, _ = env
    with pytest.raises(anthropic.InternalServerError) as caught:
        client(url).messages.create(model="all-fail", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 502
    error = caught.value.body["error"]
    assert error["type"] == "api_error"
    assert [a["target"] for a in error["attempts"]] == ["up/fail-500", "up/fail-503"]


def test_upstream_rate_limit_not_in_fallback_on_is_a_rate_limit_error(env):
    url, fake = env
    calls = len(fake.requests)
    with pytest.raises(anthropic.RateLimitError) as caught:
        client(url).messages.create(model="rate-limited", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert fake.models_called()[calls:] == ["fail-429"]


def test_route_deadline_is_a_timeout_error(env):
    url, _ = env
    with pytest.raises(anthropic.GatewayTimeoutError) as caught:
        client(url).messages.create(model="deadline", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["error"]["type"] == "timeout_error"


def test_upstream_quoting_the_provider_key_never_reaches_the_client(env):
    url, _ = env
    with pytest.raises(anthropic.APIStatusError) as caught:
        client(url).messages.create(model="leak", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert SECRET not in caught.value.response.text


# ------------------------------------------------------------------ count_tokens


def test_count_tokens_is_an_estimate_that_grows_with_the_prompt(served):
    url, alias, _ = served
    c = client(url)
    short = c.messages.count_tokens(model=alias, messages=[{"role": "user", "content": "hi"}])
    longer = c.messages.count_tokens(
        model=alias, system="you are terse", tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "hi " * 200}],
    )
    assert 0 < short.input_tokens < longer.input_tokens
    raw = c.messages.with_raw_response.count_tokens(model=alias, messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-gateway-estimate"] == "true"
    with pytest.raises(anthropic.NotFoundError):
        c.messages.count_tokens(model="ghost", messages=[{"role": "user", "content": "hi"}])


def test_the_anthropic_sdk_lists_and_retrieves_models(env):
    url, _ = env
    sdk = client(url)
    listed = sdk.models.list()
    ids = [m.id for m in listed.data]
    assert ids == list(routes()["routes"])
    assert all(m.type == "model" and m.display_name == m.id for m in listed.data)
    assert listed.data[0].created_at.tzinfo is not None  # an RFC 3339 moment, parsed by the SDK
    assert listed.has_more is False and (listed.first_id, listed.last_id) == (ids[0], ids[-1])
    assert sdk.models.retrieve("up-chat").id == "up-chat"
    with pytest.raises(anthropic.NotFoundError):
        sdk.models.retrieve("no-such-model")
    # OpenAI's clients, which send no anthropic-version, still get OpenAI's shape.
    assert httpx.get(f"{url}/v1/models").json()["object"] == "list"


def test_the_anthropic_model_list_pages_and_errors_come_in_anthropics_shape(env):
    url, _ = env
    sdk = client(url)
    ids = list(routes()["routes"])
    first = sdk.models.list(limit=2)
    assert [m.id for m in first.data] == ids[:2] and first.has_more is True and first.last_id == ids[1]
    assert [m.id for m in sdk.models.list(limit=2)] == ids  # the SDK follows the pages to the end
    after = sdk.models.list(limit=2, after_id=ids[1])
    assert [m.id for m in after.data] == ids[2:4] and after.has_more is (len(ids) > 4)
    before = sdk.models.list(limit=1, before_id=ids[2])
    assert [m.id for m in before.data] == [ids[1]] and before.has_more is True
    with pytest.raises(anthropic.BadRequestError):
        sdk.models.list(limit=0)
    missing = httpx.get(f"{url}/v1/models/no-such-model", headers={"anthropic-version": "2023-06-01"})
    assert missing.status_code == 404
    assert missing.json()["type"] == "error" and missing.json()["error"]["type"] == "not_found_error"
    openai_missing = httpx.get(f"{url}/v1/models/no-such-model").json()
    assert "type" not in openai_missing and openai_missing["error"]["code"] == "model_not_found"
