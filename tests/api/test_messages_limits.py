"""Limits and the cache serve /v1/messages as they serve /v1/chat/completions."""

from __future__ import annotations

import anthropic
import pytest

from tests.support.anthropic_upstream import AnthropicUpstream
from tests.support.servers import serve_app

HELLO = [{"role": "user", "content": "hello"}]


def client(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)


def test_a_route_limit_is_the_sdks_rate_limit_error_with_retry_after(gateway):
    url = gateway({"routes": {"limited": {"targets": ["echo/echo-1"], "limits": {"rpm": 1}}}})
    c = client(url)
    assert c.messages.create(model="limited", max_tokens=8, messages=HELLO).content[0].text == "Echo: hello"
    with pytest.raises(anthropic.RateLimitError) as caught:
        c.messages.create(model="limited", max_tokens=8, messages=HELLO)
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert int(caught.value.response.headers["retry-after"]) >= 1


def test_max_tokens_over_the_routes_cap_is_an_invalid_request_error(gateway):
    url = gateway({"routes": {"capped": {"targets": ["echo/echo-1"], "limits": {"max_tokens": 100}}}})
    with pytest.raises(anthropic.BadRequestError) as caught:
        client(url).messages.create(model="capped", max_tokens=1000, messages=HELLO)
    assert caught.value.body["error"]["type"] == "invalid_request_error"


def test_a_native_answer_is_cached_and_served_again_in_anthropic_shape(gateway):
    fake = AnthropicUpstream()
    with serve_app(fake.app()) as base:
        url = gateway(
            {"routes": {"claude": {"targets": ["ant/m"], "cache": {"ttl": 60}}}},
            {"ant": {"api": "anthropic", "base_url": base, "api_key": "sk-ant-cache-0001", "models": {"m": {}}}},
        )
        c = client(url)
        miss = c.messages.with_raw_response.create(model="claude", max_tokens=16, messages=HELLO)
        hit = c.messages.with_raw_response.create(model="claude", max_tokens=16, messages=HELLO)
        with c.messages.stream(model="claude", max_tokens=16, messages=HELLO) as stream:
            replayed = stream.get_final_text()
    assert (miss.headers["x-gateway-cache"], hit.headers["x-gateway-cache"]) == ("miss", "hit")
    assert hit.parse().content[0].text == miss.parse().content[0].text == replayed == "Anthropic m: hello"
    assert len(fake.requests) == 1
