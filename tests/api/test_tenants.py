"""Tenants bind their keys: the tenant's routes, tier cap, limits and budget hold for every
key of it (the limits and budget shared by those keys together), a key may narrow them
and never widen them, and `defaults.key_limits` covers keys without limits of their own.
In both store homes, through the openai SDK against a local upstream.

Prices are $1 a token, so each answer of the local upstream (11 + 7 tokens) costs $18.
"""

from __future__ import annotations

import hashlib

import openai
import pytest

from gateway.config.load import ConfigError
from gateway.config.snapshot import Budget, Limits, Tenant
from gateway.config.tenancy import narrower_tier
from gateway.providers.snapshots import build_snapshot
from tests.support.admin import ADMIN, admin, client, created
from tests.support.configs import openai_provider, write_config

MESSAGES = [{"role": "user", "content": "hello"}]
DOLLAR_A_TOKEN = {"input_per_1m": 1_000_000, "output_per_1m": 1_000_000}
SECRETS = {name: f"sk-{name}-tenant-test-secret" for name in ("acme-a", "acme-b", "acme-thrifty", "acme-wide",
                                                              "globex-a", "plain", "limited")}


def digest(name: str) -> str:
    return hashlib.sha256(SECRETS[name].encode()).hexdigest()


@pytest.fixture(autouse=True)
def admin_key(monkeypatch):
    monkeypatch.setenv("GATEWAY_ADMIN_KEY", ADMIN)


@pytest.fixture
def tenancy(gateway, upstream, store_home):
    base, fake = upstream
    providers = {"up": openai_provider(base, {"cheap": {**DOLLAR_A_TOKEN, "tier": "economy"},
                                              "dear": {**DOLLAR_A_TOKEN, "tier": "premium"}})}
    routes = {
        "defaults": {"key_limits": {"rpm": 1}},
        "routes": {"paid": {"targets": ["up/cheap"]}, "extra": {"targets": ["up/cheap"]},
                   "secret-project": {"targets": ["up/cheap"]},
                   "tiered": {"targets": ["up/dear", "up/cheap"]}},
        "tenants": {
            "acme": {"routes": ["paid", "extra", "tiered"], "budget": {"usd": 30, "per": "day"},
                     "limits": {"rpm": 50}, "max_tier": "economy"},
            "globex": {"limits": {"rpm": 50}},
        },
        "keys": [
            {"name": "acme-a", "sha256": digest("acme-a"), "tenant": "acme", "limits": {"rpm": 100}},
            {"name": "acme-b", "sha256": digest("acme-b"), "tenant": "acme", "limits": {"rpm": 100}},
            {"name": "acme-thrifty", "sha256": digest("acme-thrifty"), "tenant": "acme", "routes": ["paid"],
             "budget": {"usd": 10, "per": "day"}, "limits": {"rpm": 100}},
            {"name": "acme-wide", "sha256": digest("acme-wide"), "tenant": "acme", "limits": {"rpm": 100},
             "routes": ["paid", "secret-project", "tiered"], "max_tier": "premium"},
            {"name": "globex-a", "sha256": digest("globex-a"), "tenant": "globex", "limits": {"rpm": 100}},
            {"name": "plain", "sha256": digest("plain"), "limits": {"rpm": 100}},
            {"name": "limited", "sha256": digest("limited")},
        ],
        "store": store_home,
    }
    return gateway(routes, providers), fake


def ask(url: str, name: str, model: str = "paid"):
    return client(url, SECRETS[name]).chat.completions.with_raw_response.create(model=model, messages=MESSAGES)


def test_a_tenants_budget_is_shared_by_its_keys(tenancy):
    url, _ = tenancy
    assert ask(url, "acme-a").status_code == 200  # $18 of the tenant's $30
    assert ask(url, "acme-b").status_code == 200  # $36: the window is now spent, by two keys together
    for name in ("acme-a", "acme-b"):
        with pytest.raises(openai.RateLimitError) as caught:
            ask(url, name)
        assert caught.value.code == "budget_exceeded" and "tenant 'acme'" in caught.value.message
    assert ask(url, "globex-a").status_code == 200  # another tenant's budget is its own


def test_a_key_budget_narrows_its_tenants(tenancy):
    url, _ = tenancy
    assert ask(url, "acme-thrifty").status_code == 200  # $18: over its own $10, inside the tenant's $30
    with pytest.raises(openai.RateLimitError) as caught:
        ask(url, "acme-thrifty")
    assert "key 'acme-thrifty'" in caught.value.message
    assert ask(url, "acme-a").status_code == 200  # the tenant still has budget for the others


def test_a_key_narrows_its_tenants_routes_and_never_widens_them(tenancy):
    url, _ = tenancy
    assert ask(url, "acme-a", "extra").status_code == 200
    with pytest.raises(openai.PermissionDeniedError):
        ask(url, "acme-thrifty", "extra")  # the key lists only 'paid'
    with pytest.raises(openai.PermissionDeniedError):
        ask(url, "acme-wide", "secret-project")  # listed by the key, not granted by its tenant
    assert ask(url, "globex-a", "secret-project").status_code == 200  # globex grants every route
    models = {m.id for m in client(url, SECRETS["acme-wide"]).models.list()}
    assert models == {"paid", "tiered"}


def test_a_key_cannot_raise_its_tenants_tier_cap(tenancy):
    url, fake = tenancy
    answered = ask(url, "acme-wide", "tiered")  # the key says premium, its tenant economy
    assert answered.headers["x-gateway-target"] == "up/cheap"
    assert ask(url, "globex-a", "tiered").headers["x-gateway-target"] == "up/dear"


