"""`cache: {scope: tenant}` shares an answer among the keys of one tenant and never with
another tenant's keys, for keys of routes.yaml and keys made by the admin API alike; in
the process and on a real Redis, through the openai SDK against an upstream that counts."""

from __future__ import annotations

import hashlib

import pytest

from tests.support.admin import ADMIN, admin, client, created
from tests.support.configs import openai_provider

MESSAGES = [{"role": "user", "content": "one answer for the whole team"}]
SECRETS = {"acme-ci": "sk-acme-ci-cache-tenant-0001", "acme-web": "sk-acme-web-cache-tenant-0002",
           "globex-ci": "sk-globex-ci-cache-tenant-0003", "loner": "sk-loner-cache-tenant-0004"}


@pytest.fixture(autouse=True)
def admin_key(monkeypatch):
    monkeypatch.setenv("GATEWAY_ADMIN_KEY", ADMIN)


@pytest.fixture
def shared(gateway, upstream, store_home):
    base, fake = upstream
    routes = {
        "routes": {"team": {"targets": ["up/gpt-x"], "cache": {"ttl": 60, "scope": "tenant"}},
                   "mine": {"targets": ["up/gpt-x"], "cache": {"ttl": 60}}},
        "tenants": {"acme": {}, "globex": {}},
        "keys": [{"name": name, "sha256": hashlib.sha256(secret.encode()).hexdigest(),
                  **({"tenant": name.split("-")[0]} if "-" in name else {})} for name, secret in SECRETS.items()],
        "store": store_home,
    }
    return gateway(routes, {"up": openai_provider(base, ["gpt-x"])}), fake


def ask(url: str, secret: str, model: str = "team"):
    return client(url, secret).chat.completions.with_raw_response.create(model=model, messages=MESSAGES)


def test_two_keys_of_one_tenant_share_an_entry_and_another_tenant_does_not(shared):
    url, fake = shared
    first = ask(url, SECRETS["acme-ci"])
    assert first.headers["x-gateway-cache"] == "miss"
    colleague = ask(url, SECRETS["acme-web"])
    assert colleague.headers["x-gateway-cache"] == "hit"
    assert colleague.parse().id == first.parse().id
    assert len(fake.requests) == 1
    outsider = ask(url, SECRETS["globex-ci"])
    assert outsider.headers["x-gateway-cache"] == "miss"
    assert outsider.parse().id != first.parse().id
    loner = ask(url, SECRETS["loner"])  # no tenant: its own entry
    assert loner.headers["x-gateway-cache"] == "miss"
    assert len(fake.requests) == 3


def test_the_default_scope_stays_the_key_even_within_a_tenant(shared):
    url, fake = shared
    assert ask(url, SECRETS["acme-ci"], "mine").headers["x-gateway-cache"] == "miss"
    assert ask(url, SECRETS["acme-web"], "mine").headers["x-gateway-cache"] == "miss"
    assert ask(url, SECRETS["acme-ci"], "mine").headers["x-gateway-cache"] == "hit"
    assert len(fake.requests) == 2


def test_a_key_made_by_the_api_shares_its_tenants_entries(shared):
    url, fake = shared
    with admin(url) as api:
        made = created(api.post("/admin/keys", json={"name": "acme-bot", "tenant": "acme"}))
        other = created(api.post("/admin/keys", json={"name": "globex-bot", "tenant": "globex"}))
    first = ask(url, SECRETS["acme-ci"])
    assert ask(url, made["secret"]).parse().id == first.parse().id
    assert ask(url, other["secret"]).headers["x-gateway-cache"] == "miss"
    assert len(fake.requests) == 2
