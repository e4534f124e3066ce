"""Redis stopped or frozen mid-run: the configured fail-open/fail-closed behaviour, no hang, no 500,
/ready and /metrics tell, and everything comes back without a restart.

A dedicated redis-server is started here, so the test can kill it, freeze it and start it again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.redis_server import RedisServer, new_prefix, unavailable

KEY = "sk-outage-test-key-000001"
AUTH = {"authorization": f"Bearer {KEY}"}
CHAT = {"messages": [{"role": "user", "content": "still there?"}]}
SLOW_ENOUGH = 1.0  # seconds: far below any hang, far above store.timeout


@pytest.fixture
def redis_server():
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed")
    server = RedisServer().start()
    yield server
    if server.process is not None and server.process.poll() is None:
        os.kill(server.process.pid, signal.SIGCONT)
    server.close()


@pytest.fixture
def served(gateway, redis_server, monkeypatch) -> str:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    routes = {
        "routes": {
            "limited": {"targets": ["echo/echo-1"], "limits": {"rpm": 1000}},
            "strict": {"targets": ["echo/echo-1"], "limits": {"rpm": 2}},
            "cached": {"targets": ["echo/echo-1"], "cache": {"ttl": 60}},
            "budgeted": {"targets": ["echo/echo-1"]},
        },
        "keys": [{"name": "outage", "sha256": hashlib.sha256(KEY.encode()).hexdigest(),
                  "routes": ["limited", "strict", "cached"]},
                 {"name": "payer", "sha256": hashlib.sha256(b"sk-outage-payer-key-0001").hexdigest(),
                  "budget": {"usd": 5, "per": "day"}}],
        "store": {"prefix": new_prefix(), "timeout": 0.05, "retry_interval": 0.2,
                  "on_outage": {"limits": "open", "budgets": "closed"}},
    }
    return gateway(routes)


def post(url: str, model: str, key: str = KEY) -> httpx.Response:
    started = time.monotonic()
    response = httpx.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                          json={"model": model, **CHAT}, timeout=10)
    assert time.monotonic() - started < SLOW_ENOUGH, "a request waited on a dead Redis"
    return response


def store_errors(url: str) -> float:
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        if family.name == "gateway_store_errors":
            return sum(s.value for s in family.samples if s.name.endswith("_total"))
    return 0.0


def check_outage(url: str) -> None:
    """While Redis cannot answer: limits open, budgets closed, cache misses, /ready says so."""
    errors_before = store_errors(url)
    for _ in range(3):
        assert post(url, "limited").status_code == 200
    assert post(url, "cached").status_code == 200
    refused = post(url, "budgeted", "sk-outage-payer-key-0001")
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "store_unavailable" and refused.headers["retry-after"] == "1"
    ready = httpx.get(f"{url}/ready", timeout=5)
    assert ready.status_code == 503 and ready.json()["store"] == {"kind": "redis", "up": False}
    assert store_errors(url) >= errors_before + 4


def check_recovered(url: str) -> None:
    deadline = time.monotonic() + 5
    while httpx.get(f"{url}/ready").status_code != 200:
        assert time.monotonic() < deadline, "the gateway did not notice Redis coming back"
        time.sleep(0.05)
    time.sleep(0.25)  # past store.retry_interval
    assert post(url, "budgeted", "sk-outage-payer-key-0001").status_code == 200
    # Limits are enforced again, from Redis.
    assert [post(url, "strict").status_code for _ in range(3)] == [200, 200, 429]


def test_redis_killed_then_restarted(served, redis_server):
    assert post(served, "limited").status_code == 200
    assert post(served, "cached").status_code == 200
    redis_server.stop()
    check_outage(served)
    redis_server.start()  # same port: the gateway reconnects on its own
    check_recovered(served)
    assert post(served, "cached").headers["x-gateway-cache"] == "miss"  # a new, empty Redis


def test_redis_frozen_then_thawed(served, redis_server):
    """A Redis that accepts connections but never answers: each call gives up at store.timeout."""
    assert post(served, "limited").status_code == 200
    pid = redis_server.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        check_outage(served)
    finally:
        os.kill(pid, signal.SIGCONT)
    check_recovered(served)
