"""Each target gets its own time to start answering, so a hanging first target leaves
time for the fallback (a real process), and validate/explain say how the time is shared."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import openai

from tests.support.configs import openai_provider, write_config
from tests.support.servers import ROOT, gateway_process


def _ask(url: str) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    answer = httpx.post(f"{url}/v1/chat/completions", timeout=30,
                        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]})
    return time.monotonic() - started, answer


def test_a_hanging_first_target_leaves_its_share_of_the_deadline_to_the_fallback(tmp_path, upstream):
    base, fake = upstream
    routes, providers = write_config(
        tmp_path, {"routes": {"chat": {"targets": ["up/hang-1", "up/gpt-test"], "timeout": 4,
                                       "retry": {"attempts": 2, "backoff": 0}}}},
        {"up": openai_provider(base, ["hang-1", "gpt-test"])},
    )
    with gateway_process(routes, providers) as (url, _):
        seconds, answer = _ask(url)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "Upstream gpt-test: hi"
    assert answer.headers["x-gateway-target"] == "up/gpt-test"
    # Half of the 4 s deadline went to the hanging target, once (no second try on a hang).
    assert answer.headers["x-gateway-attempts"] == "2"
    assert 1.8 <= seconds < 3.5
    assert fake.models_called() == ["hang-1", "gpt-test"]


def test_a_target_timeout_and_defaults_attempt_timeout_set_the_time(tmp_path, upstream):
    base, fake = upstream
    routes, providers = write_config(
        tmp_path,
        {"defaults": {"attempt_timeout": 0.6},
         "routes": {"chat": {"targets": [{"target": "up/hang-1", "timeout": 0.3}, "up/hang-2", "up/gpt-test"],
                             "timeout": 20}}},
        {"up": openai_provider(base, ["hang-1", "hang-2", "gpt-test"])},
    )
    with gateway_process(routes, providers) as (url, _):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        started = time.monotonic()
        answer = client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in answer.parse() if c.choices)
        seconds = time.monotonic() - started
    assert text == "Upstream gpt-test: hi"
    assert 0.85 <= seconds < 3
    assert fake.models_called() == ["hang-1", "hang-2", "gpt-test"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_validate_warns_when_attempt_times_do_not_fit_and_explain_shows_them(tmp_path):
    providers = {"up": openai_provider("http://127.0.0.1:9", ["a", "b", "c"], timeout={"connect": 5, "read": 60})}
    routes, providers_path = write_config(
        tmp_path,
        {"routes": {
            "tight": {"targets": [{"target": "up/a", "timeout": 8}, "up/b", "up/c"], "timeout": 10},
            "shared": {"targets": ["up/a", "up/b"], "timeout": 30},
        }},
        providers,
    )
    result = _cli("validate", str(routes), str(providers_path), "--format", "json")
    assert result.returncode == 0, result.stderr
    warnings = json.loads(result.stdout)["warnings"]
    assert any("route 'tight': target up/b" in w and "past the route's 10s deadline" in w for w in warnings), warnings
    assert any("route 'tight': target up/c gets no time" in w for w in warnings), warnings
    assert not [w for w in warnings if "'shared'" in w]

    explained = _cli("explain", "shared", "--routes", str(routes), "--providers", str(providers_path), "--format", "json")
    candidates = json.loads(explained.stdout)["candidates"]
    assert [(c["target"], c["attempt_timeout"]) for c in candidates] == [("up/a", 15.0), ("up/b", 15.0)]
    text = _cli("explain", "tight", "--routes", str(routes), "--providers", str(providers_path)).stdout
    assert "up/a  tier -  attempt_timeout 8" in text
