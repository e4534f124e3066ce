"""/metrics after a known set of requests: values, not just names, parsed with
prometheus-client's own parser."""

from __future__ import annotations

import httpx
import openai
import pytest

from gateway.pipeline.identify import hash_key
from tests.support.configs import ECHO_PROVIDER, openai_provider
from tests.support.scrape import scrape, total, value

CLIENT_KEY = "metrics-client-key-0001"
PRICES = {"input_per_1m": 2.0, "output_per_1m": 10.0}


@pytest.fixture
def served(gateway, upstream):
    base, fake = upstream
    provider = openai_provider(base, {
        "fail-500": PRICES, "gpt-test": PRICES, "slow-1": {}, "bad-request": PRICES, "emb": {"type": "embedding", "input_per_1m": 1.0},
    })
    url = gateway(
        {
            # One try per target and a circuit that never opens: every count below is exact.
            "defaults": {"retry": {"attempts": 1}, "circuit": {"failures": 1000}},
            "routes": {
                "m-chat": {"targets": ["up/fail-500", "up/gpt-test"]},
                "m-plain": {"targets": ["up/gpt-test"]},
                "m-slow": {"targets": ["up/slow-1"]},
                "m-bad": {"targets": ["up/bad-request"]},
                "m-embed": {"targets": ["up/emb"]},
            },
            "keys": [{"name": "team-metrics", "sha256": hash_key(CLIENT_KEY)}],
            "metrics": {"per_key_labels": True},  # the series below are read by key name
        },
        {"up": provider, "echo": ECHO_PROVIDER},
    )
    return url, fake


def sdk(url: str, key: str = CLIENT_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def test_counts_latency_tokens_and_spend_after_known_requests(served):
    url, _ = served
    before = scrape(url)
    client = sdk(url)
    hello = [{"role": "user", "content": "hello"}]
    for _ in range(3):
        client.chat.completions.create(model="m-chat", messages=hello)  # fail-500, then gpt-test
    chunks = list(client.chat.completions.create(model="m-plain", messages=hello, stream=True,
                                                 stream_options={"include_usage": True}))
    streamed_completion = chunks[-1].usage.completion_tokens
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m-bad", messages=hello)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-alias", messages=hello)
    with pytest.raises(openai.AuthenticationError):
        sdk(url, "wrong-key").chat.completions.create(model="m-chat", messages=hello)
    client.embeddings.create(model="m-embed", input="x")
    after = scrape(url)

    def grew(metric: str, /, **labels: str) -> float:
        return round(value(after, metric, **labels) - value(before, metric, **labels), 9)

    chat_ok = {"endpoint": "chat", "route": "m-chat", "target": "up/gpt-test", "status": "200"}
    assert grew("gateway_requests_total", **chat_ok) == 3
    assert grew("gateway_requests_total", endpoint="chat", route="m-plain", target="up/gpt-test", status="200") == 1
    assert grew("gateway_requests_total", endpoint="chat", route="m-bad", target="", status="400") == 1
    assert grew("gateway_requests_total", endpoint="chat", route="", target="", status="404") == 1
    assert grew("gateway_requests_total", endpoint="chat", route="", target="", status="401") == 1
    assert grew("gateway_requests_total", endpoint="embeddings", route="m-embed", target="up/emb", status="200") == 1

    assert grew("gateway_upstream_attempts_total", route="m-chat", target="up/fail-500", **{"class": "server_error"}) == 3
    assert grew("gateway_upstream_attempts_total", route="m-chat", target="up/gpt-test", **{"class": "ok"}) == 3
    assert grew("gateway_upstream_attempts_total", route="m-bad", target="up/bad-request", **{"class": "client_error"}) == 1
    assert grew("gateway_upstream_errors_total", target="up/fail-500", **{"class": "server_error"}) == 3
    assert grew("gateway_upstream_errors_total", target="up/gpt-test", **{"class": "server_error"}) == 0
    assert grew("gateway_fallbacks_total", route="m-chat") == 3
    assert grew("gateway_fallbacks_total", route="m-plain") == 0
    # Upstream time: one observation per call, on the target that was called.
    assert grew("gateway_upstream_duration_seconds_count", target="up/gpt-test") == 4
    assert grew("gateway_upstream_duration_seconds_count", target="up/fail-500") == 3

    # The fake upstream reports 11 prompt / 7 completion tokens for a plain answer.
    tokens = {"key": "team-metrics", "route": "m-chat", "target": "up/gpt-test"}
    assert grew("gateway_tokens_total", kind="prompt", **tokens) == 33
    assert grew("gateway_tokens_total", kind="completion", **tokens) == 21
    assert grew("gateway_cost_usd_total", **tokens) == pytest.approx(3 * (11 * 2.0 + 7 * 10.0) / 1e6)
    streamed = {"key": "team-metrics", "route": "m-plain", "target": "up/gpt-test"}
    assert grew("gateway_tokens_total", kind="completion", **streamed) == streamed_completion
    assert grew("gateway_tokens_total", key="team-metrics", route="m-embed", target="up/emb", kind="prompt") == 3
    assert grew("gateway_cost_usd_total", key="team-metrics", route="m-embed", target="up/emb") == pytest.approx(3 / 1e6)

    # Every answered request is timed once; streams also get a first-byte time.
    assert grew("gateway_request_duration_seconds_count", endpoint="chat", route="m-chat") == 3
    assert grew("gateway_overhead_seconds_count", endpoint="chat", route="m-chat") == 3
    assert grew("gateway_stream_first_byte_seconds_count", route="m-plain", target="up/gpt-test") == 1
    overhead = grew("gateway_overhead_seconds_sum", endpoint="chat", route="m-chat")
    duration = grew("gateway_request_duration_seconds_sum", endpoint="chat", route="m-chat")
    assert 0 < overhead < duration
    assert value(after, "gateway_in_flight_requests", endpoint="chat") == 0


