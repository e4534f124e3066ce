"""Errors a client can act on (a real process): 429 with the soonest Retry-After when every
target is rate limited; a 502 that says what was tried but keeps the providers' own
words in the log, unless the config says to show them."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.support.configs import openai_provider, write_config
from tests.support.servers import gateway_process

HELLO = [{"role": "user", "content": "hi"}]


def _config(tmp_path, base, **defaults):
    return write_config(
        tmp_path,
        {"defaults": {"retry": {"attempts": 1}, "circuit": {"failures": 1000}, **defaults},
         "routes": {"limited": {"targets": ["up/flaky-99-429-ra7", "up/flaky-99-429-ra3", "up/flaky-99-429"]},
                    "broken": {"targets": ["up/fail-500", "up/fail-503"]}}},
        {"up": openai_provider(base, ["flaky-99-429-ra7", "flaky-99-429-ra3", "flaky-99-429", "fail-500", "fail-503"])},
    )


def test_every_target_rate_limited_is_a_429_with_the_soonest_retry_after(tmp_path, upstream):
    base, fake = upstream
    routes, providers = _config(tmp_path, base)
    with gateway_process(routes, providers) as (url, _):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="limited", messages=HELLO)
    response = caught.value.response
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    error = response.json()["error"]
    assert [a["status"] for a in error["attempts"]] == [429, 429, 429]
    assert len(fake.requests) == 3


def test_a_502_keeps_the_providers_message_in_the_log_only(tmp_path, upstream):
    base, _ = upstream
    routes, providers = _config(tmp_path, base)
    log = tmp_path / "gateway.log"
    with gateway_process(routes, providers, env={"GATEWAY_LOG_FORMAT": "json"}, log=log) as (url, _):
        answer = httpx.post(f"{url}/v1/chat/completions", json={"model": "broken", "messages": HELLO},
                            headers={"x-request-id": "find-me-502"}, timeout=30)
    assert answer.status_code == 502
    assert answer.headers["x-request-id"] == "find-me-502"
    attempts = answer.json()["error"]["attempts"]
    assert attempts == [{"target": "up/fail-500", "status": 500, "class": "server_error"},
                        {"target": "up/fail-503", "status": 503, "class": "server_error"}]
    assert "exploded" not in answer.text and "service unavailable" not in answer.text
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    [line] = [line for line in lines if line.get("request_id") == "find-me-502"]
    assert line["status"] == 502
    assert "upstream exploded" in line["failures"][0]["message"]


def test_expose_upstream_errors_puts_the_messages_in_the_body(tmp_path, upstream):
    base, _ = upstream
    routes, providers = _config(tmp_path, base, expose_upstream_errors=True)
    with gateway_process(routes, providers) as (url, _):
        answer = httpx.post(f"{url}/v1/chat/completions", json={"model": "broken", "messages": HELLO}, timeout=30)
    assert answer.status_code == 502
    assert "upstream exploded" in answer.json()["error"]["attempts"][0]["message"]
