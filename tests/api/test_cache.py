"""The exact-match response cache, in both store homes, through the official openai SDK."""

from __future__ import annotations

import time

import openai
import pytest

from tests.support.configs import ECHO_PROVIDER, openai_provider

MESSAGES = [{"role": "user", "content": "what is cached"}]


@pytest.fixture
def cached(gateway, upstream, store_home):
    base, fake = upstream
    providers = {"up": openai_provider(base, ["gpt-x", "fail-500", "cut-x", "emb-x"]), "echo": ECHO_PROVIDER}
    routes = {
        "routes": {
            "cached": {"targets": ["up/gpt-x"], "cache": {"ttl": 60}},
            "short": {"targets": ["up/gpt-x"], "cache": {"ttl": 0.3}},
            "uncached": {"targets": ["up/gpt-x"]},
            "broken": {"targets": ["up/fail-500"], "cache": {"ttl": 60}, "retry": {"attempts": 1}},
            "cut": {"targets": ["up/cut-x"], "cache": {"ttl": 60}, "retry": {"attempts": 1}},
        },
        "store": store_home,
    }
    url = gateway(routes, providers)
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0), fake


def create(c: openai.OpenAI, model: str = "cached", **extra):
    return c.chat.completions.with_raw_response.create(model=model, messages=MESSAGES, **extra)


def test_plain_hit_calls_the_upstream_once(cached):
    c, fake = cached
    miss = create(c)
    hit = create(c)
    assert miss.headers["x-gateway-cache"] == "miss" and hit.headers["x-gateway-cache"] == "hit"
    assert hit.parse().choices[0].message.content == miss.parse().choices[0].message.content
    assert hit.headers["x-gateway-target"] == "up/gpt-x" and hit.headers["x-gateway-attempts"] == "0"
    assert len(fake.requests) == 1


def test_streamed_request_is_served_from_a_cached_plain_answer(cached):
    c, fake = cached
    plain = create(c).parse()
    raw = c.chat.completions.with_raw_response.create(
        model="cached", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert raw.headers["x-gateway-cache"] == "hit" and raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == plain.choices[0].message.content
    assert any(ch.choices and ch.choices[0].finish_reason == "stop" for ch in chunks)
    assert chunks[-1].usage.total_tokens == plain.usage.total_tokens
    assert len(fake.requests) == 1


def test_streamed_miss_fills_the_cache_for_streams_and_plain_requests(cached):
    c, fake = cached
    first = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
        model="cached", messages=MESSAGES, stream=True) if ch.choices)
    again = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
        model="cached", messages=MESSAGES, stream=True) if ch.choices)
    plain = create(c)
    assert first == again == plain.parse().choices[0].message.content
    assert plain.headers["x-gateway-cache"] == "hit"
    assert len(fake.requests) == 1


def test_key_ignores_delivery_fields_but_not_content(cached):
    c, fake = cached
    create(c, user="someone")
    assert create(c, user="someone-else").headers["x-gateway-cache"] == "hit"
    assert create(c, temperature=0.5).headers["x-gateway-cache"] == "miss"
    other = c.chat.completions.with_raw_response.create(model="cached", messages=[{"role": "user", "content": "other"}])
    assert other.headers["x-gateway-cache"] == "miss"
    assert len(fake.requests) == 3


def test_errors_are_never_cached(cached):
    c, fake = cached
    for _ in range(2):
        with pytest.raises(openai.APIStatusError):
            create(c, model="broken")
    assert len(fake.requests) == 2


def test_partial_streams_are_never_cached(cached):
    c, fake = cached
    for _ in range(2):
        with pytest.raises(openai.APIError):
            for _chunk in c.chat.completions.create(model="cut", messages=MESSAGES, stream=True):
                pass
    assert len(fake.requests) == 2


def test_entries_expire_after_their_ttl(cached):
    c, fake = cached
    create(c, model="short")
    assert create(c, model="short").headers["x-gateway-cache"] == "hit"
    time.sleep(0.4)
    assert create(c, model="short").headers["x-gateway-cache"] == "miss"
    assert len(fake.requests) == 2


def test_routes_without_cache_say_nothing_and_always_call(cached):
    c, fake = cached
    assert "x-gateway-cache" not in create(c, model="uncached").headers
    create(c, model="uncached")
    assert len(fake.requests) == 2


def test_embeddings_are_cached_too(gateway, upstream, store_home):
    base, fake = upstream
    providers = {"up": openai_provider(base, {"emb-x": {"type": "embedding"}})}
    url = gateway({"routes": {"embed": {"targets": ["up/emb-x"], "cache": {"ttl": 60}}}, "store": store_home}, providers)
    c = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    first = c.embeddings.with_raw_response.create(model="embed", input=["a", "b"])
    second = c.embeddings.with_raw_response.create(model="embed", input=["a", "b"])
    assert (first.headers["x-gateway-cache"], second.headers["x-gateway-cache"]) == ("miss", "hit")
    assert second.parse().data[1].embedding == first.parse().data[1].embedding
    assert len(fake.requests) == 1


def test_anthropic_messages_share_the_cache_and_limits(gateway, upstream, store_home):
    """/v1/messages goes down the same path: its answers are cached and served as hits, plain and streamed."""
    import anthropic

    base, fake = upstream
    providers = {"up": openai_provider(base, ["gpt-x"])}
    url = gateway({"routes": {"chat": {"targets": ["up/gpt-x"], "cache": {"ttl": 60},
                                       "limits": {"rpm": 3}}}, "store": store_home}, providers)
    c = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    ask = {"model": "chat", "max_tokens": 50, "messages": [{"role": "user", "content": "cache me"}]}
    miss = c.messages.with_raw_response.create(**ask)
    hit = c.messages.with_raw_response.create(**ask)
    assert (miss.headers["x-gateway-cache"], hit.headers["x-gateway-cache"]) == ("miss", "hit")
    assert hit.parse().content[0].text == miss.parse().content[0].text == "Upstream gpt-x: cache me"
    with c.messages.stream(**ask) as stream:
        assert stream.get_final_text() == "Upstream gpt-x: cache me"
    assert len(fake.requests) == 1
    with pytest.raises(anthropic.RateLimitError):
        c.messages.create(**ask)
