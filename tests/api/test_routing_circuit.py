"""Circuit breakers seen from outside: skipped while open, one probe after the cooldown, in /metrics."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.configs import openai_provider

HI = [{"role": "user", "content": "hi"}]
COOLDOWN = 1.0


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def circuit_state(url: str, target: str) -> float | None:
    text = httpx.get(f"{url}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gateway_circuit_state" and sample.labels.get("target") == target:
                return sample.value
    return None


def routes(first: str) -> dict:
    # A cooldown long enough that a busy machine cannot outlast it between two requests.
    return {"defaults": {"circuit": {"failures": 2, "cooldown": COOLDOWN}},
            "routes": {"r": {"targets": [first, "echo/echo-1"], "retry": {"attempts": 1}}}}


def test_circuit_opens_skips_the_target_then_a_probe_closes_it(gateway, upstream):
    base, fake = upstream
    model = "flaky-2-500-circuit-closes"
    url = gateway(routes(f"up/{model}"), {"up": openai_provider(base, [model]), "echo": {"api": "echo", "models": {"echo-1": {}}}})
    c = client(url)
    target = f"up/{model}"
    for _ in range(2):  # two failures, each answered by the fallback
        raw = c.chat.completions.with_raw_response.create(model="r", messages=HI)
        assert raw.headers["x-gateway-target"] == "echo/echo-1" and raw.headers["x-gateway-attempts"] == "2"
    assert circuit_state(url, target) == 2  # open
    raw = c.chat.completions.with_raw_response.create(model="r", messages=HI)
    assert raw.headers["x-gateway-attempts"] == "1"  # skipped, not waited for
    assert fake.calls[model] == 2
    time.sleep(COOLDOWN + 0.05)
    raw = c.chat.completions.with_raw_response.create(model="r", messages=HI)  # the probe, which now succeeds
    assert raw.headers["x-gateway-target"] == target
    assert circuit_state(url, target) == 0  # closed
    assert client(url).chat.completions.with_raw_response.create(model="r", messages=HI).headers["x-gateway-target"] == target


def test_a_failed_probe_reopens_the_circuit(gateway, upstream):
    base, fake = upstream
    url = gateway(routes("up/fail-500-reopens"),
                  {"up": openai_provider(base, ["fail-500-reopens"]), "echo": {"api": "echo", "models": {"echo-1": {}}}})
    c = client(url)
    for _ in range(3):
        c.chat.completions.create(model="r", messages=HI)
    assert fake.calls["fail-500-reopens"] == 2
    time.sleep(COOLDOWN + 0.05)
    c.chat.completions.create(model="r", messages=HI)  # probe fails: open again at once
    c.chat.completions.create(model="r", messages=HI)
    assert fake.calls["fail-500-reopens"] == 3
    assert circuit_state(url, "up/fail-500-reopens") == 2


def test_all_circuits_open_is_503_with_retry_after(gateway, upstream):
    base, fake = upstream
    url = gateway({"defaults": {"circuit": {"failures": 1, "cooldown": 5}},
                   "routes": {"r": {"targets": ["up/fail-503-all-open"], "retry": {"attempts": 1}}}},
                  {"up": openai_provider(base, ["fail-503-all-open"])})
    c = client(url)
    with pytest.raises(openai.APIStatusError) as first:
        c.chat.completions.create(model="r", messages=HI)
    assert first.value.status_code == 502
    with pytest.raises(openai.APIStatusError) as caught:
        c.chat.completions.create(model="r", messages=HI)
    assert caught.value.status_code == 503
    assert caught.value.code == "no_target_available"
    assert caught.value.response.headers["retry-after"] in {"5", "6"}
    assert caught.value.body["skipped"][0]["reason"] == "circuit"
    assert fake.calls["fail-503-all-open"] == 1


def test_circuit_state_survives_a_config_reload(upstream, tmp_path):
    """State lives on the Runtime keyed by target id, so swapping the snapshot keeps it."""
    from gateway.providers.snapshots import build_snapshot
    from gateway.server.app import create_app
    from tests.support.configs import write_config
    from tests.support.servers import serve_app

    base, fake = upstream
    providers = {"up": openai_provider(base, ["fail-500-reload"]), "echo": {"api": "echo", "models": {"echo-1": {}}}}
    r, p = write_config(tmp_path / "a", routes("up/fail-500-reload"), providers)
    app = create_app(str(r), str(p))
    with serve_app(app) as url:
        c = client(url)
        for _ in range(2):
            c.chat.completions.create(model="r", messages=HI)
        runtime = app.state.runtime
        changed = routes("up/fail-500-reload")
        changed["routes"]["r"]["description"] = "edited"
        r2, p2 = write_config(tmp_path / "b", changed, providers)
        runtime.snapshot = build_snapshot(r2, p2)  # what a reload does: swap the one reference
        raw = c.chat.completions.with_raw_response.create(model="r", messages=HI)
        assert raw.headers["x-gateway-config"] == runtime.snapshot.version
        assert raw.headers["x-gateway-attempts"] == "1"  # still open after the swap
    assert fake.calls["fail-500-reload"] == 2
