"""/metrics is protected and shows no key names unless asked to; health answers honestly
under the names probes expect (a real process)."""

from __future__ import annotations

import httpx
import openai

from gateway import __version__
from gateway.pipeline.identify import hash_key
from tests.support.configs import ECHO_PROVIDER, write_config
from tests.support.scrape import parse, value
from tests.support.servers import gateway_process

KEY = "metrics-secret-team-key-01"


def _config(tmp_path, **extra):
    return write_config(
        tmp_path,
        {"routes": {"chat": {"targets": ["echo/echo-1"]}},
         "keys": [{"name": "team-alpha", "sha256": hash_key(KEY)}], **extra},
        {"echo": {**ECHO_PROVIDER, "models": {"echo-1": {"input_per_1m": 1.0, "output_per_1m": 1.0}}}},
    )


def _use(url: str) -> None:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
    client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "count me"}])


def test_metrics_need_the_token_and_carry_no_key_names_by_default(tmp_path):
    routes, providers = _config(tmp_path)
    token = "scrape-token-42"
    with gateway_process(routes, providers, env={"GATEWAY_METRICS_TOKEN": token}) as (url, _):
        _use(url)
        assert httpx.get(f"{url}/metrics").status_code == 401
        wrong = httpx.get(f"{url}/metrics", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_metrics_token"
        text = httpx.get(f"{url}/metrics", headers={"authorization": f"Bearer {token}"}).text
    assert "gateway_tokens_total" in text
    assert "team-alpha" not in text
    assert value(parse(text), "gateway_tokens_total", key="", route="chat", target="echo/echo-1", kind="prompt") > 0
    # The in-process store cannot be down: it reports up.
    assert value(parse(text), "gateway_store_up") == 1


def test_per_key_labels_when_the_config_turns_them_on(tmp_path):
    routes, providers = _config(tmp_path, metrics={"per_key_labels": True})
    with gateway_process(routes, providers) as (url, _):
        _use(url)
        text = httpx.get(f"{url}/metrics").text
    assert value(parse(text), "gateway_tokens_total", key="team-alpha", route="chat", target="echo/echo-1", kind="prompt") > 0


def test_health_aliases_version_and_request_ids(tmp_path):
    routes, providers = _config(tmp_path)
    with gateway_process(routes, providers) as (url, _):
        health = httpx.get(f"{url}/health")
        assert health.json() == {"status": "ok", "version": __version__}
        assert httpx.get(f"{url}/healthz").json() == health.json()
        assert httpx.get(f"{url}/livez").status_code == 200
        ready = httpx.get(f"{url}/readyz", headers={"x-request-id": "probe-7"})
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        assert ready.headers["x-request-id"] == "probe-7"
        assert len(httpx.get(f"{url}/health").headers["x-request-id"]) == 32
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": "x"}], extra_headers={"x-request-id": "trace-abc-1"})
        assert raw.headers["x-request-id"] == "trace-abc-1"
        fresh = client.chat.completions.with_raw_response.create(model="chat", messages=[{"role": "user", "content": "x"}])
        assert len(fresh.headers["x-request-id"]) == 32
