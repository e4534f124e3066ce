"""/v1/responses through the official openai SDK: translated to chat for chat and Anthropic
targets, passed through to a target that speaks the Responses API, and stored per key.

Every answer and every stream event is parsed strictly into the SDK's own types.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.server.app import create_app
from tests.support.anthropic_upstream import AnthropicUpstream
from tests.support.configs import ECHO_PROVIDER, openai_provider, write_config
from tests.support.openai_upstream import OpenAIUpstream
from tests.support.responses_upstream import ResponsesUpstream
from tests.support.scrape import scrape
from tests.support.servers import serve_app

KEY_A, KEY_B = "sk-gw-responses-alpha-0001", "sk-gw-responses-bravo-0002"
PIXEL = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nnot-really-a-png").decode()
EVENTS = TypeAdapter(ResponseStreamEvent)
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city",
           "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
           "strict": True}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[str, OpenAIUpstream, AnthropicUpstream, ResponsesUpstream]]:
    chat, ant, native = OpenAIUpstream(), AnthropicUpstream(), ResponsesUpstream()
    with serve_app(chat.app()) as chat_url, serve_app(ant.app()) as ant_url, serve_app(native.app()) as native_url:
        routes = {
            "defaults": {"retry": {"attempts": 1}, "circuit": {"failures": 1000}},
            "routes": {
                "chat": {"targets": ["up/good"]},
                "tools": {"targets": ["up/tool-call"]},
                "thinking": {"targets": ["up/think"]},
                "thinking-then-native": {"targets": ["up/think", "nat/gpt-x"]},
                "claude": {"targets": ["ant/m"]},
                "claude-cut": {"targets": ["ant/cut"]},
                "fallback": {"targets": ["up/fail-500", "up/good"]},
                "cut": {"targets": ["up/cut"]},
                "native": {"targets": ["nat/gpt-x"]},
                "native-then-chat": {"targets": ["nat/fail-500", "up/good"]},
                "native-cut": {"targets": ["nat/cut"]},
                "native-failed": {"targets": ["nat/failed"]},
                "echo": {"targets": ["echo/echo-1"]},
            },
            "keys": [{"name": "alpha", "key": KEY_A}, {"name": "bravo", "key": KEY_B}],
        }
        providers = {
            "up": openai_provider(chat_url, ["good", "tool-call", "fail-500", "cut", "think"], responses="translate"),
            "ant": {"api": "anthropic", "base_url": ant_url, "api_key": "sk-ant-provider-0001",
                    "models": {"m": {}, "cut": {}}},
            "nat": openai_provider(native_url, ["gpt-x", "fail-500", "cut", "failed"]),
            "echo": ECHO_PROVIDER,
        }
        routes_path, providers_path = write_config(tmp_path_factory.mktemp("responses"), routes, providers)
        with serve_app(create_app(str(routes_path), str(providers_path))) as url:
            yield url, chat, ant, native


def client(url: str, key: str = KEY_A) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def strict(response: Response) -> Response:
    """The answer as the SDK's own type, validated strictly (no coercion)."""
    return Response.model_validate(response.model_dump(mode="json", by_alias=True, exclude_unset=True), strict=True)


def raw_create(url: str, body: dict[str, Any], key: str = KEY_A) -> httpx.Response:
    return httpx.post(f"{url}/v1/responses", json=body, headers={"authorization": f"Bearer {key}"}, timeout=30)


def strict_json(data: dict[str, Any]) -> Response:
    return Response.model_validate(data, strict=True)


