"""/v1/messages to a target whose pack is `anthropic`: the client's body goes through as
it is (only `model` replaced) and the provider's answer or events come back untouched.

The upstream is a real local server speaking Anthropic's Messages API
(tests/support/anthropic_upstream.py); the client is the official anthropic SDK.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from gateway.server.app import create_app
from tests.support.anthropic_upstream import AnthropicUpstream
from tests.support.configs import ECHO_PROVIDER, openai_provider, write_config
from tests.support.openai_upstream import OpenAIUpstream
from tests.support.scrape import scrape, total
from tests.support.servers import serve_app

PROVIDER_KEY = "sk-ant-provider-key-0042"
PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\nnot-really-a-png").decode()
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def native(tmp_path_factory) -> Iterator[tuple[str, AnthropicUpstream, OpenAIUpstream]]:
    """(gateway URL, Anthropic-native upstream, OpenAI-compatible upstream), shared by the module."""
    fake, openai_fake = AnthropicUpstream(), OpenAIUpstream()
    with serve_app(fake.app()) as base, serve_app(openai_fake.app()) as openai_base:
        routes = {
            "defaults": {"retry": {"attempts": 1}, "circuit": {"failures": 1000}},
            "routes": {
                "claude": {"targets": ["ant/m"]},
                "claude-metered": {"targets": ["ant/m"]},
                "native-then-openai": {"targets": ["ant/fail-500", "up/good"]},
                "openai-then-native": {"targets": ["up/fail-500", "ant/m"]},
                "overloaded-then-echo": {"targets": ["ant/overloaded", "echo/echo-1"]},
                "midstream": {"targets": ["ant/midstream"]},
                "cut": {"targets": ["ant/cut"]},
                "echo-only": {"targets": ["echo/echo-1"]},
                "thinker": {"targets": ["up/think"]},
            },
        }
        providers = {
            "ant": {"api": "anthropic", "base_url": base, "api_key": PROVIDER_KEY,
                    "models": {m: {} for m in ("m", "fail-500", "overloaded", "midstream", "cut")}},
            "up": openai_provider(openai_base, ["good", "fail-500", "think"]),
            "echo": ECHO_PROVIDER,
        }
        routes_path, providers_path = write_config(tmp_path_factory.mktemp("native"), routes, providers)
        with serve_app(create_app(str(routes_path), str(providers_path))) as url:
            yield url, fake, openai_fake


def client(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)


def test_the_body_goes_through_with_only_the_model_replaced(native):
    url, fake, _ = native
    body = {
        "model": "claude", "max_tokens": 300, "top_k": 7, "temperature": 0.2,
        "system": [{"type": "text", "text": "long shared context", "cache_control": {"type": "ephemeral"}}],
        "thinking": {"type": "enabled", "budget_tokens": 200},
        "metadata": {"user_id": "u-9"},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "first", "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "considering", "signature": "sig-abc"},
                {"type": "text", "text": "an answer"},
            ]},
            {"role": "user", "content": "hello"},
        ],
    }
    response = httpx.post(f"{url}/v1/messages", json=body, headers={"anthropic-beta": "interleaved-thinking-2025-05-14"})
    assert response.status_code == 200, response.text
    sent = fake.requests[-1]
    assert sent == {**body, "model": "m"}
    headers = fake.headers[-1]
    assert headers["x-api-key"] == PROVIDER_KEY
    assert headers["anthropic-version"]
    assert headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert response.headers["x-gateway-target"] == "ant/m"


def test_plain_answer_is_the_providers_own(native):
    url, _, _ = native
    raw = client(url).messages.with_raw_response.create(model="claude", max_tokens=64, messages=HELLO)
    message = raw.parse()
    assert message.id == "msg_1", "the provider's message, not a gateway rewrite"
    assert message.content[0].text == "Anthropic m: hello"
    assert message.stop_reason == "end_turn"
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens) == (11, 7)
    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (2, 3)
    assert raw.headers["x-gateway-route"] == "claude"
    assert raw.headers["x-gateway-attempts"] == "1"


def test_stream_is_the_providers_own_events(native):
    url, _, _ = native
    with client(url).messages.stream(model="claude", max_tokens=64, messages=[{"role": "user", "content": "one two"}]) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == "Anthropic m: one two"
    assert final.id == "msg_1" and final.stop_reason == "end_turn"
    assert final.usage.cache_read_input_tokens == 3 and final.usage.output_tokens == 7
    response = httpx.post(f"{url}/v1/messages", json={"model": "claude", "max_tokens": 8, "stream": True, "messages": HELLO})
    assert "event: ping" in response.text, "events the gateway would not make up pass through"
    assert response.text.rstrip().split("\n")[-2] == "event: message_stop"


def test_tools_with_a_tool_result_turn(native):
    url, fake, _ = native
    c = client(url)
    tool = {"name": "weather", "description": "weather", "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}}
    question = {"role": "user", "content": "Oslo?"}
    first = c.messages.create(model="claude", max_tokens=64, tools=[tool], messages=[question])
    assert first.stop_reason == "tool_use"
    [call] = [b for b in first.content if b.type == "tool_use"]
    assert call.input == {"query": "Oslo?", "n": 0}
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "rain"}]}
    second = c.messages.create(model="claude", max_tokens=64, tools=[tool],
                               messages=[question, {"role": "assistant", "content": first.content}, result])
    assert second.content[0].text == "The tool said rain"
    assert fake.requests[-1]["messages"][2] == result


def test_streamed_tool_use(native):
    url, _, _ = native
    tool = {"name": "weather", "input_schema": {"type": "object"}}
    with client(url).messages.stream(model="claude", max_tokens=64, tools=[tool], messages=[{"role": "user", "content": "Rome?"}]) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[1].input == {"query": "Rome?", "n": 0}


def test_image_block_reaches_the_provider_as_sent(native):
    url, fake, _ = native
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}}
    message = client(url).messages.create(model="claude", max_tokens=16, messages=[
        {"role": "user", "content": [image, {"type": "text", "text": "what is it"}]}])
    assert message.content[0].text == "Anthropic m: what is it"
    assert fake.requests[-1]["messages"][0]["content"][0] == image


@pytest.mark.parametrize("stream", [False, True])
def test_fallback_from_a_native_target_to_a_translated_one_and_back(native, stream):
    url, fake, openai_fake = native
    c = client(url)

    def ask(alias: str) -> tuple[str, Any]:
        if stream:
            with c.messages.stream(model=alias, max_tokens=16, messages=HELLO) as s:
                return s.get_final_message().content[0].text, None
        raw = c.messages.with_raw_response.create(model=alias, max_tokens=16, messages=HELLO)
        return raw.parse().content[0].text, raw.headers

    native_calls, openai_calls = len(fake.requests), len(openai_fake.requests)
    text, headers = ask("native-then-openai")
    assert text == "Upstream good: hello"
    assert [r["model"] for r in fake.requests[native_calls:]] == ["fail-500"]
    assert openai_fake.models_called()[openai_calls:] == ["good"]
    text, headers = ask("openai-then-native")
    assert text == "Anthropic m: hello"
    if headers is not None:
        assert headers["x-gateway-target"] == "ant/m" and headers["x-gateway-attempts"] == "2"


def test_overloaded_native_target_falls_back(native):
    url, _, _ = native
    message = client(url).messages.create(model="overloaded-then-echo", max_tokens=16, messages=HELLO)
    assert message.content[0].text == "Echo: hello"


def test_an_error_event_after_content_reaches_the_client_as_sent(native):
    url, _, _ = native
    received = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        with client(url).messages.stream(model="midstream", max_tokens=16, messages=[{"role": "user", "content": "a b c"}]) as stream:
            for piece in stream.text_stream:
                received.append(piece)
    assert received
    assert caught.value.body["error"]["type"] == "overloaded_error"


def test_a_native_stream_cut_before_message_stop_ends_with_an_error_event(native):
    url, _, _ = native
    response = httpx.post(f"{url}/v1/messages", json={
        "model": "cut", "max_tokens": 16, "stream": True, "messages": [{"role": "user", "content": "a b c"}]})
    assert "content_block_delta" in response.text
    assert "event: message_stop" not in response.text
    assert response.text.rstrip().split("\n")[-2] == "event: error"


def test_native_answers_are_accounted_with_cache_tokens_as_prompt_tokens(native):
    url, _, _ = native
    before = scrape(url)
    client(url).messages.create(model="claude-metered", max_tokens=16, messages=HELLO)
    with client(url).messages.stream(model="claude-metered", max_tokens=16, messages=HELLO) as stream:
        stream.until_done()
    after = scrape(url)

    def tokens(kind: str, series) -> float:
        return total(series, "gateway_tokens_total", route="claude-metered", kind=kind)

    assert tokens("prompt", after) - tokens("prompt", before) == 2 * (11 + 2 + 3)
    assert tokens("completion", after) - tokens("completion", before) == 2 * 7


def test_a_complete_native_stream_is_not_counted_against_the_targets_circuit(gateway):
    fake = AnthropicUpstream()
    with serve_app(fake.app()) as base:
        url = gateway(
            {"defaults": {"retry": {"attempts": 1}, "circuit": {"failures": 1}},
             "routes": {"claude": {"targets": ["ant/m", "echo/echo-1"]}}},
            {"ant": {"api": "anthropic", "base_url": base, "api_key": PROVIDER_KEY, "models": {"m": {}}}, "echo": ECHO_PROVIDER},
        )
        for _ in range(3):
            with client(url).messages.stream(model="claude", max_tokens=16, messages=HELLO) as stream:
                assert stream.get_final_message().content[0].text == "Anthropic m: hello"


SEARCH_HISTORY = [
    {"role": "user", "content": "search the web for x"},
    {"role": "assistant", "content": [
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
        {"type": "text", "text": "nothing found"},
    ]},
    {"role": "user", "content": "try again"},
]


def test_blocks_only_anthropic_reads_go_to_an_anthropic_target_and_are_left_out_on_fallback(native):
    url, fake, openai_fake = native
    c = client(url)
    c.messages.create(model="claude", max_tokens=16, messages=SEARCH_HISTORY)
    assert fake.requests[-1]["messages"] == SEARCH_HISTORY
    message = c.messages.create(model="native-then-openai", max_tokens=16, messages=SEARCH_HISTORY)
    assert message.content[0].text == "Upstream good: try again"
    assert openai_fake.requests[-1].body["messages"][1] == {"role": "assistant", "content": "nothing found"}


def test_blocks_only_anthropic_reads_are_refused_by_a_route_without_an_anthropic_target(native):
    url, _, _ = native
    with pytest.raises(anthropic.BadRequestError) as caught:
        client(url).messages.create(model="echo-only", max_tokens=16, messages=SEARCH_HISTORY)
    assert "server_tool_use" in caught.value.body["error"]["message"]


def test_another_models_reasoning_is_a_thinking_block_that_never_reaches_anthropic(native):
    """A chat target's reasoning text comes back as a thinking block when the client asked
    for thinking (plain and streamed), signed with the gateway's mark; sent back in the next
    turn to an Anthropic target, that block is left out (Anthropic would refuse its signature)."""
    url, fake, _ = native
    sdk = client(url)
    thinking = {"type": "enabled", "budget_tokens": 1024}
    asked = [{"role": "user", "content": "why is the sky blue"}]
    plain = sdk.messages.create(model="thinker", max_tokens=2000, messages=asked, thinking=thinking)
    assert [block.type for block in plain.content] == ["thinking", "text"]
    assert plain.content[0].thinking == "Thinking about why is the sky blue"
    assert plain.content[0].signature == "gateway-unsigned"
    with sdk.messages.stream(model="thinker", max_tokens=2000, messages=asked, thinking=thinking) as stream:
        streamed = stream.get_final_message()
    assert [block.type for block in streamed.content] == ["thinking", "text"]
    assert streamed.content[0].thinking == plain.content[0].thinking
    assert streamed.content[0].signature == "gateway-unsigned"
    unasked = sdk.messages.create(model="thinker", max_tokens=2000, messages=asked)
    assert [block.type for block in unasked.content] == ["text"]  # no thinking asked for: none shown
    turns = [*asked, {"role": "assistant", "content": [b.model_dump() for b in plain.content]},
             {"role": "user", "content": "and at sunset?"}]
    sdk.messages.create(model="claude", max_tokens=2000, messages=turns, thinking=thinking)
    sent = fake.requests[-1]["messages"]
    assert [block["type"] for block in sent[1]["content"]] == ["text"]
    assert sent[0] == asked[0] and sent[2] == turns[2]
