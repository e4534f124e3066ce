"""plan_candidates: strategies, equivalents, tiers, capabilities, context windows, circuits."""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from gateway.config.load import ConfigError
from gateway.config.snapshot import Snapshot
from gateway.errors import BadRequest, Forbidden, NoTargetAvailable
from gateway.pipeline.plan import EXPLORE, Plan, plan_candidates, usable
from gateway.pipeline.request import chat_request, embedding_request
from gateway.providers.snapshots import build_snapshot
from gateway.store.circuits import MemoryCircuits
from gateway.store.latency import LatencyAverages
from tests.support.configs import write_config

PROVIDERS = {
    "up": {
        "api": "openai", "base_url": "http://127.0.0.1:9/v1",
        "models": {
            "big": {"input_per_1m": 5, "output_per_1m": 15, "context_window": 100000,
                    "supports": ["tools", "vision", "json"], "tier": "premium"},
            "mid": {"input_per_1m": 1, "output_per_1m": 2, "context_window": 50, "supports": ["tools"], "tier": "standard"},
            "reader": {"input_per_1m": 0.1, "output_per_1m": 20, "tier": "standard"},
            "writer": {"input_per_1m": 10, "output_per_1m": 0.1, "tier": "standard"},
            "plain": {"supports": [], "tier": "economy"},
            "untiered": {},
        },
    },
    "echo": {"api": "echo", "models": {"echo-1": {"tier": "economy"}}},
}


def snapshot_for(tmp_path: Path, routes: dict[str, Any]) -> Snapshot:
    r, p = write_config(tmp_path, routes, PROVIDERS)
    return build_snapshot(r, p)


def plan(snapshot: Snapshot, alias: str, body: dict[str, Any] | None = None, key_name: str | None = None,
         tier: str | None = None, circuits: MemoryCircuits | None = None, latency: LatencyAverages | None = None,
         rng: random.Random | None = None) -> Plan:
    body = body or {"model": alias, "messages": [{"role": "user", "content": "hi"}]}
    key = next((k for k in snapshot.keys.values() if k.name == key_name), None)
    route = snapshot.routes[alias]
    build = embedding_request if route.kind == "embedding" else chat_request
    request = build("openai", {**body, "model": alias}, max_tier=tier)
    return plan_candidates(snapshot, route, request, key, circuits or MemoryCircuits(), latency or LatencyAverages(), rng)


def ids(p: Plan) -> list[str]:
    return [t.id for t in p.candidates]


def test_fallback_keeps_the_configured_order(tmp_path):
    s = snapshot_for(tmp_path, {"routes": {"r": {"targets": ["up/mid", "up/big", "echo/echo-1"]}}})
    assert ids(plan(s, "r")) == ["up/mid", "up/big", "echo/echo-1"]


def test_weighted_first_pick_follows_the_weights_and_the_rest_is_the_fallback(tmp_path):
    s = snapshot_for(tmp_path, {"routes": {"r": {"strategy": "weighted", "targets": [
        {"target": "up/big", "weight": 6}, {"target": "up/mid", "weight": 3},
        {"target": "echo/echo-1", "weight": 1}, {"target": "up/plain", "weight": 0}]}}})
    rng = random.Random(7)
    n = 20000
    orders = [ids(plan(s, "r", rng=rng)) for _ in range(n)]
    first = Counter(o[0] for o in orders)
    assert abs(first["up/big"] / n - 0.6) < 0.01
    assert abs(first["up/mid"] / n - 0.3) < 0.01
    assert abs(first["echo/echo-1"] / n - 0.1) < 0.01
    assert first["up/plain"] == 0
    assert all(len(o) == 4 and o[-1] == "up/plain" for o in orders)  # weight 0: a backup only


def test_cheapest_uses_the_estimated_prompt_and_requested_output(tmp_path):
    s = snapshot_for(tmp_path, {"routes": {"r": {"strategy": "cheapest", "targets": ["up/writer", "up/reader"]}}})
    long_prompt = {"model": "r", "messages": [{"role": "user", "content": "x" * 40000}], "max_tokens": 10}
    long_answer = {"model": "r", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4000}
    assert ids(plan(s, "r", long_prompt)) == ["up/reader", "up/writer"]  # cheap input wins
    assert ids(plan(s, "r", long_answer)) == ["up/writer", "up/reader"]  # cheap output wins


