"""rpm, tpm, concurrency and max_tokens on keys, routes and providers, in both store homes.

Every refusal is checked through the official openai SDK: a RateLimitError carrying
`rate_limit_exceeded`, `Retry-After` and OpenAI's x-ratelimit-* headers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time

import httpx
import openai
import pytest

from tests.support.configs import ECHO_PROVIDER, openai_provider

KEY = "sk-limits-test-key-000001"
OTHER = "sk-limits-test-key-000002"
MESSAGES = [{"role": "user", "content": "hello"}]


def routes(store: dict, route: dict, key_limits: dict | None = None) -> dict:
    keys = [{"name": "tester", "sha256": hashlib.sha256(KEY.encode()).hexdigest(), "limits": key_limits or {}},
            {"name": "other", "sha256": hashlib.sha256(OTHER.encode()).hexdigest()}]
    return {"routes": {"limited": route, "free": {"targets": ["echo/echo-1"]}}, "keys": keys, "store": store}


def client(url: str, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def ask(url: str, key: str = KEY, model: str = "limited", **extra):
    return client(url, key).chat.completions.with_raw_response.create(model=model, messages=MESSAGES, **extra)


def test_key_rpm_refuses_with_openai_headers(gateway, store_home):
    url = gateway(routes(store_home, {"targets": ["echo/echo-1"]}, {"rpm": 2}))
    first = ask(url)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert ask(url).headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError) as caught:
        ask(url)
    error = caught.value
    assert error.code == "rate_limit_exceeded" and error.type == "rate_limit_error"
    assert "tester" in error.message and KEY not in error.response.text
    headers = error.response.headers
    assert 1 <= int(headers["retry-after"]) <= 30  # one request back after 60/2 s
    assert headers["x-ratelimit-limit-requests"] == "2"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"].endswith("s")
    # The key's limit is the key's: another key is not affected.
    assert ask(url, OTHER).http_response.status_code == 200


def test_a_reload_that_changes_a_limit_applies_to_the_next_request(gateway, store_home, monkeypatch):
    """Limits are read from the snapshot serving the request: a reload that raises a key's rpm
    is in force for the very next request."""
    monkeypatch.setenv("GATEWAY_ADMIN_KEY", "admin-key-limits-0123")
    monkeypatch.setenv("GATEWAY_WATCH", "0")
    url = gateway(routes(store_home, {"targets": ["echo/echo-1"], "limits": {"rpm": 100}}, {"rpm": 2}))
    admin = {"authorization": "Bearer admin-key-limits-0123"}
    assert ask(url).headers["x-ratelimit-limit-requests"] == "2"
    source = httpx.get(f"{url}/admin/config", headers=admin).json()["sources"][0]
    changed = routes(store_home, {"targets": ["echo/echo-1"], "limits": {"rpm": 50}}, {"rpm": 500})
    with open(source, "w") as file:
        file.write(json.dumps(changed))
    assert httpx.post(f"{url}/admin/reload", headers=admin).status_code == 200
    # The key's bucket is still nearly empty from before: the tightest, at its new size.
    assert ask(url).headers["x-ratelimit-limit-requests"] == "500"
    time.sleep(0.3)  # at 500 a minute, two requests' worth refill meanwhile; at 2 a minute, none
    assert ask(url).http_response.status_code == 200


def test_route_rpm_is_shared_by_every_key(gateway, store_home):
    url = gateway(routes(store_home, {"targets": ["echo/echo-1"], "limits": {"rpm": 1}}))
    ask(url)
    with pytest.raises(openai.RateLimitError) as caught:
        ask(url, OTHER)
    assert "limited" in caught.value.message
    assert caught.value.response.headers["x-ratelimit-limit-requests"] == "1"
    assert ask(url, OTHER, model="free").http_response.status_code == 200


def test_tpm_counts_the_estimate_then_the_real_usage(gateway, upstream, store_home):
    base, fake = upstream
    providers = {"up": openai_provider(base, ["gpt-x"]), "echo": ECHO_PROVIDER}
    url = gateway(routes(store_home, {"targets": ["up/gpt-x"], "limits": {"tpm": 300}}), providers)
    # Taken at the estimate (prompt plus max_tokens, ~206 tokens), settled at the real 18.
    first = ask(url, max_tokens=200)
    assert first.headers["x-ratelimit-limit-tokens"] == "300"
    assert int(first.headers["x-ratelimit-remaining-tokens"]) < 100
    # Had the estimate stayed counted, this one would be refused.
    second = ask(url, max_tokens=200)
    assert int(second.headers["x-ratelimit-remaining-tokens"]) > 50
    passed = 2
    with pytest.raises(openai.RateLimitError) as caught:
        for _ in range(20):
            ask(url, max_tokens=200)
            passed += 1
    headers = caught.value.response.headers
    assert headers["x-ratelimit-limit-tokens"] == "300"
    assert int(headers["retry-after"]) >= 1 and headers["x-ratelimit-reset-tokens"]
    assert "tokens per minute" in caught.value.message
    # (300 - 206) / 18 more fit before the bucket is below one estimate.
    assert 5 <= passed <= 8 and len(fake.requests) == passed


def test_streamed_usage_settles_tpm_too(gateway, upstream, store_home):
    base, fake = upstream
    providers = {"up": openai_provider(base, ["gpt-x"]), "echo": ECHO_PROVIDER}
    url = gateway(routes(store_home, {"targets": ["up/gpt-x"], "limits": {"tpm": 600}}), providers)
    sent = 0
    with pytest.raises(openai.RateLimitError):
        for _ in range(30):
            stream = client(url).chat.completions.create(
                model="limited", messages=MESSAGES, max_tokens=500, stream=True,
                stream_options={"include_usage": True},
            )
            assert [c for c in stream][-1].usage is not None
            sent += 1
    assert sent >= 5  # the real ~14 tokens each were counted, not the 506 estimated


def test_concurrency_limit_under_parallel_requests(gateway, upstream, store_home):
    base, fake = upstream
    providers = {"up": openai_provider(base, ["slow-400"]), "echo": ECHO_PROVIDER}
    url = gateway(routes(store_home, {"targets": ["up/slow-400"]}, {"concurrency": 2}), providers)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=10) as http:
            return await asyncio.gather(*(
                http.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {KEY}"},
                          json={"model": "limited", "messages": MESSAGES})
                for _ in range(6)
            ))

    responses = asyncio.run(burst())
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 429, 429, 429, 429]
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert refused.headers["x-ratelimit-limit-concurrency"] == "2"
    assert refused.headers["x-ratelimit-remaining-concurrency"] == "0"
    assert refused.headers["retry-after"] == "1"
    # Slots are given back once the answers are in.
    assert asyncio.run(burst()) and len(fake.requests) == 4


def test_concurrency_refusal_through_the_sdk(gateway, upstream, store_home):
    base, _ = upstream
    providers = {"up": openai_provider(base, ["slow-400"]), "echo": ECHO_PROVIDER}
    url = gateway(routes(store_home, {"targets": ["up/slow-400"], "limits": {"concurrency": 1}}), providers)

    async def two() -> list:
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0) as c:
            return await asyncio.gather(
                *(c.chat.completions.create(model="limited", messages=MESSAGES) for _ in range(2)),
                return_exceptions=True,
            )

    results = asyncio.run(two())
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], openai.RateLimitError)
    assert errors[0].response.headers["x-ratelimit-limit-concurrency"] == "1"


def test_max_tokens_over_the_route_cap_is_400(gateway, store_home):
    url = gateway(routes(store_home, {"targets": ["echo/echo-1"], "limits": {"max_tokens": 100}}))
    with pytest.raises(openai.BadRequestError) as caught:
        ask(url, max_tokens=101)
    assert caught.value.code == "max_tokens_exceeded" and caught.value.param == "max_tokens"
    with pytest.raises(openai.BadRequestError):
        ask(url, max_completion_tokens=5000)
    assert ask(url, max_tokens=100).http_response.status_code == 200


def test_provider_at_its_quota_is_skipped_not_waited_for(gateway, upstream, store_home):
    base, fake = upstream
    providers = {"capped": openai_provider(base, ["gpt-a"], limits={"rpm": 1}), "echo": ECHO_PROVIDER}
    url = gateway(routes(store_home, {"targets": ["capped/gpt-a", "echo/echo-1"]}), providers)
    assert ask(url).headers["x-gateway-target"] == "capped/gpt-a"
    second = ask(url)
    assert second.headers["x-gateway-target"] == "echo/echo-1"
    assert second.headers["x-gateway-attempts"] == "1"
    assert len(fake.requests) == 1


def test_every_provider_at_its_quota_is_503(gateway, upstream, store_home):
    base, fake = upstream
    providers = {"capped": openai_provider(base, ["gpt-a", "gpt-b"], limits={"rpm": 1}), "echo": ECHO_PROVIDER}
    url = gateway(routes(store_home, {"targets": ["capped/gpt-a", "capped/gpt-b"]}), providers)
    ask(url)
    with pytest.raises(openai.InternalServerError) as caught:
        ask(url)
    assert caught.value.status_code == 503
    assert caught.value.code == "no_target_available"
    assert len(fake.requests) == 1


def test_provider_concurrency_skips_to_the_next_target(gateway, upstream, store_home):
    base, fake = upstream
    providers = {"capped": openai_provider(base, ["slow-400"], limits={"concurrency": 1}), "echo": ECHO_PROVIDER}
    url = gateway(routes(store_home, {"targets": ["capped/slow-400", "echo/echo-1"]}), providers)

    async def two() -> list[str]:
        async with httpx.AsyncClient(timeout=10) as http:
            answers = await asyncio.gather(*(
                http.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {KEY}"},
                          json={"model": "limited", "messages": MESSAGES})
                for _ in range(2)
            ))
        return sorted(a.headers["x-gateway-target"] for a in answers)

    assert asyncio.run(two()) == ["capped/slow-400", "echo/echo-1"]
