"""Plans: limit classes counted per end user. Two users of the `free` plan each get their own
requests per minute while a `pro` user is not held by theirs; the tenant's budget still
holds over all of them; an app with one key names its users with the OpenAI `user` field or
`x-gateway-user` and the heavy one is throttled alone. The user and plan reach the ledger
(`group_by=user`). In both store homes, against a local upstream, through the openai SDK.

Prices are $1 a token, so each answer of the local upstream (11 + 7 tokens) costs $18.
"""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.support.configs import openai_provider
from tests.support.identity_provider import IdentityProvider, new_key
from tests.support.ledger import ledger_rows
from tests.support.servers import serve_app

MESSAGES = [{"role": "user", "content": "hello"}]
DOLLAR_A_TOKEN = {"input_per_1m": 1_000_000, "output_per_1m": 1_000_000}
APP_KEY = "sk-app-serving-many-users-0001"
ADMIN = "admin-secret-for-user-limit-tests"


@pytest.fixture
def idp():
    provider = IdentityProvider(keys=[new_key("rsa-1", "RS256")])
    with serve_app(provider.app()) as url:
        provider.base_url = url
        yield provider


def config(idp: IdentityProvider, store: dict, **extra) -> dict:
    return {
        "routes": {"chat": {"targets": ["up/gpt-test"]}, "paid": {"targets": ["up/priced"]},
                   "premium-only": {"targets": ["up/gpt-test"]}},
        "tenants": {"acme": {"plan": "free"}, "thrifty": {"budget": {"usd": 30, "per": "day"}}},
        "plans": {
            "free": {"limits": {"rpm": 3}, "routes": ["chat", "paid"]},
            "pro": {"limits": {"rpm": 100}},
        },
        "auth": {"jwt": [{"issuer": idp.issuer, "audience": idp.audience, "jwks_url": f"{idp.base_url}/jwks.json",
                          "claims": {"tenant": "org_id"}}]},
        "keys": [{"name": "app", "key": APP_KEY, "plan": "free", "per_user": True, "limits": {"rpm": 100}}],
        "store": store,
        **extra,
    }


def providers(base: str) -> dict:
    return {"up": openai_provider(base, {"gpt-test": {}, "priced": DOLLAR_A_TOKEN})}


@pytest.fixture
def served(gateway, upstream, idp, store_home):
    base, _ = upstream
    return gateway(config(idp, store_home), providers(base))


def ask(url: str, secret: str, model: str = "chat", headers: dict | None = None, **extra) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {secret}", **(headers or {})},
                      json={"model": model, "messages": MESSAGES, **extra}, timeout=10)


def test_each_free_user_has_its_own_limit_and_a_pro_user_is_not_held_by_theirs(served, idp):
    alice, bob = idp.token(sub="alice", org_id="acme", tier="free"), idp.token(sub="bob", org_id="acme", tier="free")
    carol = idp.token(sub="carol", org_id="acme", tier="pro")
    for _ in range(3):
        assert ask(served, alice).status_code == 200
    client = openai.OpenAI(base_url=f"{served}/v1", api_key=alice, max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="chat", messages=MESSAGES)
    assert "user 'alice'" in caught.value.message and "plan 'free'" in caught.value.message
    assert caught.value.response.headers["retry-after"]
    for _ in range(3):
        assert ask(served, bob).status_code == 200  # alice's spent minute is hers alone
    assert all(ask(served, carol).status_code == 200 for _ in range(6))


def test_a_token_without_a_plan_gets_its_tenants_plan(served, idp):
    dave = idp.token(sub="dave", org_id="acme")  # no tier claim: acme's plan is free
    assert [ask(served, dave).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_a_plans_routes_bind_its_users(served, idp):
    free = idp.token(sub="erin", org_id="acme", tier="free")
    response = ask(served, free, model="premium-only")
    assert response.status_code == 403 and "plan 'free'" in response.json()["error"]["message"]
    assert ask(served, idp.token(sub="erin", org_id="acme", tier="pro"), model="premium-only").status_code == 200


def test_the_tenants_budget_holds_over_all_its_users(served, idp):
    first = idp.token(sub="frank", org_id="thrifty", tier="pro")
    second = idp.token(sub="grace", org_id="thrifty", tier="pro")
    assert ask(served, first, model="paid").status_code == 200  # $18 of the tenant's $30
    assert ask(served, second, model="paid").status_code == 200  # $36: the day is spent by two users together
    for token in (first, second):
        refused = ask(served, token, model="paid")
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "budget_exceeded" and "tenant 'thrifty'" in refused.text


def test_an_app_key_names_its_users_and_the_heavy_one_is_throttled_alone(served):
    for _ in range(3):
        assert ask(served, APP_KEY, headers={"x-gateway-user": "heavy"}).status_code == 200
    limited = ask(served, APP_KEY, headers={"x-gateway-user": "heavy"})
    assert limited.status_code == 429
    assert "user 'heavy'" in limited.json()["error"]["message"] and "'app'" in limited.json()["error"]["message"]
    client = openai.OpenAI(base_url=f"{served}/v1", api_key=APP_KEY, max_retries=0)
    for _ in range(3):  # the OpenAI `user` field names a user just as the header does
        client.chat.completions.create(model="chat", messages=MESSAGES, user="light")
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="chat", messages=MESSAGES, user="light")
    assert "user 'light'" in caught.value.message
    # A request that names no user counts against the key itself (rpm 100), not a user's 3.
    assert all(ask(served, APP_KEY).status_code == 200 for _ in range(5))


def test_an_overlong_user_id_is_refused_rather_than_cut(served):
    response = ask(served, APP_KEY, headers={"x-gateway-user": "u" * 300})
    assert response.status_code == 400 and response.json()["error"]["param"] == "user"


def test_the_ledger_records_each_requests_user_and_usage_groups_by_it(
    gateway, upstream, idp, monkeypatch, tmp_path, database_url
):
    monkeypatch.setenv("GATEWAY_ADMIN_KEY", ADMIN)
    base, _ = upstream
    url = gateway(config(idp, {}, database={"url": database_url, "flush_interval": 0.2}), providers(base))
    assert ask(url, idp.token(sub="alice", org_id="acme", tier="pro")).status_code == 200
    assert ask(url, idp.token(sub="alice", org_id="acme", tier="pro")).status_code == 200
    assert ask(url, APP_KEY, user="bob").status_code == 200
    assert ask(url, APP_KEY).status_code == 200
    usage = httpx.get(f"{url}/admin/usage", params={"group_by": "user"},
                      headers={"authorization": f"Bearer {ADMIN}"}, timeout=10)
    assert usage.status_code == 200, usage.text
    counts = {g["user"]: g["requests"] for g in usage.json()["groups"]}
    assert counts == {"alice": 2, "bob": 1, None: 1}
    listed = httpx.get(f"{url}/admin/requests", params={"user": "alice"},
                       headers={"authorization": f"Bearer {ADMIN}"}, timeout=10).json()["data"]
    assert len(listed) == 2 and {r["key_name"] for r in listed} == {"jwt"}
    rows = ledger_rows(database_url)
    assert {(r["key_name"], r["user"]) for r in rows} == {("jwt", "alice"), ("app", "bob"), ("app", None)}


def test_a_token_reads_its_own_plan_at_v1_usage(served, idp):
    response = httpx.get(f"{served}/v1/usage", headers={
        "authorization": f"Bearer {idp.token(sub='alice', org_id='acme', tier='free')}"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["plan"] == {"name": "free", "user": "alice", "limits": {"rpm": 3}, "counted": "per user"}
