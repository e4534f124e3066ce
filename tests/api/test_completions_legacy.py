"""POST /v1/completions through the openai SDK's `client.completions`.

On chat-only targets (the in-process echo, an Anthropic upstream) the prompt becomes one
user message and the answer comes back as `text_completion`; targets whose pack serves
the legacy endpoint (the `openai` pack) get the client's body with only `model`
replaced. What only the legacy endpoint can do is refused with a 400 naming the field
when no such target is on the route.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import pytest

from tests.support.anthropic_upstream import AnthropicUpstream
from tests.support.configs import ECHO_PROVIDER, openai_provider
from tests.support.servers import serve_app


@pytest.fixture
def claude() -> Iterator[tuple[str, AnthropicUpstream]]:
    fake = AnthropicUpstream()
    with serve_app(fake.app()) as url:
        yield url, fake


@pytest.fixture
def client(gateway: Callable[..., str], claude, upstream) -> openai.OpenAI:
    claude_url, _ = claude
    base, _ = upstream
    routes = {"routes": {
        "echo": {"targets": ["echo/echo-1"]},
        "claude": {"targets": ["claude/m"]},
        "native": {"targets": ["up/instruct"]},
        "mixed": {"targets": ["claude/m", "up/instruct"]},
        "cached": {"targets": ["echo/echo-1"], "cache": {"ttl": 60}},
        "capped": {"targets": ["echo/echo-1"], "limits": {"max_tokens": 10}},
    }}
    providers = {
        "echo": ECHO_PROVIDER,
        "claude": {"api": "anthropic", "base_url": claude_url, "api_key": "sk-ant-test-0001", "models": {"m": {}}},
        "up": openai_provider(base, ["instruct"]),
    }
    url = gateway(routes, providers)
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def streamed_text(stream) -> tuple[str, str | None]:
    text, finish = "", None
    for chunk in stream:
        assert chunk.object == "text_completion"
        for choice in chunk.choices:
            text += choice.text
            finish = choice.finish_reason or finish
    return text, finish


def test_a_chat_target_answers_a_text_completion(client: openai.OpenAI) -> None:
    raw = client.completions.with_raw_response.create(model="echo", prompt="say hello", max_tokens=20)
    done = raw.parse()
    assert done.object == "text_completion"
    assert done.choices[0].text == "Echo: say hello"
    assert done.choices[0].finish_reason == "stop"
    assert done.usage.total_tokens > 0
    assert raw.headers["x-gateway-route"] == "echo"
    assert raw.headers["x-gateway-target"] == "echo/echo-1"


def test_a_chat_target_streams_a_text_completion(client: openai.OpenAI) -> None:
    text, finish = streamed_text(client.completions.create(model="echo", prompt="one two three", stream=True))
    assert text == "Echo: one two three"
    assert finish == "stop"


def test_an_anthropic_target_gets_the_prompt_as_one_user_message(client: openai.OpenAI, claude) -> None:
    _, fake = claude
    done = client.completions.create(model="claude", prompt="hello there", max_tokens=30, temperature=0.2, stop=["\n\n"])
    assert done.choices[0].text == "Anthropic m: hello there"
    sent = fake.requests[-1]
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}]
    assert sent["max_tokens"] == 30 and sent["temperature"] == 0.2 and sent["stop_sequences"] == ["\n\n"]
    text, finish = streamed_text(client.completions.create(model="claude", prompt="streamed please", stream=True))
    assert text == "Anthropic m: streamed please"
    assert finish == "stop"


def test_a_legacy_target_gets_the_body_unchanged_but_model(client: openai.OpenAI, upstream) -> None:
    _, fake = upstream
    done = client.completions.create(model="native", prompt="def f(", suffix="  return 1", max_tokens=16, n=1, echo=False)
    assert done.choices[0].text == "Upstream instruct: def f(  return 1"
    seen = fake.requests[-1]
    assert seen.path == "/v1/completions"
    assert seen.body == {"model": "instruct", "prompt": "def f(", "suffix": "  return 1", "max_tokens": 16, "n": 1, "echo": False}


def test_a_legacy_target_streams_natively(client: openai.OpenAI, upstream) -> None:
    _, fake = upstream
    stream = client.completions.create(model="native", prompt=["a", "b"], stream=True, stream_options={"include_usage": True})
    text = ""
    usage = None
    for chunk in stream:
        text += "".join(c.text for c in chunk.choices)
        usage = chunk.usage or usage
    assert text == "Upstream instruct: a | b"
    assert usage is not None and usage.total_tokens == 9
    seen = fake.requests[-1]
    assert seen.path == "/v1/completions"
    assert seen.body["prompt"] == ["a", "b"] and seen.body["stream"] is True


@pytest.mark.parametrize("extra, param", [
    ({"suffix": "tail"}, "suffix"),
    ({"echo": True}, "echo"),
    ({"logprobs": 2}, "logprobs"),
    ({"prompt": ["one", "two"]}, "prompt"),
])
def test_what_only_the_legacy_endpoint_can_do_is_a_400_on_chat_targets(client: openai.OpenAI, claude, extra, param) -> None:
    _, fake = claude
    body = {"prompt": "hello", **extra}
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="claude", **body)
    assert caught.value.body["param"] == param
    assert fake.requests == []


def test_a_route_with_a_legacy_target_uses_it_for_legacy_fields(client: openai.OpenAI, claude, upstream) -> None:
    _, anthropic = claude
    _, fake = upstream
    raw = client.completions.with_raw_response.create(model="mixed", prompt="x", suffix="y")
    assert raw.headers["x-gateway-target"] == "up/instruct"
    assert anthropic.requests == []
    # A plain prompt goes to the first target, translated.
    raw = client.completions.with_raw_response.create(model="mixed", prompt="x")
    assert raw.headers["x-gateway-target"] == "claude/m"
    assert raw.parse().choices[0].text == "Anthropic m: x"


def test_bad_bodies_are_400s(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="echo", prompt=None)  # type: ignore[arg-type]
    assert caught.value.body["param"] == "prompt"
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="no-such-route", prompt="x")
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="capped", prompt="x", max_tokens=500)  # the route's max_tokens cap


def test_the_cache_serves_completions_plain_and_streamed(client: openai.OpenAI) -> None:
    first = client.completions.with_raw_response.create(model="cached", prompt="remember me")
    assert first.headers["x-gateway-cache"] == "miss"
    again = client.completions.with_raw_response.create(model="cached", prompt="remember me")
    assert again.headers["x-gateway-cache"] == "hit"
    assert again.parse().choices[0].text == "Echo: remember me"
    text, _ = streamed_text(client.completions.create(model="cached", prompt="remember me", stream=True))
    assert text == "Echo: remember me"


def test_native_answers_are_cached_apart_by_their_legacy_fields(gateway, upstream) -> None:
    base, fake = upstream
    url = gateway({"routes": {"n": {"targets": ["up/instruct"], "cache": {"ttl": 60}}}}, {"up": openai_provider(base, ["instruct"])})
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    assert client.completions.create(model="n", prompt="p", suffix="1").choices[0].text.endswith("p1")
    assert client.completions.create(model="n", prompt="p", suffix="2").choices[0].text.endswith("p2")
    raw = client.completions.with_raw_response.create(model="n", prompt="p", suffix="2")
    assert raw.headers["x-gateway-cache"] == "hit"
    assert raw.parse().choices[0].text.endswith("p2")
    text, _ = streamed_text(client.completions.create(model="n", prompt="q", stream=True))
    again = client.completions.with_raw_response.create(model="n", prompt="q")
    assert again.headers["x-gateway-cache"] == "hit"
    assert again.parse().choices[0].text == text == "Upstream instruct: q"
    assert len(fake.requests) == 3


def test_completions_are_counted_like_chat(client: openai.OpenAI) -> None:
    import httpx

    client.completions.create(model="echo", prompt="count me")
    text = httpx.get(str(client.base_url).removesuffix("/v1/") + "/metrics").text
    assert 'gateway_requests_total{endpoint="completions",route="echo",status="200",target="echo/echo-1"} 1.0' in text
    assert 'gateway_tokens_total{key="",kind="completion",route="echo",target="echo/echo-1"}' in text
