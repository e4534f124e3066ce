"""Key budgets: cost from providers.yaml prices and the answer's usage, reserved before, settled after.

Prices here are $1 per token, so the local upstream's answer (11 prompt + 7 completion
tokens) costs exactly $18 and the arithmetic is easy to check.
"""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import openai
import pytest

from tests.support.configs import ECHO_PROVIDER, openai_provider

KEY = "sk-budget-test-key-000001"
ADMIN = "admin-secret-for-tests-0001"
MESSAGES = [{"role": "user", "content": "hello"}]
DOLLAR_A_TOKEN = {"input_per_1m": 1_000_000, "output_per_1m": 1_000_000}


def config(store: dict, usd: float, per: str = "day") -> dict:
    return {
        "routes": {"paid": {"targets": ["up/gpt-x"]}, "paid-slow": {"targets": ["up/slow-400"]}},
        "keys": [{"name": "buyer", "sha256": hashlib.sha256(KEY.encode()).hexdigest(),
                  "budget": {"usd": usd, "per": per}}],
        "store": store,
    }


def providers(base: str) -> dict:
    return {"up": openai_provider(base, {"gpt-x": DOLLAR_A_TOKEN, "slow-400": DOLLAR_A_TOKEN}), "echo": ECHO_PROVIDER}


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)


def usage_report(url: str, **params: str) -> dict:
    response = httpx.get(f"{url}/admin/usage", params=params, headers={"authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(autouse=True)
def admin_key(monkeypatch):
    monkeypatch.setenv("GATEWAY_ADMIN_KEY", ADMIN)


def test_tiny_budget_is_exhausted_with_insufficient_quota(gateway, upstream, store_home):
    base, fake = upstream
    url = gateway(config(store_home, usd=10), providers(base))
    assert client(url).chat.completions.create(model="paid", messages=MESSAGES).usage.total_tokens == 18
    with pytest.raises(openai.RateLimitError) as caught:
        client(url).chat.completions.create(model="paid", messages=MESSAGES)
    error = caught.value
    assert error.status_code == 429
    assert error.type == "insufficient_quota" and error.code == "budget_exceeded"
    assert "buyer" in error.message and KEY not in error.response.text
    wait = int(error.response.headers["retry-after"])
    assert 1 <= wait <= 86400  # until the next UTC day
    assert len(fake.requests) == 1
    key = next(k for k in usage_report(url)["keys"] if k["key"] == "buyer")
    assert key["cost_usd"] == pytest.approx(18.0)
    assert key["budget"] == {"usd": 10.0, "per": "day", "spent_usd": pytest.approx(18.0), "remaining_usd": 0.0}


def test_reservations_stop_parallel_requests_from_overspending(gateway, upstream, store_home):
    base, fake = upstream
    url = gateway(config(store_home, usd=100), providers(base))

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=10) as http:
            return await asyncio.gather(*(
                http.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {KEY}"},
                          json={"model": "paid-slow", "messages": MESSAGES})
                for _ in range(4)
            ))

    responses = asyncio.run(burst())
    # The first reserves its estimate (~$262 at the default 256 output tokens): nothing is left for the rest.
    assert sorted(r.status_code for r in responses) == [200, 429, 429, 429]
    assert all(r.json()["error"]["code"] == "budget_exceeded" for r in responses if r.status_code == 429)
    assert len(fake.requests) == 1
    # Settled at the real $18: the reservation's remainder came back.
    assert usage_report(url)["keys"][0]["budget"]["spent_usd"] == pytest.approx(18.0)
    assert client(url).chat.completions.create(model="paid", messages=MESSAGES).usage.total_tokens == 18


def test_streamed_answers_are_charged_from_their_final_usage_chunk(gateway, upstream, store_home):
    base, _ = upstream
    url = gateway(config(store_home, usd=1000, per="month"), providers(base))
    chunks = list(client(url).chat.completions.create(
        model="paid", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ))
    assert chunks[-1].usage.total_tokens == 14  # 11 prompt + 3 streamed words
    report = usage_report(url, period="month")
    buyer = next(k for k in report["keys"] if k["key"] == "buyer")
    assert buyer["cost_usd"] == pytest.approx(14.0)
    assert buyer["budget"]["per"] == "month" and buyer["budget"]["spent_usd"] == pytest.approx(14.0)


def test_streams_without_usage_are_charged_an_estimate(gateway, upstream, store_home):
    base, _ = upstream
    url = gateway(config(store_home, usd=1000), providers(base))
    text = "".join(c.choices[0].delta.content or "" for c in client(url).chat.completions.create(
        model="paid", messages=MESSAGES, stream=True) if c.choices)
    assert text == "Upstream gpt-x: hello"
    buyer = usage_report(url)["keys"][0]
    assert buyer["completion_tokens"] == 6  # 21 characters at about four per token
    assert buyer["prompt_tokens"] > 0 and buyer["cost_usd"] == buyer["total_tokens"]