def stream_events(url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every event of a streamed answer, each checked against the SDK's event types."""
    events = []
    with httpx.stream("POST", f"{url}/v1/responses", json={**body, "stream": True},
                      headers={"authorization": f"Bearer {KEY_A}"}, timeout=30) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data: "):
                event = orjson.loads(line[6:])
                EVENTS.validate_python(event, strict=True)
                events.append(event)
    return events


# ------------------------------------------------------------------ translated


def test_string_input_with_instructions_reaches_a_chat_target_as_messages(site):
    url, chat, _, _ = site
    answer = client(url).responses.create(model="chat", input="hello there", instructions="be brief",
                                          temperature=0.3, max_output_tokens=50, metadata={"team": "search"})
    strict(answer)
    assert answer.object == "response" and answer.status == "completed" and answer.id.startswith("resp_")
    assert answer.model == "chat"
    assert answer.output_text == "Upstream good: hello there"
    assert answer.usage.input_tokens == 11 and answer.usage.output_tokens == 7 and answer.usage.total_tokens == 18
    assert answer.metadata == {"team": "search"} and answer.instructions == "be brief"
    sent = chat.requests[-1].body
    assert sent["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
    assert sent["temperature"] == 0.3 and sent["max_tokens"] == 50 and "metadata" not in sent
    # resp_ + 32 hex characters, the first 12 the time it was made: later ids sort after it.
    assert re.fullmatch(r"resp_[0-9a-f]{32}", answer.id)
    assert abs(int(answer.id[5:17], 16) / 1000 - time.time()) < 60
    later = client(url).responses.create(model="chat", input="again", store=False)
    assert later.id[5:17] >= answer.id[5:17] and later.id[17:] != answer.id[17:]


def test_item_input_with_an_image_and_history(site):
    url, chat, _, _ = site
    answer = client(url).responses.create(model="chat", input=[
        {"type": "message", "role": "developer", "content": "answer in French"},
        {"role": "user", "content": "first question"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "first answer"}]},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "what is this?"},
            {"type": "input_image", "image_url": PIXEL, "detail": "low"},
        ]},
    ])
    strict(answer)
    messages = chat.requests[-1].body["messages"]
    assert [m["role"] for m in messages] == ["developer", "user", "assistant", "user"]
    assert messages[2]["content"] == "first answer"
    assert messages[3]["content"] == [{"type": "text", "text": "what is this?"},
                                      {"type": "image_url", "image_url": {"url": PIXEL, "detail": "low"}}]