def test_config_version_is_exported(served):
    url, _ = served
    version = httpx.get(f"{url}/ready").json()["config"]
    series = scrape(url)
    assert value(series, "gateway_config_info", version=version) == 1
    assert value(series, "gateway_config_loaded_timestamp_seconds") > 1.6e9


def test_in_flight_counts_a_stream_until_its_last_byte(served):
    url, _ = served
    with httpx.stream("POST", f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {CLIENT_KEY}"},
                      json={"model": "m-slow", "stream": True, "messages": [{"role": "user", "content": "a b"}]}) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
        assert value(scrape(url), "gateway_in_flight_requests", endpoint="chat") == 1
        rest = list(lines)
    assert "data: [DONE]" in rest
    assert value(scrape(url), "gateway_in_flight_requests", endpoint="chat") == 0


def test_client_input_never_becomes_a_label_value(served):
    url, _ = served
    headers = {"authorization": f"Bearer {CLIENT_KEY}", "x-request-id": "evil-request-id-label"}
    httpx.post(f"{url}/v1/chat/completions", headers=headers,
               json={"model": "evil-model-label", "messages": [{"role": "user", "content": "x"}]})
    httpx.post(f"{url}/v1/chat/completions", headers={"authorization": "Bearer evil-key-label"},
               json={"model": "m-plain", "messages": [{"role": "user", "content": "x"}]})
    text = httpx.get(f"{url}/metrics").text
    assert "evil" not in text
    labels = {v for (_, ls) in scrape(url) for (_, v) in ls}
    assert not any("evil" in v for v in labels)


def test_domain_metric_helpers_write_the_series_they_name(served):
    from gateway.observe import metrics

    url, _ = served
    before = scrape(url)
    metrics.limit_rejected("key", "team-metrics", "rpm")
    metrics.budget_rejected("team-metrics")
    metrics.cache_lookup("m-plain", hit=True)
    metrics.cache_lookup("m-plain", hit=False)
    metrics.circuit_changed("up/fail-500", "open")
    metrics.config_reloaded("refused")
    after = scrape(url)
    assert total(after, "gateway_limit_rejections_total", scope="key", name="team-metrics", kind="rpm") == \
        total(before, "gateway_limit_rejections_total", scope="key", name="team-metrics", kind="rpm") + 1
    assert value(after, "gateway_budget_rejections_total", key="team-metrics") >= 1
    assert value(after, "gateway_cache_lookups_total", route="m-plain", result="hit") >= 1
    assert value(after, "gateway_cache_lookups_total", route="m-plain", result="miss") >= 1
    assert value(after, "gateway_circuit_state", target="up/fail-500") == 2
    assert value(after, "gateway_config_reloads_total", result="refused") >= 1
    metrics.circuit_changed("up/fail-500", "closed")
    assert value(scrape(url), "gateway_circuit_state", target="up/fail-500") == 0
