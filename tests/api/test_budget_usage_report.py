"""GET /admin/usage: spend, tokens and requests per key and route; names only, never secrets."""

from __future__ import annotations

import hashlib

import httpx
import openai
import pytest

from tests.support.configs import ECHO_PROVIDER, openai_provider

ADMIN = "admin-secret-for-tests-0002"
KEYS = {"alpha": "sk-usage-alpha-0000000001", "beta": "sk-usage-beta-00000000002"}
PRICE = {"input_per_1m": 2_000_000, "output_per_1m": 1_000_000}  # $2 a prompt token, $1 a completion token


def config(store: dict) -> dict:
    keys = [{"name": name, "sha256": hashlib.sha256(secret.encode()).hexdigest()} for name, secret in KEYS.items()]
    keys[1]["budget"] = {"usd": 500, "per": "month"}
    return {"routes": {"one": {"targets": ["up/gpt-x"]}, "two": {"targets": ["up/gpt-x"]},
                       "broken": {"targets": ["up/fail-500"]}},
            "keys": keys, "store": store}


def ask(url: str, key: str, model: str) -> None:
    openai.OpenAI(base_url=f"{url}/v1", api_key=KEYS[key], max_retries=0).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}]
    )


def get(url: str, token: str | None = ADMIN, **params: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{url}/admin/usage", params=params, headers=headers)


@pytest.fixture
def served(gateway, upstream, store_home, monkeypatch) -> str:
    monkeypatch.setenv("GATEWAY_ADMIN_KEY", ADMIN)
    base, _ = upstream
    providers = {"up": openai_provider(base, {"gpt-x": PRICE, "fail-500": PRICE}), "echo": ECHO_PROVIDER}
    return gateway(config(store_home), providers)


def test_usage_by_key_and_route(served):
    ask(served, "alpha", "one")
    ask(served, "alpha", "one")
    ask(served, "alpha", "two")
    ask(served, "beta", "two")
    with pytest.raises(openai.InternalServerError):
        ask(served, "beta", "broken")
    report = get(served).json()
    assert report["period"] == "day" and report["object"] == "usage"
    per_request = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18, "cost_usd": 29.0}
    alpha = next(k for k in report["keys"] if k["key"] == "alpha")
    assert alpha == {"key": "alpha", "requests": 3, "errors": 0, "cache_hits": 0,
                     **{k: v * 3 for k, v in per_request.items()}}
    beta = next(k for k in report["keys"] if k["key"] == "beta")
    assert beta["requests"] == 2 and beta["errors"] == 1 and beta["cost_usd"] == 29.0
    assert beta["budget"] == {"usd": 500.0, "per": "month", "spent_usd": 29.0, "remaining_usd": 471.0}
    routes = {r["route"]: r for r in report["routes"]}
    assert routes["one"]["requests"] == 2 and routes["two"]["requests"] == 2 and routes["broken"]["errors"] == 1
    breakdown = {(b["key"], b["route"]): b["requests"] for b in report["breakdown"]}
    assert breakdown == {("alpha", "one"): 2, ("alpha", "two"): 1, ("beta", "two"): 1, ("beta", "broken"): 1}
    assert report["totals"]["requests"] == 5 and report["totals"]["cost_usd"] == 29.0 * 4
    month = get(served, period="month").json()
    assert month["totals"] == report["totals"] and month["window"] == report["window"][:7]


def test_report_names_keys_but_never_their_secrets(served):
    ask(served, "alpha", "one")
    text = get(served).text
    assert "alpha" in text
    for secret in KEYS.values():
        assert secret not in text and hashlib.sha256(secret.encode()).hexdigest() not in text
    assert ADMIN not in text


def test_other_windows_are_empty_and_bad_periods_are_400(served):
    ask(served, "alpha", "one")
    assert get(served, at="2001-01-01").json()["totals"]["requests"] == 0
    assert get(served, period="month", at="2001-01").json()["totals"]["requests"] == 0
    assert get(served, period="year").status_code == 400
    assert get(served, period="day", at="yesterday").status_code == 400


def test_usage_needs_the_admin_key(served):
    assert get(served, token=None).status_code == 401
    assert get(served, token=KEYS["alpha"]).status_code == 401
    assert get(served, token="wrong-admin-key").status_code == 401


def test_usage_is_closed_without_an_admin_key(gateway, monkeypatch):
    monkeypatch.delenv("GATEWAY_ADMIN_KEY", raising=False)
    url = gateway({"routes": {"echo": {"targets": ["echo/echo-1"]}}})
    response = get(url, token="anything")
    assert response.status_code == 403 and response.json()["error"]["code"] == "admin_disabled"