def test_json_schema_output_becomes_response_format(site):
    url, chat, _, _ = site
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    answer = client(url).responses.create(model="chat", input="where?", text={
        "format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}})
    strict(answer)
    assert chat.requests[-1].body["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "place", "schema": schema, "strict": True}}
    assert answer.text.format.type == "json_schema"


def test_a_function_tool_round_trip_with_previous_response_id(site):
    url, chat, _, _ = site
    sdk = client(url)
    first = sdk.responses.create(model="tools", input="weather in Paris", tools=[WEATHER])
    strict(first)
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert calls[0].arguments == '{"query":"weather in Paris"}'
    assert chat.requests[-1].body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city", "parameters": WEATHER["parameters"],
        "strict": True}}]
    second = sdk.responses.create(model="tools", previous_response_id=first.id, tools=[WEATHER], input=[
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny, 21C"}])
    strict(second)
    assert second.output_text == "Upstream tool-call: the tool said sunny, 21C"
    assert second.previous_response_id == first.id
    messages = chat.requests[-1].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["id"] == calls[0].call_id
    assert messages[2] == {"role": "tool", "tool_call_id": calls[0].call_id, "content": "sunny, 21C"}


def test_streaming_through_the_sdk_helper(site):
    url, _, _, _ = site
    seen = []
    with client(url).responses.stream(model="chat", input="count one two three") as stream:
        for event in stream:
            seen.append(event.type)
        final = stream.get_final_response()
    strict(final)
    assert final.output_text == "Upstream good: count one two three" and final.status == "completed"
    assert seen[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                        "response.content_part.added"]
    assert seen[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                         "response.completed"]
    assert final.usage.input_tokens == 11


def test_streamed_events_are_strict_and_numbered(site):
    url, _, _, _ = site
    events = stream_events(url, {"model": "tools", "input": "weather in Oslo", "tools": [WEATHER]})
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    assert "response.function_call_arguments.delta" in kinds
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert done["arguments"] == '{"query":"weather in Oslo"}'
    assert kinds[-1] == "response.completed"
    assert events[-1]["response"]["output"][0]["type"] == "function_call"


def test_a_failing_first_target_falls_back_before_the_first_byte(site):
    url, _, _, _ = site
    raw = raw_create(url, {"model": "fallback", "input": "hi", "stream": True})
    assert raw.status_code == 200 and raw.headers["x-gateway-attempts"] == "2"
    assert raw.headers["x-gateway-target"] == "up/good"
    assert "event: response.completed" in raw.text


def test_a_cut_stream_ends_in_response_failed(site):
    url, _, _, _ = site
    events = stream_events(url, {"model": "cut", "input": "one two three four five six"})
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["status"] == "failed"
    assert events[-1]["response"]["error"]["code"] == "server_error"
    assert not any(e["type"] == "response.completed" for e in events)


# ------------------------------------------------------------------ Anthropic


def test_an_anthropic_target_answers_plain_streamed_and_with_tools(site):
    url, _, ant, _ = site
    sdk = client(url)
    answer = strict(sdk.responses.create(model="claude", input="hello", instructions="be kind"))
    assert answer.output_text and answer.model == "claude"
    assert ant.requests[-1]["system"] == "be kind"
    with sdk.responses.stream(model="claude", input="hello again") as stream:
        final = stream.get_final_response()
    strict(final)
    assert final.status == "completed" and final.output_text
    called = strict(sdk.responses.create(model="claude", input="weather in Rome", tools=[WEATHER]))
    assert any(item.type == "function_call" and item.name == "get_weather" for item in called.output)


def test_an_anthropic_stream_cut_ends_in_response_failed(site):
    url, _, _, _ = site
    events = stream_events(url, {"model": "claude-cut", "input": "one two three four"})
    assert events[-1]["type"] == "response.failed"


# ------------------------------------------------------------------ native


def test_a_responses_target_gets_the_body_as_written_and_is_renamed(site):
    url, _, _, native = site
    sdk = client(url)
    first = strict(sdk.responses.create(model="native", input="hi", reasoning={"effort": "low"}, store=True,
                                        tools=[{"type": "web_search"}]))
    sent = native.requests[-1].body
    assert sent["model"] == "gpt-x" and sent["reasoning"] == {"effort": "low"} and sent["tools"] == [{"type": "web_search"}]
    assert sent["input"] == "hi" and sent["store"] is True  # as written
    assert first.id.startswith("resp_") and first.id != "resp_upstream_1" and first.model == "native"
    assert first.output_text == "Native gpt-x: hi"
    assert first.usage.input_tokens_details.cached_tokens == 4
    second = strict(sdk.responses.create(model="native", input="again", previous_response_id=first.id))
    sent = native.requests[-1].body
    assert "previous_response_id" not in sent
    assert [item.get("type") for item in sent["input"]] == ["message", "reasoning", "message", "message"]
    assert second.previous_response_id == first.id


def test_a_native_stream_is_passed_through_renamed(site):
    url, _, _, _ = site
    events = stream_events(url, {"model": "native", "input": "stream this please"})
    created, completed = events[0], events[-1]
    assert created["type"] == "response.created" and created["response"]["model"] == "native"
    assert completed["type"] == "response.completed" and completed["response"]["id"] == created["response"]["id"]
    assert completed["response"]["id"] != "resp_upstream_1"
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == "Native gpt-x: stream this please"


def test_a_native_stream_cut_or_failed_ends_once_in_response_failed(site):
    url, _, _, _ = site
    for model in ("native-cut", "native-failed"):
        events = stream_events(url, {"model": model, "input": "one two three four"})
        assert [e["type"] for e in events].count("response.failed") == 1, model
        assert events[-1]["type"] == "response.failed"
        numbers = [e["sequence_number"] for e in events]
        assert numbers == sorted(set(numbers)), model


def test_a_native_target_falls_back_to_a_chat_target(site):
    url, chat, _, _ = site
    answer = strict(client(url).responses.create(model="native-then-chat", input="fall back"))
    assert answer.output_text == "Upstream good: fall back"


# ------------------------------------------------------------------ stored


def test_retrieve_delete_and_input_items(site):
    url, _, _, _ = site
    sdk = client(url)
    first = sdk.responses.create(model="chat", input="one")
    second = sdk.responses.create(model="chat", input="two", previous_response_id=first.id)
    assert strict(sdk.responses.retrieve(second.id)).output_text == second.output_text
    items = sdk.responses.input_items.list(second.id, order="asc")
    assert [(i.type, i.role) for i in items.data] == [("message", "user"), ("message", "assistant"), ("message", "user")]
    assert items.data[0].content[0].text == "one" and items.data[-1].content[0].text == "two"
    newest = sdk.responses.input_items.list(second.id, limit=1)
    assert newest.data[0].content[0].text == "two" and newest.has_more
    sdk.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(first.id)


def test_another_keys_response_is_not_found(site):
    url, _, _, _ = site
    mine = client(url, KEY_A).responses.create(model="chat", input="secret plans")
    other = client(url, KEY_B)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError) as refused:
        other.responses.create(model="chat", input="go on", previous_response_id=mine.id)
    assert refused.value.code == "not_found"
    with pytest.raises(openai.NotFoundError):
        other.responses.input_items.list(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(mine.id)
    assert client(url, KEY_A).responses.retrieve(mine.id).id == mine.id  # still there for its owner


def test_store_false_keeps_nothing(site):
    url, _, _, _ = site
    sdk = client(url)
    answer = sdk.responses.create(model="chat", input="forget me", store=False)
    assert answer.store is False
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(answer.id)


def test_a_streamed_response_is_stored_when_it_ends(site):
    url, _, _, _ = site
    sdk = client(url)
    with sdk.responses.stream(model="chat", input="keep me") as stream:
        final = stream.get_final_response()
    assert sdk.responses.retrieve(final.id).output_text == final.output_text


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("body, param", [
    ({"model": "chat"}, "input"),
    ({"model": "chat", "input": 7}, "input"),
    ({"model": "chat", "input": [{"type": "message", "role": "robot", "content": "x"}]}, "input[0].role"),
    ({"model": "chat", "input": "x", "temperature": 3}, "temperature"),
    ({"model": "chat", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "chat", "input": "x", "max_output_tokens": 1.5}, "max_output_tokens"),
    ({"model": "chat", "input": "x", "top_logprobs": 50}, "top_logprobs"),
    ({"model": "chat", "input": "x", "tools": [{"type": "function", "parameters": {}}]}, "tools[0].name"),
    ({"model": "chat", "input": "x", "tools": [{"type": "function", "name": "f", "parameters": "{}"}]},
     "tools[0].parameters"),
    ({"model": "chat", "input": "x", "tools": {"type": "function"}}, "tools"),
    ({"model": "chat", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"model": "chat", "input": "x", "background": True}, "background"),
    ({"model": "chat", "input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
])
def test_bad_input_is_a_400_naming_the_field(site, body, param):
    url, _, _, _ = site
    raw = raw_create(url, body)
    assert raw.status_code == 400, raw.text
    assert raw.json()["error"]["param"] == param and raw.json()["error"]["type"] == "invalid_request_error"


def test_errors_reach_the_sdk_as_its_own_exceptions(site):
    url, _, _, _ = site
    with pytest.raises(openai.NotFoundError):
        client(url).responses.create(model="chat", input="x", previous_response_id="resp_never")
    with pytest.raises(openai.NotFoundError) as unknown:
        client(url).responses.create(model="no-such-alias", input="x")
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.AuthenticationError):
        client(url, "sk-wrong").responses.create(model="chat", input="x")


def test_metrics_and_headers_tell_responses_traffic_apart(site):
    url, _, _, _ = site
    raw = raw_create(url, {"model": "echo", "input": "count me"})
    assert raw.headers["x-gateway-route"] == "echo" and raw.headers["x-gateway-target"] == "echo/echo-1"
    assert "x-gateway-cost-usd" in raw.headers and raw.headers["x-request-id"]
    series = scrape(url)
    assert any(("endpoint", "responses") in labels for name, labels in series if name.startswith("gateway_requests"))


@pytest.mark.parametrize("model", ["chat", "tools", "claude", "native", "echo"])
def test_the_raw_answer_parses_strictly_as_the_sdks_response(site, model):
    url, _, _, _ = site
    raw = raw_create(url, {"model": model, "input": "weather in Lima", "tools": [WEATHER]})
    assert raw.status_code == 200, raw.text
    answer = strict_json(raw.json())
    details = raw.json()["usage"]["input_tokens_details"]
    assert {"cached_tokens", "cache_write_tokens"} <= set(details)
    assert answer.usage is not None and answer.usage.output_tokens_details is not None


def test_a_chat_targets_reasoning_text_is_a_reasoning_item_plain_and_streamed(site):
    url, _, _, native = site
    sdk = client(url)
    answer = strict(sdk.responses.create(model="thinking", input="prime numbers"))
    assert [item.type for item in answer.output] == ["reasoning", "message"]
    assert answer.output[0].content[0].text == "Thinking about prime numbers" and answer.output[0].summary == []
    assert answer.output_text == "Upstream think: prime numbers"
    with sdk.responses.stream(model="thinking", input="prime numbers") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    deltas = [e.delta for e in events if e.type == "response.reasoning_text.delta"]
    assert "".join(deltas) == "Thinking about prime numbers"
    assert kinds.index("response.reasoning_text.done") < kinds.index("response.output_text.delta")
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output[0].content[0].text == "Thinking about prime numbers"
    for event in events:
        EVENTS.validate_python(event.model_dump(mode="json", exclude_unset=True, warnings=False))
    # Sent on to a target that speaks the Responses API, the gateway's own reasoning items are left out.
    again = [item.model_dump(exclude_none=True, warnings=False) for item in answer.output]
    sdk.responses.create(model="native", input=[*again, {"role": "user", "content": "more"}])
    assert [i.get("type") for i in native.requests[-1].body["input"]] == ["message", "message"]
    sdk.responses.create(model="native", input="and?", previous_response_id=answer.id)
    assert "reasoning" not in [i.get("type") for i in native.requests[-1].body["input"]]
