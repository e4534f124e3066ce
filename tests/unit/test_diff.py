"""`gateway diff`: what a config change does, judged on compiled configs, for a set of config pairs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.ops.diff import MARKER, ConfigDiff, diff_snapshots
from gateway.ops.revision import compile_dir
from gateway.pipeline.identify import hash_key
from gateway.server.cli import main
from tests.support.configs import write_config

PROVIDERS: dict[str, Any] = {
    "echo": {"api": "echo", "models": {"echo-1": {"tier": "economy"}, "echo-2": {"tier": "standard"}, "echo-embed": {"type": "embedding"}}},
    "remote": {
        "api": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-remote-secret-000111",
        "headers": {"x-team": "search"},
        "models": {"big": {"input_per_1m": 2.5, "output_per_1m": 10, "tier": "premium"}, "small": {"input_per_1m": 0.15, "output_per_1m": 0.6}},
    },
}
SECRET_A = "client-secret-aaaaaaaa"
SECRET_B = "client-secret-bbbbbbbb"
ROUTES: dict[str, Any] = {
    "tiers": ["economy", "standard", "premium"],
    "equivalents": {"cheap": ["echo/echo-1", "remote/small"]},
    "routes": {
        "chat": {"targets": ["remote/big", "echo/echo-1"]},
        "fast": {"strategy": "weighted", "targets": [{"target": "remote/small", "weight": 3}, {"target": "echo/echo-1", "weight": 1}]},
        "cheap": {"equivalent": "cheap", "limits": {"rpm": 100}},
        "embed": {"targets": ["echo/echo-embed"]},
    },
    "keys": [
        {"name": "team-a", "sha256": hash_key(SECRET_A), "routes": ["chat", "fast"], "limits": {"rpm": 60},
         "budget": {"usd": 10, "per": "day"}, "max_tier": "standard"},
        {"name": "ci", "sha256": hash_key(SECRET_B)},
    ],
}


def pair(tmp_path: Path, change_routes=None, change_providers=None) -> tuple[Path, Path]:
    """OLD is the base config; NEW is the base with `change_*` applied to deep copies."""
    routes, providers = copy.deepcopy(ROUTES), copy.deepcopy(PROVIDERS)
    if change_routes:
        change_routes(routes)
    if change_providers:
        change_providers(providers)
    write_config(tmp_path / "old", ROUTES, PROVIDERS)
    write_config(tmp_path / "new", routes, providers)
    return tmp_path / "old", tmp_path / "new"


def diff(tmp_path: Path, change_routes=None, change_providers=None) -> ConfigDiff:
    old, new = pair(tmp_path, change_routes, change_providers)
    return diff_snapshots(compile_dir(old, "routes.yaml", "providers.yaml"), compile_dir(new, "routes.yaml", "providers.yaml"))


def texts(result: ConfigDiff) -> list[str]:
    return [c.text for c in result.changes]


def risky_texts(result: ConfigDiff) -> list[str]:
    return [c.text for c in result.risky]


def test_the_same_config_has_no_change(tmp_path):
    result = diff(tmp_path)
    assert result.changes == () and result.summaries == {} and result.old_version == result.new_version


def test_a_reformatted_file_is_no_change(tmp_path):
    old, new = pair(tmp_path)
    (new / "routes.yaml").write_text("# a comment\n" + (new / "routes.yaml").read_text().replace("\n", "\n\n"))
    assert diff_snapshots(compile_dir(old, "routes.yaml", "providers.yaml"), compile_dir(new, "routes.yaml", "providers.yaml")).changes == ()


def test_an_added_alias_is_listed_and_not_risky(tmp_path):
    result = diff(tmp_path, lambda r: r["routes"].update({"new-one": {"targets": ["echo/echo-2", "remote/small"]}}))
    assert texts(result) == ["alias `new-one` added (chat, fallback: echo/echo-2, remote/small)"]
    assert result.summaries == {"new-one": "new chat model, answered by echo/echo-2 (then remote/small)"}
    assert result.risky == ()


def test_a_removed_alias_is_risky(tmp_path):
    result = diff(tmp_path, lambda r: r["routes"].pop("fast"))
    assert risky_texts(result) == ["alias `fast` removed"]
    assert result.summaries["fast"] == "removed: requests for it get 404 model_not_found"


def test_reordered_targets_say_who_answers_first_now(tmp_path):
    result = diff(tmp_path, lambda r: r["routes"]["chat"].update(targets=["echo/echo-1", "remote/big"]))
    assert texts(result) == ["`chat` targets reordered: remote/big, echo/echo-1 → echo/echo-1, remote/big"]
    assert result.summaries == {"chat": "answered first by echo/echo-1 (was remote/big)"}
    assert result.risky == ()


def test_added_and_removed_targets(tmp_path):
    result = diff(tmp_path, lambda r: r["routes"]["chat"].update(targets=["remote/big", "echo/echo-2"]))
    assert texts(result) == ["`chat` target added: echo/echo-2", "`chat` target removed: echo/echo-1"]
    assert result.summaries["chat"] == "may now be answered by echo/echo-2; no longer answered by echo/echo-1"


def test_strategy_retry_timeout_and_fallback_classes(tmp_path):
    def change(r: dict[str, Any]) -> None:
        r["routes"]["chat"].update(strategy="cheapest", retry={"attempts": 3, "backoff": 0.5, "max_backoff": 4},
                                   timeout=10, fallback_on=["rate_limit"])

    result = diff(tmp_path, change)
    assert texts(result) == [
        "`chat` strategy fallback → cheapest",
        "`chat` retry 2 tries, backoff 0.25s (max 4s) → 3 tries, backoff 0.5s (max 4s)",
        "`chat` no longer falls back on connection, server_error, timeout",
        "`chat` timeout 60s → 10s",
    ]
    summary = result.summaries["chat"]
    assert "targets chosen by cheapest (was fallback)" in summary
    assert "3 tries per target (was 2)" in summary
    assert "gives up after 10s (was 60s)" in summary
    assert "connection, server_error, timeout errors reach clients" in summary


def test_a_changed_default_shows_on_every_alias_that_inherits_it(tmp_path):
    result = diff(tmp_path, lambda r: r.update(defaults={"strategy": "fastest"}))
    assert sorted(result.summaries) == ["chat", "cheap", "embed"]  # `fast` sets its own strategy
    assert all(t.endswith("strategy fallback → fastest") for t in texts(result))


def test_weights_and_equivalents(tmp_path):
    def change(r: dict[str, Any]) -> None:
        r["routes"]["fast"]["targets"][0]["weight"] = 1
        r["equivalents"]["cheap"] = ["remote/small", "echo/echo-1"]

    result = diff(tmp_path, change)
    assert "`fast` weight of remote/small 3 → 1" in texts(result)
    assert result.summaries["fast"] == "share of remote/small 75% → 50%"
    assert "equivalents `cheap`: echo/echo-1, remote/small → remote/small, echo/echo-1" in texts(result)
    assert result.summaries["cheap"].startswith("answered first by remote/small (was echo/echo-1)")


def test_route_limits_tightened_and_loosened(tmp_path):
    def change(r: dict[str, Any]) -> None:
        r["routes"]["cheap"]["limits"] = {"rpm": 10, "max_tokens": 256}
        r["routes"]["chat"]["cache"] = {"ttl": 300}

    result = diff(tmp_path, change)
    assert "`cheap` rpm limit 100 → 10" in texts(result)
    assert "`cheap` max_tokens limit none → 256" in texts(result)
    assert result.summaries["cheap"] == "rpm limit 10 (was 100): more 429s possible; max_tokens above 256 gets 400"
    assert result.summaries["chat"] == "answers are cached for 300s"
    assert result.risky == ()


def test_widening_a_keys_access_is_risky_and_narrowing_is_not(tmp_path):
    result = diff(tmp_path, lambda r: r["keys"][0].update(routes=["chat", "fast", "ch*"]))
    assert risky_texts(result) == ["key `team-a` may use `chat`, `fast`, `ch*` (was `chat`, `fast`)"]
    result = diff(tmp_path / "2", lambda r: r["keys"][0].pop("routes"))
    assert risky_texts(result) == ["key `team-a` may use every route (was `chat`, `fast`)"]
    result = diff(tmp_path / "3", lambda r: r["keys"][0].update(routes=["chat"]))
    assert texts(result) == ["key `team-a` may use `chat` (was `chat`, `fast`)"] and result.risky == ()


def test_key_limits_budget_and_tier(tmp_path):
    def loosen(r: dict[str, Any]) -> None:
        r["keys"][0].pop("limits")
        r["keys"][0]["budget"] = {"usd": 50, "per": "day"}
        r["keys"][0]["max_tier"] = "premium"

    assert risky_texts(diff(tmp_path, loosen)) == [
        "key `team-a` rpm limit 60 → none", "key `team-a` budget $10.00/day → $50.00/day",
        "key `team-a` max tier standard → premium",
    ]

    def tighten(r: dict[str, Any]) -> None:
        r["keys"][0]["limits"] = {"rpm": 30}
        r["keys"][0]["budget"] = {"usd": 5, "per": "day"}
        r["keys"][0]["max_tier"] = "economy"

    result = diff(tmp_path / "2", tighten)
    assert len(result.changes) == 3 and result.risky == ()


def test_keys_added_removed_rotated_and_the_gateway_opened(tmp_path):
    added = diff(tmp_path, lambda r: r["keys"].append({"name": "intruder", "sha256": hash_key("x" * 20)}))
    assert risky_texts(added) == ["key `intruder` added, may use every route"]
    removed = diff(tmp_path / "2", lambda r: r["keys"].pop(1))
    assert risky_texts(removed) == ["key `ci` removed: its clients get 401"]
    rotated = diff(tmp_path / "3", lambda r: r["keys"][1].update(sha256=hash_key("new-secret-123")))
    assert texts(rotated) == ["key `ci`: secret rotated (the old secret stops working)"] and rotated.risky == ()
    opened = diff(tmp_path / "4", lambda r: r.pop("keys"))
    assert "every key removed: the gateway becomes OPEN to anyone who can reach it" in risky_texts(opened)


def test_circuit_breaker_settings(tmp_path):
    result = diff(tmp_path, change_providers=lambda p: p["remote"].update(circuit={"failures": 2, "cooldown": 10}))
    assert texts(result) == [
        "circuit of `remote/big` opens after 5 failures for 30s → after 2 for 10s",
        "circuit of `remote/small` opens after 5 failures for 30s → after 2 for 10s",
    ]


def test_prices_and_models(tmp_path):
    def change(p: dict[str, Any]) -> None:
        p["remote"]["models"]["big"].update(input_per_1m=3, context_window=200000, supports=["tools"])
        p["remote"]["models"]["huge"] = {"input_per_1m": 15, "output_per_1m": 75}

    result = diff(tmp_path, change_providers=change)
    assert texts(result) == [
        "model `remote/huge` added ($15.00 in / $75.00 out per 1M tokens)",
        "price of `remote/big` $2.50 in / $10.00 out per 1M tokens → $3.00 in / $10.00 out per 1M tokens",
        "context window of `remote/big` unset → 200000",
        "`remote/big` supports everything → tools",
    ]
    assert result.summaries == {"chat": "first target costs $3.00/$10.00 per 1M tokens in/out (was $2.50/$10.00)"}
    assert result.risky == ()


def test_provider_changes_show_no_secret(tmp_path):
    def change(p: dict[str, Any]) -> None:
        p["remote"].update(base_url="https://user:pw-secret@elsewhere.example/v1", api_key="sk-new-secret-999888",
                           headers={"x-team": "other-secret-value"})

    result = diff(tmp_path, change_providers=change)
    assert risky_texts(result) == [
        "provider `remote` base_url http://127.0.0.1:9/v1 → https://elsewhere.example/v1: prompts go to a different place"
    ]
    assert "provider `remote` credential changed" in texts(result)
    assert "provider `remote` headers changed: x-team" in texts(result)
    rendered = json.dumps(result.as_dict())
    for secret in ("sk-remote-secret", "sk-new-secret", "other-secret-value", "pw-secret", hash_key(SECRET_A)):
        assert secret not in rendered


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["diff", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_exit_status_tells_risky_from_safe(tmp_path, capsys):
    old, new = pair(tmp_path, lambda r: r["routes"].update({"extra": {"targets": ["echo/echo-1"]}}))
    code, out, _ = run_cli(capsys, str(old), str(new))
    assert code == 0 and "alias `extra` added" in out
    old, new = pair(tmp_path / "2", lambda r: r["routes"].pop("chat"))
    code, out, _ = run_cli(capsys, str(old), str(new))
    assert code == 1 and "RISKY (1):" in out and "! alias `chat` removed" in out
    code, out, _ = run_cli(capsys, str(old), str(old))
    assert code == 0 and "no change" in out


def test_markdown_is_a_pull_request_comment(tmp_path, capsys):
    def change(r: dict[str, Any]) -> None:
        r["routes"].pop("embed")
        r["routes"]["chat"]["targets"] = ["echo/echo-1", "remote/big"]

    old, new = pair(tmp_path, change)
    code, out, _ = run_cli(capsys, str(old), str(new), "--format", "markdown")
    assert code == 1
    assert out.startswith(MARKER + "\n### Gateway config: `")
    assert "> [!WARNING]\n> **1 risky change(s): a second approval is required.**\n> - alias `embed` removed\n" in out
    assert "| alias | what clients will see |\n|---|---|\n" in out
    assert "| `chat` | answered first by echo/echo-1 (was remote/big) |\n" in out
    assert "| `embed` | removed: requests for it get 404 model_not_found |\n" in out
    assert "<details><summary>All changes (2)</summary>" in out and "- ⚠️ alias `embed` removed" in out


def test_json_format(tmp_path, capsys):
    old, new = pair(tmp_path, lambda r: r["keys"][0].update(max_tier="premium"))
    code, out, _ = run_cli(capsys, str(old), str(new), "--format", "json")
    body = json.loads(out)
    assert code == 1 and body["risky"] is True and body["changed"] is True
    assert body["changes"] == [{"area": "key", "name": "team-a", "change": "key `team-a` max tier standard → premium", "risky": True}]


def test_an_invalid_side_exits_2_with_its_errors(tmp_path, capsys):
    old, new = pair(tmp_path)
    (new / "routes.yaml").write_text("routes:\n  a:\n    targets: [ghost/model]\n")
    code, out, err = run_cli(capsys, str(old), str(new))
    assert code == 2 and out == ""
    assert f"{new / 'routes.yaml'}:3:15: unknown provider 'ghost'" in err
    code, _, err = run_cli(capsys, str(old), str(tmp_path / "missing"))
    assert code == 2 and "no such directory or file" in err


def test_unset_secrets_do_not_stop_a_review(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("REVIEW_TEST_KEY", raising=False)
    old, new = pair(tmp_path, change_providers=lambda p: p["remote"].update(api_key="${REVIEW_TEST_KEY}"))
    code, out, _ = run_cli(capsys, str(old), str(new))
    assert code == 0 and "provider `remote` credential changed" in out


@pytest.mark.parametrize("args", [[], ["a"], ["a", "b", "c"], ["--git", "HEAD", "a", "b"]])
def test_wrong_arguments_exit_2(capsys, args):
    assert main(["diff", *args]) == 2


def test_widening_the_cache_scope_is_risky_and_narrowing_is_not(tmp_path):
    def cache_for_the_route(routes):
        routes["routes"]["cheap"]["cache"] = {"ttl": 60, "scope": "route"}

    widened = diff(tmp_path / "w", lambda r: r["routes"]["cheap"].update(cache={"ttl": 60}))
    assert not widened.risky  # caching per key is a new cache, not a wider one
    shared = diff(tmp_path / "s", cache_for_the_route)
    assert risky_texts(shared) == ["`cheap` cache scope key → route: cached answers are shared by every caller of the route"]
    assert "shared by every caller" in shared.summaries["cheap"]

    def new_shared_alias(routes):
        routes["routes"]["faq"] = {"targets": ["echo/echo-1"], "cache": {"ttl": 60, "scope": "route"}}

    assert any("faq" in text for text in risky_texts(diff(tmp_path / "n", new_shared_alias)))


def test_validate_warns_about_a_cache_shared_by_every_caller(tmp_path):
    routes = copy.deepcopy(ROUTES)
    routes["routes"]["cheap"]["cache"] = {"ttl": 60, "scope": "route"}
    routes["routes"]["chat"]["cache"] = {"ttl": 60}
    write_config(tmp_path, routes, PROVIDERS)
    import subprocess
    import sys

    args = [sys.executable, "-m", "gateway", "validate", str(tmp_path / "routes.yaml"), str(tmp_path / "providers.yaml")]
    text = subprocess.run(args, capture_output=True, text=True)
    assert text.returncode == 0
    assert "warning: route 'cheap': cache scope 'route' shares cached answers between every caller" in text.stderr
    assert "'chat'" not in text.stderr
    as_json = json.loads(subprocess.run([*args, "--format", "json"], capture_output=True, text=True).stdout)
    route_warnings = [w for w in as_json["warnings"] if w.startswith("route ")]
    assert len(route_warnings) == 1 and "'cheap'" in route_warnings[0]


def test_validate_warns_when_an_openai_compatible_server_would_get_responses_bodies(tmp_path):
    import subprocess
    import sys

    providers = {"local": {"api": "openai", "base_url": "http://127.0.0.1:9/v1", "models": {"m": {}}},
                 "cloud": {"api": "openai", "base_url": "https://api.openai.com/v1", "models": {"m": {}}},
                 "vllm": {"api": "openai", "base_url": "http://127.0.0.1:9/v1", "responses": "translate",
                          "models": {"m": {}}}}
    routes = {"routes": {"r": {"targets": ["local/m", "cloud/m", "vllm/m"]}}}
    write_config(tmp_path, routes, providers)
    args = [sys.executable, "-m", "gateway", "validate", str(tmp_path / "routes.yaml"), str(tmp_path / "providers.yaml"),
            "--format", "json"]
    warnings = json.loads(subprocess.run(args, capture_output=True, text=True).stdout)["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith("provider 'local'") and "responses: translate" in warnings[0]


def test_letting_a_key_name_providers_directly_is_risky(tmp_path):
    result = diff(tmp_path, lambda r: r["keys"][0].update(direct=["groq"]))
    assert risky_texts(result) == ["key `team-a` may name directly `groq/*` (was nothing)"]


def test_trusting_a_new_jwt_issuer_or_widening_a_plan_is_risky(tmp_path):
    def with_auth(routes: dict) -> None:
        routes["plans"] = {"free": {"limits": {"rpm": 20}, "routes": ["fast", "chat"]}}
        routes["auth"] = {"jwt": [{"name": "corp", "issuer": "https://login.example/", "audience": "gw",
                                   "jwks_url": "http://127.0.0.1:9/jwks.json"}]}

    base = copy.deepcopy(ROUTES)
    base["plans"] = {"free": {"limits": {"rpm": 10}, "routes": ["fast"]}}
    write_config(tmp_path / "old", base, PROVIDERS)
    changed = copy.deepcopy(ROUTES)
    with_auth(changed)
    write_config(tmp_path / "new", changed, PROVIDERS)
    result = diff_snapshots(compile_dir(tmp_path / "old", "routes.yaml", "providers.yaml"),
                            compile_dir(tmp_path / "new", "routes.yaml", "providers.yaml"))
    risky = risky_texts(result)
    assert any("JWT issuer `corp`" in t and "trusted" in t for t in risky)
    assert any(t.startswith("plan `free` users may use") for t in risky)
    assert any(t.startswith("plan `free` rpm") and t.endswith("per user") for t in risky)


def test_turning_the_semantic_cache_on_or_lowering_its_threshold_is_risky(tmp_path):
    semantic = {"embed": "embed", "threshold": 0.95}

    def turned_on(routes):
        routes["routes"]["chat"]["cache"] = {"ttl": 60, "semantic": semantic}

    on = diff(tmp_path / "on", turned_on)
    assert risky_texts(on) == ["`chat` semantic cache on (embed `embed`, threshold 0.95, compare last_user_message)"]
    assert "answered from the cache" in on.summaries["chat"]

    def base(routes):
        routes["routes"]["chat"]["cache"] = {"ttl": 60, "semantic": dict(semantic)}

    def lowered(routes):
        base(routes)
        routes["routes"]["chat"]["cache"]["semantic"]["threshold"] = 0.9

    def raised(routes):
        base(routes)
        routes["routes"]["chat"]["cache"]["semantic"]["threshold"] = 0.98

    def between(folder: Path, change) -> ConfigDiff:
        old, new = copy.deepcopy(ROUTES), copy.deepcopy(ROUTES)
        base(old)
        change(new)
        write_config(folder / "old", old, PROVIDERS)
        write_config(folder / "new", new, PROVIDERS)
        return diff_snapshots(compile_dir(folder / "old", "routes.yaml", "providers.yaml"),
                              compile_dir(folder / "new", "routes.yaml", "providers.yaml"))

    assert risky_texts(between(tmp_path / "low", lowered)) == ["`chat` semantic cache threshold 0.95 → 0.9"]
    high = between(tmp_path / "high", raised)
    assert texts(high) == ["`chat` semantic cache threshold 0.95 → 0.98"] and not high.risky