def test_fastest_measures_unknown_targets_first_then_prefers_the_lowest_average(tmp_path):
    s = snapshot_for(tmp_path, {"routes": {"r": {"strategy": "fastest", "targets": ["up/big", "up/mid", "echo/echo-1"]}}})
    latency = LatencyAverages()
    never_explore = random.Random()
    never_explore.random = lambda: 0.99  # type: ignore[method-assign]
    latency.observe("up/big", 0.5)
    latency.observe("echo/echo-1", 0.1)
    assert ids(plan(s, "r", latency=latency, rng=never_explore)) == ["up/mid", "echo/echo-1", "up/big"]
    latency.observe("up/mid", 0.3)
    assert ids(plan(s, "r", latency=latency, rng=never_explore)) == ["echo/echo-1", "up/mid", "up/big"]


def test_fastest_explores_so_a_recovered_target_is_noticed(tmp_path):
    s = snapshot_for(tmp_path, {"routes": {"r": {"strategy": "fastest", "targets": ["up/big", "up/mid"]}}})
    latency = LatencyAverages()
    latency.observe("up/big", 2.0)
    latency.observe("up/mid", 0.2)
    rng = random.Random(3)
    firsts = Counter(ids(plan(s, "r", latency=latency, rng=rng))[0] for _ in range(5000))
    assert abs(firsts["up/big"] / 5000 - EXPLORE) < 0.02  # still sampled now and then
    for _ in range(8):  # big recovered: a few exploratory answers at 50 ms
        latency.observe("up/big", 0.05)
    assert latency.average("up/big") < 0.2
    firsts = Counter(ids(plan(s, "r", latency=latency, rng=rng))[0] for _ in range(1000))
    assert firsts["up/big"] > 800


def test_equivalent_class_members_are_the_targets(tmp_path):
    s = snapshot_for(tmp_path, {"equivalents": {"frontier": ["up/big", "up/mid"]},
                                "routes": {"r": {"equivalent": "frontier"}}})
    assert ids(plan(s, "r")) == ["up/big", "up/mid"]


def test_fallback_equivalents_extends_the_chain_with_the_last_targets_class(tmp_path):
    s = snapshot_for(tmp_path, {
        "equivalents": {"small": ["up/plain", "up/mid", "echo/echo-1"]},
        "routes": {"r": {"strategy": "weighted", "targets": ["up/big", "up/mid"], "fallback": "equivalents"}},
    })
    for _ in range(20):  # the extension always comes after the weighted part, in class order
        order = ids(plan(s, "r"))
        assert sorted(order[:2]) == ["up/big", "up/mid"]
        assert order[2:] == ["up/plain", "echo/echo-1"]


def test_fallback_equivalents_without_a_class_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        snapshot_for(tmp_path, {"routes": {"r": {"targets": ["up/big"], "fallback": "equivalents"}}})
    assert "'up/big' is in no equivalents class" in str(caught.value)


KEYED = {
    "routes": {
        "r": {"targets": ["up/big", "up/mid", "echo/echo-1", "up/untiered"]},
        "premium-only": {"targets": ["up/big"]},
    },
    "keys": [{"name": "cheap", "sha256": "a" * 64, "max_tier": "standard"},
             {"name": "any", "sha256": "b" * 64}],
}


def test_key_tier_cap_skips_targets_above_it(tmp_path):
    s = snapshot_for(tmp_path, KEYED)
    p = plan(s, "r", key_name="cheap")
    assert ids(p) == ["up/mid", "echo/echo-1", "up/untiered"]  # untiered passes every cap
    assert [(x.target, x.reason) for x in p.skipped] == [("up/big", "tier")]
    assert "key 'cheap'" in p.skipped[0].detail


def test_header_can_lower_the_cap_but_never_raise_it(tmp_path):
    s = snapshot_for(tmp_path, KEYED)
    assert ids(plan(s, "r", tier="economy")) == ["echo/echo-1", "up/untiered"]
    assert ids(plan(s, "r", key_name="cheap", tier="premium")) == ["up/mid", "echo/echo-1", "up/untiered"]
    with pytest.raises(BadRequest) as caught:
        plan(s, "r", tier="platinum")
    assert caught.value.code == "invalid_tier"


