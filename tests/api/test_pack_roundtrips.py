"""Every translating pack, end to end: the official openai SDK against the gateway, the
gateway against a real local server that speaks the provider's own protocol.

The same behaviours are proven for each pack: plain and streamed chat (with usage),
tool definitions and tool calls (whole and streamed, with correct indexes), tool
results sent back in the history, upstream errors mapped to OpenAI's, a malformed
upstream body as a 502, and a stream that fails after it started.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from gateway.server.app import create_app
from tests.support.anthropic_upstream import AnthropicUpstream
from tests.support.azure_upstream import AzureUpstream
from tests.support.cohere_upstream import CohereUpstream
from tests.support.configs import write_config
from tests.support.gemini_upstream import GeminiUpstream
from tests.support.ollama_upstream import OllamaUpstream
from tests.support.servers import serve_app


@dataclass(frozen=True)
class Native:
    """A native fake, how a provider entry points at it, and what its script says."""

    make: Callable[[], Any]
    provider: Callable[[str, list[str]], dict[str, Any]]
    speaker: str
    prompt_tokens: int = 11
    cached_tokens: int | None = None
    embeds: bool = True
    answer_model: str = "m"  # what `model` says in an answer (pass-through packs echo the upstream's)


NATIVES: dict[str, Native] = {
    "anthropic": Native(
        AnthropicUpstream,
        lambda url, models: {"api": "anthropic", "base_url": url, "api_key": "sk-ant-test-0001", "models": {m: {} for m in models}},
        "Anthropic", prompt_tokens=16, cached_tokens=3, embeds=False,
    ),
    "gemini": Native(
        GeminiUpstream,
        lambda url, models: {"api": "gemini", "base_url": url, "api_key": "gm-test-key-0001", "models": {m: {} for m in models}},
        "Gemini", cached_tokens=0,
    ),
    "ollama": Native(
        OllamaUpstream, lambda url, models: {"api": "ollama", "base_url": url, "models": {m: {} for m in models}}, "Ollama",
    ),
    "cohere": Native(
        CohereUpstream,
        lambda url, models: {"api": "cohere", "base_url": url, "api_key": "co-test-key-0001", "models": {m: {} for m in models}},
        "Cohere",
    ),
    "azure-openai": Native(
        AzureUpstream,
        lambda url, models: {"api": "azure-openai", "base_url": url, "api_key": "az-test-key-0001", "models": {m: {} for m in models}},
        "Azure", answer_model="gpt-4o-2024",
    ),
}

MODELS = ["m", "fail-429", "fail-500", "overloaded", "context", "garbage", "missing", "midstream", "cut"]
TOOLS = [
    {"type": "function", "function": {"name": "weather", "description": "weather for a city",
                                      "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "news", "parameters": {"type": "object", "properties": {}}}},
]


@pytest.fixture(scope="module", params=sorted(NATIVES))
def native(request, tmp_path_factory) -> Iterator[tuple[str, Native, Any]]:
    """(gateway URL, pack description, upstream recorder) with one route per model name.

    One upstream and one gateway per pack serve every test of this module: starting
    them per test would cost more than the tests themselves.
    """
    spec = NATIVES[request.param]
    fake = spec.make()
    with serve_app(fake.app()) as url:
        routes: dict[str, Any] = {
            "defaults": {"retry": {"attempts": 1, "backoff": 0}},
            "routes": {m: {"targets": [f"p/{m}"]} for m in MODELS},
        }
        if spec.embeds:
            routes["routes"]["emb"] = {"targets": ["p/emb"]}
        routes["routes"]["with-fallback"] = {"targets": ["p/fail-429", "echo/echo-1"]}
        provider = spec.provider(url, MODELS)
        if spec.embeds:
            provider["models"]["emb"] = {"type": "embedding"}
        providers = {"p": provider, "echo": {"api": "echo", "models": {"echo-1": {}}}}
        routes_path, providers_path = write_config(tmp_path_factory.mktemp(request.param), routes, providers)
        with serve_app(create_app(str(routes_path), str(providers_path))) as gateway_url:
            yield gateway_url, spec, fake


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def test_plain_chat_answers_with_text_and_usage(native):
    url, spec, _ = native
    answer = client(url).chat.completions.create(
        model="m", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}], max_tokens=50
    )
    assert answer.choices[0].message.content == f"{spec.speaker} m: hello"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.model == spec.answer_model
    assert answer.usage.prompt_tokens == spec.prompt_tokens
    assert answer.usage.completion_tokens == 7
    assert answer.usage.total_tokens == spec.prompt_tokens + 7
    if spec.cached_tokens is not None:
        assert answer.usage.prompt_tokens_details.cached_tokens == spec.cached_tokens


def test_streamed_chat_arrives_in_pieces_with_usage_last(native):
    url, spec, _ = native
    chunks = list(client(url).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "one two"}], stream=True, stream_options={"include_usage": True},
    ))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == f"{spec.speaker} m: one two"
    assert len(pieces) > 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == spec.prompt_tokens
    assert chunks[-1].usage.completion_tokens == 7
    assert len({c.id for c in chunks}) == 1


def test_streamed_chat_without_include_usage_sends_no_usage(native):
    url, _, _ = native
    chunks = list(client(url).chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_tool_calls_come_back_with_finish_reason_tool_calls(native):
    url, _, fake = native
    answer = client(url).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "paris"}], tools=TOOLS, tool_choice="auto"
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == ["weather", "news"]
    import json
    assert [json.loads(c.function.arguments) for c in calls] == [{"query": "paris", "n": 0}, {"query": "paris", "n": 1}]
    assert all(c.id and c.type == "function" for c in calls)
    assert len({c.id for c in calls}) == 2


def test_streamed_tool_calls_have_indexes_ids_and_whole_arguments(native):
    url, _, _ = native
    chunks = list(client(url).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "paris"}], tools=TOOLS, stream=True,
    ))
    calls: dict[int, dict[str, str]] = {}
    for c in chunks:
        for delta in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            slot = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            if delta.id:
                assert not slot["id"], "a tool call's id is sent once, in its first delta"
                slot["id"] = delta.id
            if delta.function and delta.function.name:
                slot["name"] += delta.function.name
            if delta.function and delta.function.arguments:
                slot["arguments"] += delta.function.arguments
    import json
    assert sorted(calls) == [0, 1]
    assert [calls[i]["name"] for i in (0, 1)] == ["weather", "news"]
    assert [json.loads(calls[i]["arguments"]) for i in (0, 1)] == [{"query": "paris", "n": 0}, {"query": "paris", "n": 1}]
    assert all(calls[i]["id"] for i in (0, 1))
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["tool_calls"]


def test_tool_results_in_history_reach_the_model(native):
    url, _, fake = native
    messages = [
        {"role": "user", "content": "paris"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": '{"query": "paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
    ]
    answer = client(url).chat.completions.create(model="m", messages=messages, tools=TOOLS)
    assert answer.choices[0].message.content == "The tool said sunny"
    assert answer.choices[0].finish_reason == "stop"


def test_image_parts_reach_the_model(native):
    url, spec, fake = native
    content = [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
    answer = client(url).chat.completions.create(model="m", messages=[{"role": "user", "content": content}])
    assert answer.choices[0].message.content == f"{spec.speaker} m: look"
    assert "iVBORw0KGgo=" in str(fake.requests[-1])


def test_rate_limit_falls_back_to_the_next_target(native):
    url, _, _ = native
    answer = client(url).chat.completions.create(model="with-fallback", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "Echo: hi"


def test_context_too_long_is_an_openai_400_with_its_code(native):
    url, _, _ = native
    with pytest.raises(openai.BadRequestError) as caught:
        client(url).chat.completions.create(model="context", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 400
    assert caught.value.code == "context_length_exceeded"


@pytest.mark.parametrize("model", ["fail-429", "fail-500", "overloaded"])
def test_upstream_failures_become_a_502_listing_the_attempt(native, model):
    """A 429 from every target stays a 429 (the client may wait and retry); the rest are 502s."""
    url, _, _ = native
    with pytest.raises(openai.APIStatusError) as caught:
        client(url).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == (429 if model == "fail-429" else 502)
    attempts = caught.value.body["attempts"]
    assert attempts[0]["target"] == f"p/{model}"
    assert attempts[0]["class"] in ("rate_limit", "server_error")


@pytest.mark.parametrize("model", ["garbage", "missing"])
def test_malformed_upstream_body_is_a_clear_502(native, model):
    url, _, _ = native
    with pytest.raises(openai.APIStatusError) as caught:
        client(url).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 502
    attempt = caught.value.body["attempts"][0]
    assert attempt["target"] == "p/" + model and attempt["class"] == "server_error"
    assert "message" not in attempt  # what the upstream sent stays in the log


@pytest.mark.parametrize("model", ["midstream", "cut"])
def test_stream_failing_after_content_ends_with_an_error_event(native, model):
    url, _, _ = native
    stream = client(url).chat.completions.create(model=model, messages=[{"role": "user", "content": "a b c"}], stream=True)
    received = []
    with pytest.raises(openai.APIError):
        for c in stream:
            received.append(c)
    assert received, "content was sent before the failure"


def test_embeddings_come_back_in_openai_shape(native):
    url, spec, fake = native
    if not spec.embeds:
        return  # this provider has no embeddings API; validation refuses embedding models for it
    result = client(url).embeddings.create(model="emb", input=["alpha", "beta"])
    assert [d.index for d in result.data] == [0, 1]
    assert [len(d.embedding) for d in result.data] == [2, 2]
    assert [d.embedding[1] for d in result.data] == [0.0, 1.0]
    if spec.answer_model == "m":  # translating packs name the target's model; pass-through keeps the upstream's
        assert result.model == "emb"
    single = client(url).embeddings.create(model="emb", input="alpha")
    assert len(single.data) == 1
    assert "alpha" in str(fake.requests[-1])


def test_no_template_is_compiled_while_serving(native, monkeypatch):
    import jinja2

    compiled = []
    original = jinja2.Environment.compile
    monkeypatch.setattr(jinja2.Environment, "compile", lambda self, *a, **k: compiled.append(1) or original(self, *a, **k))
    url, _, _ = native
    client(url).chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], tools=TOOLS)
    list(client(url).chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert compiled == []
