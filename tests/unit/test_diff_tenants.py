"""`gateway diff` on tenants: a tenant granting more is risky for every key of it, as is a
key moving to another tenant or expiring later; narrowing is listed, not flagged."""

from __future__ import annotations

import copy
from typing import Any

from gateway.ops.diff import diff_snapshots
from gateway.ops.revision import compile_dir
from tests.support.configs import write_config
from tests.unit.test_diff import PROVIDERS, ROUTES, diff, risky_texts, texts


def with_tenant(r: dict[str, Any]) -> None:
    r["tenants"] = {"acme": {"routes": ["chat"], "limits": {"rpm": 100}, "budget": {"usd": 50, "per": "day"},
                             "max_tier": "standard"}}
    r["keys"][0]["tenant"] = "acme"


def test_a_tenant_added_is_listed_and_its_key_moving_in_is_risky(tmp_path):
    result = diff(tmp_path, with_tenant)
    assert "tenant `acme` added, its keys may use `chat`" in texts(result)
    assert "key `team-a` tenant none → acme" in risky_texts(result)


def test_a_tenant_granting_more_is_risky_and_granting_less_is_not(tmp_path):
    def wider(r: dict[str, Any]) -> None:
        with_tenant(r)
        r["tenants"]["acme"].update(routes=None, limits={"rpm": 500}, budget={"usd": 80, "per": "day"},
                                    max_tier="premium")

    base, changed = copy.deepcopy(ROUTES), copy.deepcopy(ROUTES)
    with_tenant(base)
    wider(changed)
    write_config(tmp_path / "old", base, PROVIDERS)
    write_config(tmp_path / "new", changed, PROVIDERS)
    old, new = (compile_dir(tmp_path / d, "routes.yaml", "providers.yaml") for d in ("old", "new"))
    risky = [c.text for c in diff_snapshots(old, new).risky]
    assert "tenant `acme` keys may use every route (was `chat`)" in risky
    assert "tenant `acme` budget $50.00/day → $80.00/day" in risky
    assert "tenant `acme` max tier standard → premium" in risky
    assert any(text.startswith("tenant `acme` rpm") for text in risky)
    narrowing = [c for c in diff_snapshots(new, old).changes if c.area == "tenant"]
    assert narrowing and not any(c.risky for c in narrowing)


def test_an_expiry_given_is_listed_and_one_taken_away_is_risky(tmp_path):
    sooner = diff(tmp_path / "sooner", lambda r: r["keys"][1].update(expires_at="2030-01-01T00:00:00Z"))
    assert texts(sooner) == ["key `ci` expires never → 2030-01-01T00:00:00Z"] and sooner.risky == ()
    base, changed = copy.deepcopy(ROUTES), copy.deepcopy(ROUTES)
    base["keys"][1]["expires_at"] = "2030-01-01T00:00:00Z"
    write_config(tmp_path / "old", base, PROVIDERS)
    write_config(tmp_path / "new", changed, PROVIDERS)
    old, new = (compile_dir(tmp_path / d, "routes.yaml", "providers.yaml") for d in ("old", "new"))
    assert [c.text for c in diff_snapshots(old, new).risky] == ["key `ci` expires 2030-01-01T00:00:00Z → never"]