def test_nothing_left_under_the_keys_cap_is_403_but_under_the_header_is_503(tmp_path):
    s = snapshot_for(tmp_path, KEYED)
    with pytest.raises(Forbidden) as caught:
        usable(plan(s, "premium-only", key_name="cheap"))
    assert caught.value.status == 403
    with pytest.raises(NoTargetAvailable) as caught:
        usable(plan(s, "premium-only", key_name="any", tier="standard"))
    assert caught.value.status == 503
    assert caught.value.body()["error"]["skipped"][0]["reason"] == "tier"


@pytest.mark.parametrize("extra, need", [
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
    ({"response_format": {"type": "json_object"}}, "json"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "what is this"},
                                                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]}]}, "vision"),
])
def test_a_request_skips_models_lacking_what_it_uses(tmp_path, extra, need):
    s = snapshot_for(tmp_path, {"routes": {"r": {"targets": ["up/plain", "up/mid", "up/big", "up/untiered"]}}})
    body = {"model": "r", "messages": [{"role": "user", "content": "hi"}], **extra}
    p = plan(s, "r", body)
    assert need in p.needs
    assert "up/plain" not in ids(p)  # supports: [] lacks everything
    assert ids(p)[-2:] == ["up/big", "up/untiered"]  # no supports list: assumed to support all
    assert ("up/mid" in ids(p)) == (need == "tools")
    assert all(x.reason == "capability" and need in x.detail for x in p.skipped)


def test_plain_response_format_text_needs_nothing(tmp_path):
    s = snapshot_for(tmp_path, {"routes": {"r": {"targets": ["up/plain"]}}})
    body = {"model": "r", "messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "text"}}
    assert ids(plan(s, "r", body)) == ["up/plain"]


def test_a_prompt_over_a_context_window_skips_that_model(tmp_path):
    s = snapshot_for(tmp_path, {"routes": {"r": {"targets": ["up/mid", "up/big"]}, "m": {"targets": ["up/mid"]}}})
    body = {"model": "r", "messages": [{"role": "user", "content": "word " * 100}]}
    p = plan(s, "r", body)
    assert ids(p) == ["up/big"]
    assert p.skipped[0].reason == "context_window" and "context window of 50" in p.skipped[0].detail
    short_but_asks_a_lot = {"model": "r", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 60}
    assert ids(plan(s, "r", short_but_asks_a_lot)) == ["up/big"]
    with pytest.raises(BadRequest) as caught:
        usable(plan(s, "m", {**body, "model": "m"}))
    assert caught.value.code == "context_length_exceeded"


def test_open_circuit_is_skipped_and_503_says_when_to_retry(tmp_path):
    s = snapshot_for(tmp_path, {"defaults": {"circuit": {"failures": 1, "cooldown": 20}},
                                "routes": {"r": {"targets": ["up/big", "up/mid"]}}})
    circuits = MemoryCircuits()
    circuits.record_failure(s.targets["up/big"])
    p = plan(s, "r", circuits=circuits)
    assert ids(p) == ["up/mid"]
    assert p.skipped[0].reason == "circuit" and "open" in p.skipped[0].detail
    circuits.record_failure(s.targets["up/mid"])
    p = plan(s, "r", circuits=circuits)
    with pytest.raises(NoTargetAvailable) as caught:
        usable(p)
    assert 19 <= float(caught.value.headers["retry-after"]) <= 21
    assert {x["reason"] for x in caught.value.body()["error"]["skipped"]} == {"circuit"}


def test_plan_does_not_take_the_half_open_probe(tmp_path):
    s = snapshot_for(tmp_path, {"defaults": {"circuit": {"failures": 1, "cooldown": 5}},
                                "routes": {"r": {"targets": ["up/big"]}}})
    circuits = MemoryCircuits()
    circuits.record_failure(s.targets["up/big"], now=time.monotonic() - 10)  # the cooldown is over
    for _ in range(3):  # explaining or planning many times leaves the probe for the dispatcher
        assert ids(plan(s, "r", circuits=circuits)) == ["up/big"]
    assert circuits.allow(s.targets["up/big"]) is True
    assert ids(plan(s, "r", circuits=circuits)) == []
