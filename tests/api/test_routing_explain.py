"""`gateway explain` as an operator runs it: a subprocess printing the plan and every skip reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import openai

from tests.support.configs import openai_provider, write_config
from tests.support.servers import ROOT

PROVIDERS = {
    "up": openai_provider("http://127.0.0.1:9", {
        "big": {"input_per_1m": 5, "output_per_1m": 15, "context_window": 100000, "supports": ["tools", "vision"], "tier": "premium"},
        "mid": {"input_per_1m": 1, "output_per_1m": 2, "context_window": 30, "supports": ["tools"], "tier": "standard"},
        "plain": {"input_per_1m": 0.5, "output_per_1m": 1, "supports": [], "tier": "economy"},
    }),
    "echo": {"api": "echo", "models": {"echo-1": {"tier": "economy"}}},
}
ROUTES = {
    "equivalents": {"small": ["up/plain", "echo/echo-1"]},
    "routes": {
        "smart": {"targets": ["up/big", "up/mid", "up/plain"], "fallback": "equivalents"},
        "cheap": {"strategy": "cheapest", "targets": ["up/big", "up/mid", "up/plain"]},
        "premium": {"targets": ["up/big"]},
    },
    "keys": [{"name": "team", "sha256": "c" * 64, "max_tier": "standard"}],
}


def run(config: tuple[Path, Path], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    routes, providers = config
    return subprocess.run(
        [sys.executable, "-m", "gateway", "explain", *args, "--routes", str(routes), "--providers", str(providers)],
        capture_output=True, text=True, cwd=ROOT, timeout=30, input=stdin,
    )


def test_explain_prints_the_ordered_plan(tmp_path):
    config = write_config(tmp_path, ROUTES, PROVIDERS)
    result = run(config, "smart")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "strategy fallback" in out
    lines = out.splitlines()
    plan = [line.split()[1] for line in lines if line.startswith("  ") and line.strip()[:2] in ("1.", "2.", "3.", "4.")]
    assert plan == ["up/big", "up/mid", "up/plain", "echo/echo-1"]
    assert "fallback: equivalents" in lines[lines.index(next(line for line in lines if "echo/echo-1" in line))]
    assert "result: the request goes to up/big" in out


def test_explain_says_why_each_target_is_skipped(tmp_path):
    config = write_config(tmp_path, ROUTES, PROVIDERS)
    request = tmp_path / "request.json"
    request.write_text(json.dumps({
        "model": "smart",
        "messages": [{"role": "user", "content": "please look this up " * 10}],
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
    }))
    result = run(config, "smart", "--request", str(request), "--key", "team", "--open", "echo/echo-1")
    out = result.stdout
    assert "up/big: tier: tier 'premium' is above the cap 'standard' set by key 'team'" in out
    assert "up/mid: context_window: about" in out and "exceed its context window of 30" in out
    assert "up/plain: capability: the request uses tools, which the model does not support" in out
    assert "echo/echo-1: circuit: circuit open" in out
    assert "result: HTTP 503 no_target_available" in out
    assert result.returncode == 1


def test_explain_shows_the_403_for_a_keys_tier_cap_and_reads_stdin(tmp_path):
    config = write_config(tmp_path, ROUTES, PROVIDERS)
    result = run(config, "premium", "--key", "team", "--request", "-",
                 stdin=json.dumps({"model": "premium", "messages": [{"role": "user", "content": "hi"}]}))
    assert "result: HTTP 403 tier_not_allowed" in result.stdout
    assert result.returncode == 1


def test_explain_json_for_cheapest_with_the_header_tier(tmp_path):
    config = write_config(tmp_path, ROUTES, PROVIDERS)
    result = run(config, "cheap", "--tier", "standard", "--format", "json")
    data = json.loads(result.stdout)
    assert [c["target"] for c in data["candidates"]] == ["up/plain", "up/mid"]
    assert data["candidates"][0]["estimated_cost_usd"] < data["candidates"][1]["estimated_cost_usd"]
    assert data["skipped"] == [{"target": "up/big", "reason": "tier",
                                "detail": "tier 'premium' is above the cap 'standard' set by the request's x-gateway-max-tier"}]
    assert data["status"] == 200


def test_explain_mistakes_are_plain_errors(tmp_path):
    config = write_config(tmp_path, ROUTES, PROVIDERS)
    for args, message in [(("nope",), "no route 'nope'"), (("smart", "--key", "ghost"), "no key named 'ghost'"),
                          (("smart", "--open", "up/ghost"), "no target 'up/ghost'")]:
        result = run(config, *args)
        assert result.returncode == 1
        assert message in result.stderr
        assert "Traceback" not in result.stderr
    bad = run(config, "smart", "--tier", "gold")
    assert "result: HTTP 400 invalid_tier" in bad.stdout


def test_explain_live_copies_open_circuits_from_a_running_gateway(gateway, upstream, tmp_path):
    base, fake = upstream
    routes = {"defaults": {"circuit": {"failures": 1, "cooldown": 60}},
              "routes": {"r": {"targets": ["up/fail-500-live", "echo/echo-1"], "retry": {"attempts": 1}}}}
    providers = {"up": openai_provider(base, ["fail-500-live"]), "echo": {"api": "echo", "models": {"echo-1": {}}}}
    url = gateway(routes, providers)
    openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0).chat.completions.create(
        model="r", messages=[{"role": "user", "content": "hi"}])
    config = write_config(tmp_path / "same", routes, providers)
    result = run(config, "r", "--live", url)
    assert "up/fail-500-live: circuit: circuit open" in result.stdout
    assert "result: the request goes to echo/echo-1" in result.stdout