def test_default_key_limits_cover_keys_without_their_own(tenancy):
    url, _ = tenancy
    assert ask(url, "limited", "secret-project").status_code == 200
    with pytest.raises(openai.RateLimitError) as caught:
        ask(url, "limited", "secret-project")  # defaults.key_limits: rpm 1
    assert caught.value.code == "rate_limit_exceeded" and "key 'limited'" in caught.value.message
    assert ask(url, "plain", "secret-project").status_code == 200
    assert ask(url, "plain", "secret-project").status_code == 200  # its own rpm: 100


def test_api_keys_of_an_api_tenant_share_its_budget(tenancy):
    url, _ = tenancy
    with admin(url) as api:
        tenant = created(api.post("/admin/tenants", json={"name": "initech", "budget": {"usd": 20, "per": "month"},
                                                          "limits": {"rpm": 50}}))
        second = created(api.post("/admin/keys", json={"name": "initech-2", "tenant": tenant["id"],
                                                       "limits": {"rpm": 100}}))
        first = tenant["key"]["secret"]
        assert client(url, first).chat.completions.create(model="paid", messages=MESSAGES)
        assert client(url, second["secret"]).chat.completions.create(model="paid", messages=MESSAGES)
        with pytest.raises(openai.RateLimitError):
            client(url, first).chat.completions.create(model="paid", messages=MESSAGES)
        usage = api.get(f"/admin/tenants/{tenant['id']}/usage").json()
    assert usage["budget"]["spent_usd"] == pytest.approx(36) and usage["budget"]["remaining_usd"] == 0
    assert usage["usage"]["month"]["requests"] == 2  # a refused request is neither counted nor charged
    assert {k["name"]: k["usage"]["month"]["cost_usd"] for k in usage["keys"]} == {"initech-key": 18, "initech-2": 18}


def test_a_tenant_rpm_is_shared_by_its_keys(gateway, upstream):
    base, _ = upstream
    routes = {"routes": {"paid": {"targets": ["up/cheap"]}},
              "tenants": {"acme": {"limits": {"rpm": 2}}},
              "keys": [{"name": n, "sha256": digest(n), "tenant": "acme"} for n in ("acme-a", "acme-b")]}
    url = gateway(routes, {"up": openai_provider(base, ["cheap"])})
    assert ask(url, "acme-a").status_code == 200 and ask(url, "acme-b").status_code == 200
    with pytest.raises(openai.RateLimitError) as caught:
        ask(url, "acme-a")
    assert "tenant 'acme'" in caught.value.message


def test_routes_yaml_refuses_an_unknown_tenant_or_tier(tmp_path):
    routes, providers = write_config(tmp_path, {
        "routes": {"echo": {"targets": ["echo/echo-1"]}},
        "tenants": {"acme": {"max_tier": "gold"}},
        "keys": [{"name": "k", "key": "a-long-enough-key", "tenant": "initech"}],
    }, {"echo": {"api": "echo", "models": {"echo-1": {}}}})
    with pytest.raises(ConfigError) as caught:
        build_snapshot(routes, providers)
    text = str(caught.value)
    assert "unknown tenant 'initech'" in text and "unknown tier 'gold'" in text


def test_the_narrower_tier_wins():
    tiers = ("economy", "standard", "premium")
    assert narrower_tier(tiers, "premium", "economy") == "economy"
    assert narrower_tier(tiers, "economy", "premium") == "economy"
    assert narrower_tier(tiers, None, "standard") == "standard"
    assert narrower_tier(tiers, "standard", None) == "standard"
    assert Tenant("t", None, Limits(rpm=1), Budget(1, "day"), None).limits.metered


def test_a_restart_does_not_renew_a_tenants_budget(tmp_path, upstream, monkeypatch):
    """The ledger records each request's tenant; a starting gateway rebuilds the tenant's
    spend from it, for a tenant of routes.yaml and one of the admin API alike."""
    from gateway.server.app import create_app
    from tests.support.servers import serve_app

    base, _ = upstream
    database = f"sqlite:///{tmp_path / 'ledger.db'}"
    routes_path, providers_path = write_config(tmp_path / "config", {
        "routes": {"paid": {"targets": ["up/cheap"]}},
        "tenants": {"acme": {"budget": {"usd": 20, "per": "day"}}},
        "keys": [{"name": "acme-a", "sha256": digest("acme-a"), "tenant": "acme"}],
        "database": {"url": database, "flush_interval": 0.1},
    }, {"up": openai_provider(base, {"cheap": DOLLAR_A_TOKEN})})
    with serve_app(create_app(str(routes_path), str(providers_path))) as url:
        assert ask(url, "acme-a").status_code == 200  # $18 of $20
        with admin(url) as api:
            made = created(api.post("/admin/tenants", json={"name": "initech", "budget": {"usd": 20, "per": "month"}}))
        assert client(url, made["key"]["secret"]).chat.completions.create(model="paid", messages=MESSAGES)
    with serve_app(create_app(str(routes_path), str(providers_path))) as url:
        assert ask(url, "acme-a").status_code == 200  # $36: the first request still counts after the restart
        with pytest.raises(openai.RateLimitError):
            ask(url, "acme-a")
        with admin(url) as api:
            report = api.get(f"/admin/tenants/{made['id']}/usage").json()
        assert report["budget"]["spent_usd"] == pytest.approx(18)
