"""The provider's rate limits reach the client as OpenAI's x-ratelimit-* headers, unless
the gateway holds the client to limits of its own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime

import openai
import pytest

from gateway.pipeline.identify import hash_key
from gateway.providers.rate_limits import reset_duration
from tests.support.anthropic_upstream import AnthropicUpstream
from tests.support.configs import openai_provider
from tests.support.openai_upstream import RATE_LIMITS
from tests.support.servers import serve_app

HI = [{"role": "user", "content": "hi"}]
DURATION = re.compile(r"^(\d+ms|\d+(\.\d+)?s|\d+m\d+s)$")
CLIENT_KEY = "sk-client-ratelimits-0001"


def client(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def limits_of(headers: object) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith("x-ratelimit-")}  # type: ignore[attr-defined]


@pytest.fixture
def anthropic_base() -> Iterator[str]:
    with serve_app(AnthropicUpstream().app()) as url:
        yield url


def test_an_openai_providers_limits_pass_through_as_they_are(gateway, upstream):
    base, _ = upstream
    url = gateway({"routes": {"r": {"targets": ["up/good"]}}}, {"up": openai_provider(base, ["good"])})
    raw = client(url).chat.completions.with_raw_response.create(model="r", messages=HI)
    assert limits_of(raw.headers) == RATE_LIMITS


def test_a_stream_carries_them_too(gateway, upstream):
    base, _ = upstream
    url = gateway({"routes": {"r": {"targets": ["up/good"]}}}, {"up": openai_provider(base, ["good"])})
    with client(url).chat.completions.with_streaming_response.create(model="r", messages=HI, stream=True) as raw:
        assert limits_of(raw.headers) == RATE_LIMITS
        assert "".join(raw.iter_lines())  # the stream itself is whole


def test_anthropic_limits_are_renamed_and_resets_become_durations(gateway, anthropic_base):
    provider = {"api": "anthropic", "base_url": anthropic_base, "api_key": "sk-ant-test-0001", "models": {"claude-x": {}}}
    url = gateway({"routes": {"r": {"targets": ["a/claude-x"]}}}, {"a": provider})
    headers = limits_of(client(url).chat.completions.with_raw_response.create(model="r", messages=HI).headers)
    assert headers["x-ratelimit-limit-requests"] == "50"
    assert headers["x-ratelimit-remaining-requests"] == "49"
    assert headers["x-ratelimit-limit-tokens"] == "40000"
    assert headers["x-ratelimit-remaining-tokens"] == "39000"
    for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):
        assert DURATION.match(headers[name]), headers[name]
        seconds = float(headers[name].rstrip("s")) if headers[name].endswith("s") and "m" not in headers[name] else 0
        assert 0 < seconds <= 30  # the upstream resets 30 s ahead
    assert not any(k.startswith("anthropic-") for k in headers)


def test_the_gateways_own_limits_replace_the_providers(gateway, upstream):
    base, _ = upstream
    routes = {
        "keys": [{"name": "team", "sha256": hash_key(CLIENT_KEY), "limits": {"rpm": 7}}],
        "routes": {"r": {"targets": ["up/good"]}},
    }
    url = gateway(routes, {"up": openai_provider(base, ["good"])})
    headers = limits_of(client(url, CLIENT_KEY).chat.completions.with_raw_response.create(model="r", messages=HI).headers)
    assert headers["x-ratelimit-limit-requests"] == "7"
    assert headers["x-ratelimit-remaining-requests"] == "6"
    # One source only: none of the provider's figures are mixed in with the key's.
    assert "x-ratelimit-limit-tokens" not in headers


def test_reset_times_in_other_formats():
    moment = "2027-01-15T08:00:00Z"
    at = datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp()
    assert reset_duration(moment, "rfc3339", now=at - 1.5) == "1.5s"
    assert reset_duration(moment, "rfc3339", now=at - 0.02) == "20ms"
    assert reset_duration(moment, "rfc3339", now=at - 360) == "6m0s"
    assert reset_duration("2027-01-15T09:00:00+01:00", "rfc3339", now=at - 2) == "2s"  # any offset
    assert reset_duration(moment, "rfc3339", now=at + 10) == "0ms"  # already past: now
    assert reset_duration("2027-01-15T08:00:00", "rfc3339", now=at) is None  # no zone: unknowable
    assert reset_duration("soon", "rfc3339", now=at) is None
    assert reset_duration("2.5", "seconds") == "2.5s"
    assert reset_duration("nan", "seconds") is None
