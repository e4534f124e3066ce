"""Two real `gateway serve` processes sharing one rpm limit, one budget and one cache through Redis."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.configs import ECHO_PROVIDER, openai_provider, write_config
from tests.support.openai_upstream import OpenAIUpstream
from tests.support.redis_server import new_prefix
from tests.support.servers import gateway_process, serve_app

KEY = "sk-shared-replicas-key-0001"
FREE_KEY = "sk-shared-replicas-key-0002"
ADMIN = "admin-key-for-replica-tests"
MESSAGES = [{"role": "user", "content": "shared"}]


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, redis_url: str):
    """Started once for the module: each test uses its own routes and keys, so they do not meet."""
    fake = OpenAIUpstream()
    with serve_app(fake.app()) as base:
        yield from _replicas(tmp_path_factory.mktemp("replicas"), base, fake, redis_url)


def _replicas(tmp_path: Path, base: str, fake: OpenAIUpstream, redis_url: str):
    price = {"input_per_1m": 1_000_000, "output_per_1m": 1_000_000}
    providers = {
        "up": openai_provider(base, {"gpt-x": price}),
        "flaky": openai_provider(base, ["fail-500-shared"], circuit={"failures": 2, "cooldown": 60}),
        "echo": ECHO_PROVIDER,
    }
    routes = {
        "routes": {
            "limited": {"targets": ["echo/echo-1"], "limits": {"rpm": 3}},
            "paid": {"targets": ["up/gpt-x"]},
            "cached": {"targets": ["up/gpt-x"], "cache": {"ttl": 60}},
            "fragile": {"targets": ["flaky/fail-500-shared", "echo/echo-1"], "retry": {"attempts": 1}},
        },
        "keys": [{"name": "shared", "sha256": hashlib.sha256(KEY.encode()).hexdigest(),
                  "budget": {"usd": 10, "per": "day"}},
                 {"name": "free", "sha256": hashlib.sha256(FREE_KEY.encode()).hexdigest()}],
        "store": {"prefix": new_prefix()},
    }
    routes_path, providers_path = write_config(tmp_path / "config", routes, providers)
    # One data folder for both: replicas on one host share the ledger's SQLite file.
    env = {"REDIS_URL": redis_url, "GATEWAY_ADMIN_KEY": ADMIN, "GATEWAY_DATA_DIR": str(tmp_path / "data")}
    with gateway_process(routes_path, providers_path, env=env) as (a, _), \
            gateway_process(routes_path, providers_path, env=env) as (b, _):
        yield a, b, fake


def client(url: str, key: str = FREE_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def test_replicas_share_one_rpm_limit(replicas):
    a, b, _ = replicas
    for url in (a, b, a):
        client(url).chat.completions.create(model="limited", messages=MESSAGES)
    for url in (b, a):
        with pytest.raises(openai.RateLimitError) as caught:
            client(url).chat.completions.create(model="limited", messages=MESSAGES)
        assert caught.value.response.headers["x-ratelimit-limit-requests"] == "3"


def test_replicas_share_one_budget(replicas):
    a, b, fake = replicas
    before = len(fake.requests)
    assert client(a, KEY).chat.completions.create(model="paid", messages=MESSAGES).usage.total_tokens == 18  # $18 of $10
    with pytest.raises(openai.RateLimitError) as caught:
        client(b, KEY).chat.completions.create(model="paid", messages=MESSAGES)
    assert caught.value.code == "budget_exceeded"
    assert len(fake.requests) == before + 1
    # Both replicas report the same spend, whichever answered.
    deadline = time.monotonic() + 5
    while True:
        report = httpx.get(f"{b}/admin/usage", headers={"authorization": f"Bearer {ADMIN}"}).json()
        shared = next(k for k in report["keys"] if k["key"] == "shared")
        if shared["cost_usd"] == 18.0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)  # replica a sends its usage totals within a second
    assert shared["cost_usd"] == 18.0 and shared["budget"]["spent_usd"] == 18.0


def test_replicas_share_one_cache(replicas):
    a, b, fake = replicas
    before = len(fake.requests)
    miss = client(a).chat.completions.with_raw_response.create(model="cached", messages=MESSAGES)
    hit = client(b).chat.completions.with_raw_response.create(model="cached", messages=MESSAGES)
    streamed = client(a).chat.completions.with_raw_response.create(model="cached", messages=MESSAGES, stream=True)
    assert (miss.headers["x-gateway-cache"], hit.headers["x-gateway-cache"]) == ("miss", "hit")
    assert streamed.headers["x-gateway-cache"] == "hit"
    text = "".join(c.choices[0].delta.content or "" for c in streamed.parse() if c.choices)
    assert text == hit.parse().choices[0].message.content == miss.parse().choices[0].message.content
    assert len(fake.requests) == before + 1


def test_replicas_share_circuit_breakers(replicas):
    a, b, fake = replicas
    for _ in range(2):  # two failures open the circuit on replica a
        answer = client(a).chat.completions.with_raw_response.create(model="fragile", messages=MESSAGES)
        assert answer.headers["x-gateway-target"] == "echo/echo-1"
    called = len(fake.requests)
    time.sleep(1.5)  # replica b reads the shared circuit state every second
    answer = client(b).chat.completions.with_raw_response.create(model="fragile", messages=MESSAGES)
    # b never tried the failing target itself: it skipped it from the first request.
    assert answer.headers["x-gateway-attempts"] == "1" and answer.headers["x-gateway-target"] == "echo/echo-1"
    assert len(fake.requests) == called
    metrics = httpx.get(f"{b}/metrics").text
    assert 'gateway_circuit_state{target="flaky/fail-500-shared"} 2.0' in metrics


def test_ready_reports_the_redis_store(replicas):
    a, _, _ = replicas
    ready = httpx.get(f"{a}/ready").json()
    assert ready["status"] == "ready" and ready["store"] == {"kind": "redis", "up": True}
