"""A reload swaps the config, not what the gateway learned: circuits and latency averages
of targets that still exist are kept."""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml

from tests.support.configs import ECHO_PROVIDER, openai_provider

ADMIN = {"authorization": "Bearer admin-key-state-0123"}


def target_state(url: str, alias: str, target: str) -> dict:
    body = httpx.get(f"{url}/admin/routes", headers=ADMIN).json()
    route = next(r for r in body["routes"] if r["alias"] == alias)
    return next(t for t in route["targets"] if t["target"] == target)


def test_an_open_circuit_and_latency_average_survive_a_reload(gateway, upstream, monkeypatch):
    monkeypatch.setenv("GATEWAY_ADMIN_KEY", "admin-key-state-0123")
    monkeypatch.setenv("GATEWAY_WATCH", "0")
    upstream_url, _ = upstream
    routes = {
        "defaults": {"circuit": {"failures": 1, "cooldown": 300}, "retry": {"attempts": 1}},
        "routes": {
            "flaky": {"targets": ["remote/fail-500-a", "echo/echo-1"]},
            "good": {"targets": ["remote/model-ok"]},
        },
    }
    providers = {"echo": ECHO_PROVIDER, "remote": openai_provider(upstream_url, ["fail-500-a", "model-ok"])}
    url = gateway(routes, providers)
    for alias in ("flaky", "good"):
        answer = httpx.post(f"{url}/v1/chat/completions", json={"model": alias, "messages": [{"role": "user", "content": "x"}]})
        assert answer.status_code == 200
    assert target_state(url, "flaky", "remote/fail-500-a")["circuit"]["state"] == "open"
    latency = target_state(url, "good", "remote/model-ok")["latency_avg_ms"]
    assert latency is not None

    routes_path = Path(httpx.get(f"{url}/admin/config", headers=ADMIN).json()["sources"][0])
    routes["routes"]["flaky"]["timeout"] = 30
    routes["routes"]["added"] = {"targets": ["echo/echo-1"]}
    routes_path.write_text(yaml.safe_dump(routes))
    reloaded = httpx.post(f"{url}/admin/reload", headers=ADMIN)
    assert reloaded.json()["result"] == "applied"

    assert target_state(url, "flaky", "remote/fail-500-a")["circuit"]["state"] == "open"
    assert target_state(url, "good", "remote/model-ok")["latency_avg_ms"] == latency
    answer = httpx.post(f"{url}/v1/chat/completions", json={"model": "flaky", "messages": [{"role": "user", "content": "x"}]})
    assert answer.headers["x-gateway-target"] == "echo/echo-1" and answer.headers["x-gateway-attempts"] == "1"
    assert answer.headers["x-gateway-config"] == reloaded.json()["version"]
