"""/v1/responses under the same rules as chat: the cache (per caller), key limits, budgets'
cost headers, `explain --endpoint responses`, and stored responses that outlive the
process and are shared by replicas through the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import openai
import pytest

from gateway.server.app import create_app
from tests.support.configs import openai_provider, write_config
from tests.support.servers import ROOT, serve_app

KEY_A, KEY_B = "sk-gw-rules-alpha-0001", "sk-gw-rules-bravo-0002"
KEYS = [{"name": "alpha", "key": KEY_A}, {"name": "bravo", "key": KEY_B, "limits": {"rpm": 1}}]


def client(url: str, key: str = KEY_A) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def test_the_cache_answers_a_repeated_request_for_the_same_caller_only(gateway, upstream, store_home):
    base, fake = upstream
    url = gateway({"routes": {"cached": {"targets": ["up/gpt-x"], "cache": {"ttl": 60}}}, "keys": KEYS,
                   "store": store_home},
                  {"up": openai_provider(base, ["gpt-x"], responses="translate")})
    first = client(url).responses.with_raw_response.create(model="cached", input="what is cached")
    again = client(url).responses.with_raw_response.create(model="cached", input="what is cached")
    assert first.headers["x-gateway-cache"] == "miss" and again.headers["x-gateway-cache"] == "hit"
    assert again.parse().output_text == first.parse().output_text
    assert again.parse().id != first.parse().id  # a new response, answered from the cache
    other = client(url, KEY_B).responses.with_raw_response.create(model="cached", input="what is cached")
    assert other.headers["x-gateway-cache"] == "miss"
    assert len(fake.requests) == 2
    with client(url).responses.stream(model="cached", input="what is cached") as stream:
        assert stream.get_final_response().output_text == first.parse().output_text
    assert len(fake.requests) == 2  # the stream was replayed from the cache


def test_key_limits_apply(gateway):
    url = gateway({"routes": {"echo": {"targets": ["echo/echo-1"]}}, "keys": KEYS})
    client(url, KEY_B).responses.create(model="echo", input="one")
    with pytest.raises(openai.RateLimitError) as refused:
        client(url, KEY_B).responses.create(model="echo", input="two")
    assert refused.value.code == "rate_limit_exceeded"
    assert refused.value.response.headers.get("retry-after")


def test_cost_is_reported_from_the_answers_usage(gateway, upstream):
    base, _ = upstream
    priced = {"gpt-x": {"input_per_1m": 1000.0, "output_per_1m": 2000.0}}
    url = gateway({"routes": {"priced": {"targets": ["up/gpt-x"]}}},
                  {"up": openai_provider(base, priced, responses="translate")})
    raw = client(url).responses.with_raw_response.create(model="priced", input="cost me")
    # The mock upstream reports 11 prompt and 7 completion tokens.
    assert float(raw.headers["x-gateway-cost-usd"]) == pytest.approx((11 * 1000 + 7 * 2000) / 1e6)


def test_explain_knows_the_responses_endpoint(tmp_path):
    routes = {"routes": {"mixed": {"targets": ["nat/gpt-x", "echo/echo-1"]}}}
    providers = {"nat": openai_provider("http://127.0.0.1:9", ["gpt-x"]), "echo": {"api": "echo", "models": {"echo-1": {}}}}
    routes_path, providers_path = write_config(tmp_path, routes, providers)
    body = json.dumps({"input": "search the web", "tools": [{"type": "web_search"}]})
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "explain", "mixed", "--endpoint", "responses", "--request", "-",
         "--format", "json", "--routes", str(routes_path), "--providers", str(providers_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=30, input=body)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["endpoint"] == "responses"
    assert [c["target"] for c in plan["candidates"]] == ["nat/gpt-x"] and plan["candidates"][0]["body"] == "as sent"
    assert plan["skipped"][0]["target"] == "echo/echo-1"


def test_stored_responses_outlive_the_process_and_are_shared_through_the_database(tmp_path, database_url):
    routes = {"routes": {"echo": {"targets": ["echo/echo-1"]}}, "keys": KEYS,
              "database": {"url": database_url}}
    routes_path, providers_path = write_config(tmp_path, routes, {"echo": {"api": "echo", "models": {"echo-1": {}}}})
    with serve_app(create_app(str(routes_path), str(providers_path))) as first_url:
        first = client(first_url).responses.create(model="echo", input="remember the number 42")
    # A second gateway (a restart, or another replica) on the same database.
    with serve_app(create_app(str(routes_path), str(providers_path))) as second_url:
        sdk = client(second_url)
        assert sdk.responses.retrieve(first.id).output_text == first.output_text
        follow = sdk.responses.create(model="echo", input="what was it?", previous_response_id=first.id)
        items = sdk.responses.input_items.list(follow.id, order="asc")
        assert [i.content[0].text for i in items.data][0] == "remember the number 42"
        with pytest.raises(openai.NotFoundError):
            client(second_url, KEY_B).responses.retrieve(first.id)
        sdk.responses.delete(first.id)
    with serve_app(create_app(str(routes_path), str(providers_path))) as third_url:
        with pytest.raises(openai.NotFoundError):
            client(third_url).responses.retrieve(first.id)
        assert client(third_url).responses.retrieve(follow.id).id == follow.id


def test_a_response_continued_at_once_on_another_replica_is_found(tmp_path, database_url):
    """Replica A stores a response and answers once it is in the database; the client's next
    request, continuing from it straight away, lands on replica B of the same database."""
    routes = {"routes": {"echo": {"targets": ["echo/echo-1"]}}, "keys": KEYS, "database": {"url": database_url}}
    routes_path, providers_path = write_config(tmp_path, routes, {"echo": {"api": "echo", "models": {"echo-1": {}}}})
    with serve_app(create_app(str(routes_path), str(providers_path))) as a_url, \
            serve_app(create_app(str(routes_path), str(providers_path))) as b_url:
        a, b = client(a_url), client(b_url)
        for turn in range(5):
            first = a.responses.create(model="echo", input=f"note {turn}")
            follow = b.responses.create(model="echo", input="and?", previous_response_id=first.id)
            items = b.responses.input_items.list(follow.id, order="asc")
            assert items.data[0].content[0].text == f"note {turn}"
        # A stream is stored before the event that ends it reaches the client.
        with a.responses.stream(model="echo", input="streamed note") as stream:
            streamed = stream.get_final_response()
        follow = b.responses.create(model="echo", input="and?", previous_response_id=streamed.id)
        items = b.responses.input_items.list(follow.id, order="asc")
        assert items.data[0].content[0].text == "streamed note"
        # A fresh-looking id that was never made is a 404 at once.
        ghost = "resp_" + first.id[5:17] + "0" * 20
        started = time.monotonic()
        with pytest.raises(openai.NotFoundError):
            b.responses.retrieve(ghost)
        assert time.monotonic() - started < 1
