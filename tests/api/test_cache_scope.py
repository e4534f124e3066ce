"""The response cache belongs to its caller: two keys never read each other's entries
unless the route says `scope: route`; a capped key never shares with a wider one; the
request's `cache-control` skips or bypasses the cache. In both store homes, through the
official openai SDK against a local upstream that counts its calls."""

from __future__ import annotations

import hashlib
import time

import openai
import pytest

from gateway.config.snapshot import Key, Limits
from gateway.pipeline.cache import cache_key, owner
from tests.support.configs import openai_provider

MESSAGES = [{"role": "user", "content": "what is cached for whom"}]
KEYS = {"alpha": "sk-alpha-cache-owner-0001", "beta": "sk-beta-cache-owner-0002",
        "capped": "sk-capped-economy-0003", "wide": "sk-wide-premium-0004"}


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@pytest.fixture
def scoped(gateway, upstream, store_home):
    base, fake = upstream
    providers = {"up": openai_provider(base, ["gpt-x", "gpt-premium"])}
    tiered = [{"target": "up/gpt-premium", "tier": "premium"}, {"target": "up/gpt-x", "tier": "economy"}]
    routes = {
        "routes": {
            "mine": {"targets": ["up/gpt-x"], "cache": {"ttl": 60}},
            "shared": {"targets": ["up/gpt-x"], "cache": {"ttl": 60, "scope": "route"}},
            "tiered": {"targets": tiered, "cache": {"ttl": 60, "scope": "route"}},
        },
        "keys": [
            {"name": "alpha", "sha256": _digest(KEYS["alpha"])},
            {"name": "beta", "sha256": _digest(KEYS["beta"])},
            {"name": "capped", "sha256": _digest(KEYS["capped"]), "max_tier": "economy"},
            {"name": "wide", "sha256": _digest(KEYS["wide"])},
        ],
        "store": store_home,
    }
    url = gateway(routes, providers)

    def client(name: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{url}/v1", api_key=KEYS[name], max_retries=0)

    return client, fake


def ask(c: openai.OpenAI, model: str = "mine", **extra):
    return c.chat.completions.with_raw_response.create(model=model, messages=MESSAGES, **extra)


def streamed_id(c: openai.OpenAI, model: str = "mine") -> tuple[str, str]:
    raw = c.chat.completions.with_raw_response.create(model=model, messages=MESSAGES, stream=True)
    ids = {chunk.id for chunk in raw.parse()}
    assert len(ids) == 1
    return raw.headers["x-gateway-cache"], ids.pop()


def test_two_keys_never_read_each_others_plain_answers(scoped):
    client, fake = scoped
    alpha, beta = client("alpha"), client("beta")
    first_alpha, first_beta = ask(alpha), ask(beta)
    assert first_alpha.headers["x-gateway-cache"] == first_beta.headers["x-gateway-cache"] == "miss"
    assert len(fake.requests) == 2
    again_alpha, again_beta = ask(alpha), ask(beta)
    assert again_alpha.headers["x-gateway-cache"] == again_beta.headers["x-gateway-cache"] == "hit"
    # Each key is served the answer written for it, never the other's.
    assert again_alpha.parse().id == first_alpha.parse().id
    assert again_beta.parse().id == first_beta.parse().id
    assert first_alpha.parse().id != first_beta.parse().id
    assert len(fake.requests) == 2


def test_two_keys_never_read_each_others_streamed_answers(scoped):
    client, fake = scoped
    alpha, beta = client("alpha"), client("beta")
    alpha_miss, beta_miss = streamed_id(alpha), streamed_id(beta)
    assert alpha_miss[0] == beta_miss[0] == "miss" and alpha_miss[1] != beta_miss[1]
    assert len(fake.requests) == 2
    assert streamed_id(beta) == ("hit", beta_miss[1])
    assert streamed_id(alpha) == ("hit", alpha_miss[1])
    assert len(fake.requests) == 2


def test_scope_route_shares_entries_between_callers(scoped):
    client, fake = scoped
    first = ask(client("alpha"), "shared")
    second = ask(client("beta"), "shared")
    assert (first.headers["x-gateway-cache"], second.headers["x-gateway-cache"]) == ("miss", "hit")
    assert second.parse().id == first.parse().id
    assert len(fake.requests) == 1


def test_keys_with_different_tier_caps_never_share(scoped):
    """Even on a `scope: route` entry: the capped key's request is keyed by its cap, and the
    premium answer written for the wider key is not one it may be served."""
    client, fake = scoped
    wide = ask(client("wide"), "tiered")
    assert wide.headers["x-gateway-target"] == "up/gpt-premium"
    capped = ask(client("capped"), "tiered")
    assert capped.headers["x-gateway-cache"] == "miss"
    assert capped.headers["x-gateway-target"] == "up/gpt-x"
    assert fake.models_called() == ["gpt-premium", "gpt-x"]
    # A wider key that lowers its own cap by header shares the economy entry, never the premium one.
    lowered = ask(client("wide"), "tiered", extra_headers={"x-gateway-max-tier": "economy"})
    assert lowered.headers["x-gateway-cache"] == "hit"
    assert lowered.headers["x-gateway-target"] == "up/gpt-x"
    assert lowered.parse().id == capped.parse().id
    assert ask(client("wide"), "tiered").parse().id == wide.parse().id
    assert len(fake.requests) == 2


def test_no_cache_calls_the_upstream_and_refreshes_the_entry(scoped):
    client, fake = scoped
    alpha = client("alpha")
    old = ask(alpha)
    fresh = ask(alpha, extra_headers={"cache-control": "no-cache"})
    assert fresh.headers["x-gateway-cache"] == "miss"
    assert len(fake.requests) == 2 and fresh.parse().id != old.parse().id
    later = ask(alpha)
    for _ in range(40):  # the entry is written after the answer, not waited for: give it a moment
        if later.parse().id == fresh.parse().id:
            break
        time.sleep(0.05)
        later = ask(alpha)
    assert later.headers["x-gateway-cache"] == "hit"
    assert later.parse().id == fresh.parse().id  # the fresh answer replaced the old one
    assert len(fake.requests) == 2


def test_no_store_neither_reads_nor_writes(scoped):
    client, fake = scoped
    alpha = client("alpha")
    bypass = ask(alpha, extra_headers={"cache-control": "no-store"})
    assert bypass.headers["x-gateway-cache"] == "bypass"
    assert ask(alpha).headers["x-gateway-cache"] == "miss"  # nothing was stored by the bypass
    assert ask(alpha, extra_headers={"cache-control": "no-store"}).headers["x-gateway-cache"] == "bypass"
    assert ask(alpha).headers["x-gateway-cache"] == "hit"
    assert len(fake.requests) == 3
    streamed = alpha.chat.completions.with_raw_response.create(
        model="mine", messages=MESSAGES, stream=True, extra_headers={"cache-control": "no-store"})
    assert streamed.headers["x-gateway-cache"] == "bypass"
    list(streamed.parse())
    assert len(fake.requests) == 4


def test_entries_of_the_old_key_format_are_never_served():
    """A key made without a caller (the first format) cannot equal any key made now."""
    import orjson

    body = {"model": "mine", "messages": MESSAGES}
    unscoped = hashlib.sha256(orjson.dumps({**body, "\x00endpoint": "chat"}, option=orjson.OPT_SORT_KEYS)).hexdigest()
    key = Key("alpha", "0" * 64, None, Limits(), None, None)
    for scope in ("key", "tenant", "route"):
        made = cache_key("chat", "mine", body, owner(scope, key), None)
        assert made.startswith("c2:") and unscoped not in made


def test_tenant_scope_is_the_key_itself_for_a_key_without_a_tenant():
    alone = Key("alpha", "0" * 64, None, Limits(), None, None)
    member = Key("acme-ci", "1" * 64, None, Limits(), None, None, tenant="acme")
    other = Key("acme-web", "2" * 64, None, Limits(), None, None, tenant="acme")
    assert owner("tenant", alone) == owner("key", alone) == "key:alpha"
    assert owner("tenant", member) == owner("tenant", other) != owner("key", member)
    assert owner("route", member) == owner("route", alone)
