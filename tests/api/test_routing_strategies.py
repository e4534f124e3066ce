"""Each strategy's choice through the official openai SDK against a real gateway and upstream."""

from __future__ import annotations

import socket
from collections import Counter

import httpx
import openai

from tests.support.configs import openai_provider

HI = [{"role": "user", "content": "hi"}]


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def served_by(c: openai.OpenAI, model: str, **extra) -> str:
    raw = c.chat.completions.with_raw_response.create(model=model, messages=HI, **extra)
    return raw.headers["x-gateway-target"]


def test_weighted_split_holds_within_a_few_percent(gateway):
    echo = {"api": "echo", "models": {"echo-a": {}, "echo-b": {}}}
    url = gateway({"routes": {"split": {"strategy": "weighted", "targets": [
        {"target": "echo/echo-a", "weight": 3}, {"target": "echo/echo-b", "weight": 1}]}}}, {"echo": echo})
    # TCP_NODELAY on the client too, so 800 small requests take a few seconds, not a minute.
    transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    c = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, http_client=httpx.Client(transport=transport))
    n = 800
    counts = Counter(served_by(c, "split") for _ in range(n))
    assert counts["echo/echo-a"] + counts["echo/echo-b"] == n
    assert abs(counts["echo/echo-a"] / n - 0.75) < 0.05, counts  # 3.3 sigma at n=800; the unit test is tighter


def test_weighted_falls_back_to_the_rest_on_failure(gateway, upstream):
    base, fake = upstream
    url = gateway(
        {"routes": {"split": {"strategy": "weighted", "retry": {"attempts": 1}, "targets": [
            {"target": "up/fail-500", "weight": 9}, {"target": "up/good", "weight": 1}]}}},
        {"up": openai_provider(base, ["fail-500", "good"])},
    )
    c = client(url)
    for _ in range(10):
        raw = c.chat.completions.with_raw_response.create(model="split", messages=HI)
        assert raw.headers["x-gateway-target"] == "up/good"
    assert Counter(fake.models_called())["fail-500"] >= 5  # mostly drawn first, then fell back


def test_cheapest_picks_by_price_for_the_requests_estimated_tokens(gateway, upstream):
    base, fake = upstream
    models = {"reader": {"input_per_1m": 0.1, "output_per_1m": 30}, "writer": {"input_per_1m": 10, "output_per_1m": 0.2}}
    url = gateway({"routes": {"cheap": {"strategy": "cheapest", "targets": ["up/writer", "up/reader"]}}},
                  {"up": openai_provider(base, models)})
    c = client(url)
    long_prompt = [{"role": "user", "content": "lorem ipsum " * 3000}]
    raw = c.chat.completions.with_raw_response.create(model="cheap", messages=long_prompt, max_tokens=16)
    assert raw.headers["x-gateway-target"] == "up/reader"
    assert served_by(c, "cheap", max_tokens=4000) == "up/writer"


def test_fastest_prefers_the_lower_latency_target_and_still_explores(gateway, upstream):
    base, fake = upstream
    url = gateway({"routes": {"quick": {"strategy": "fastest", "targets": ["up/slow-60", "up/quick"]}}},
                  {"up": openai_provider(base, ["slow-60", "quick"])})
    c = client(url)
    counts = Counter(served_by(c, "quick") for _ in range(60))
    # Both are measured first; then about 90% go to the fast one, the rest explore.
    assert counts["up/quick"] >= 45, counts
    assert counts["up/slow-60"] >= 1, counts


def test_fallback_goes_in_order_and_equivalents_extend_the_chain(gateway, upstream):
    base, fake = upstream
    url = gateway(
        {
            "defaults": {"retry": {"attempts": 1}},
            "equivalents": {"frontier": ["up/fail-429", "up/fail-503", "up/good"]},
            "routes": {
                "chain": {"targets": ["up/fail-500", "up/fail-429"], "fallback": "equivalents"},
                "cls": {"equivalent": "frontier"},
            },
        },
        {"up": openai_provider(base, ["fail-500", "fail-429", "fail-503", "good"])},
    )
    c = client(url)
    raw = c.chat.completions.with_raw_response.create(model="chain", messages=HI)
    assert raw.headers["x-gateway-target"] == "up/good"
    assert raw.headers["x-gateway-attempts"] == "4"
    assert fake.models_called() == ["fail-500", "fail-429", "fail-503", "good"]
    assert served_by(c, "cls") == "up/good"
