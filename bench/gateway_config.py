"""The gateway configurations each scenario runs with, and the check that the gateway takes them.

A scenario whose feature has not landed yet (the Anthropic pack, Redis-backed limits, the
cache) fails `gateway validate`; the benchmark then reports it as not yet available instead
of stopping, so the same `make bench` works at every stage of the project.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BENCH_KEY = "sk-bench-0123456789abcdef"
TIGHT_KEY = "sk-bench-tight-0123456789"  # rpm 1: proves limits are enforced at all
FREE_KEY = "sk-bench-free-0123456789ab"  # no limits: the same gateway without them, for comparison
SCHEMA_HINT = "# yaml-language-server: $schema=../schemas/{}.schema.json\n"


@dataclass(frozen=True)
class GatewayConfig:
    """A pair of config files plus the environment the gateway needs to load them."""

    name: str
    routes: Path
    providers: Path
    env: dict[str, str]


def _openai_providers(mock: str) -> dict[str, object]:
    """Two providers on one mock: the base_url path decides JSON or a paced stream. Each
    model has its price and context window in YAML, as the shipped providers.yaml does, so
    the price catalogue is not loaded (docs/providers.md)."""
    model = {"gpt-4o-mini": {"input_per_1m": 0.15, "output_per_1m": 0.6, "context_window": 128000}}
    return {
        "mock": {"api": "openai", "base_url": f"{mock}/v1", "api_key": "x", "models": model},
        "mockstream": {"api": "openai", "base_url": f"{mock}/stream/v1", "api_key": "x",
                       "models": model},
    }


def _anthropic_providers(mock: str) -> dict[str, object]:
    model = {"claude-x": {"input_per_1m": 3.0, "output_per_1m": 15.0, "context_window": 200000}}
    return {
        "anth": {"api": "anthropic", "base_url": mock, "api_key": "x", "models": model},
        "anthstream": {"api": "anthropic", "base_url": f"{mock}/stream", "api_key": "x",
                       "models": model},
    }


def _documents(scenario: str, mock: str) -> tuple[dict[str, object], dict[str, object]]:
    """(routes, providers) for one scenario; every scenario keeps the pass-through routes."""
    providers = _openai_providers(mock)
    routes: dict[str, object] = {
        "pass": {"targets": ["mock/gpt-4o-mini"]},
        "stream": {"targets": ["mockstream/gpt-4o-mini"]},
    }
    document: dict[str, object] = {"routes": routes}
    if scenario == "anthropic":
        providers.update(_anthropic_providers(mock))
        routes["claude"] = {"targets": ["anth/claude-x"]}
        routes["claude-stream"] = {"targets": ["anthstream/claude-x"]}
    elif scenario == "responses":  # the mock has no /v1/responses: Responses reach it as chat
        for provider in providers.values():
            provider["responses"] = "translate"  # type: ignore[index]
    elif scenario == "limits":
        document["keys"] = [
            # A budget too large to refuse: the run measures limits and budgets together.
            {"name": "bench", "key": "${BENCH_KEY}", "limits": {"rpm": 100_000_000},
             "budget": {"usd": 1_000_000, "per": "day"}},
            {"name": "tight", "key": "${BENCH_TIGHT_KEY}", "limits": {"rpm": 1}},
            {"name": "free", "key": "${BENCH_FREE_KEY}"},
        ]
    elif scenario == "cache":
        routes["cached"] = {"targets": ["mock/gpt-4o-mini"], "cache": {"ttl": 600}}
    elif scenario == "semantic":
        # The mock's embeddings answer one fixed vector for any text, so every question on the
        # semantic route is a paraphrase of the one seeded (similarity 1). The bench's body sends
        # no temperature, which counts as 1: the ceiling is raised to take part.
        providers["mock"]["models"]["text-embedding-3-small"] = {  # type: ignore[index]
            "type": "embedding", "input_per_1m": 0.02, "context_window": 8191}
        routes["cached"] = {"targets": ["mock/gpt-4o-mini"], "cache": {"ttl": 600}}
        routes["embed"] = {"targets": ["mock/text-embedding-3-small"]}
        routes["semantic"] = {"targets": ["mock/gpt-4o-mini"], "cache": {"ttl": 600, "semantic": {
            "embed": "embed", "threshold": 0.95, "max_temperature": 1.0}}}
    elif scenario == "ledger-off":
        document["database"] = {"enabled": False}
    elif scenario == "ledger":  # the database each gateway of the scenario is started with
        document["database"] = {"url": "${BENCH_DATABASE_URL:-}"}
    elif scenario == "keys-yaml":  # one key in routes.yaml, against 10,000 made by the admin API
        document["keys"] = [{"name": "bench", "key": "${BENCH_KEY}"}]
        document["database"] = {"url": "${BENCH_DATABASE_URL:-}"}
    elif scenario == "keys-api":  # no key in the file: every key is in the database
        document["database"] = {"url": "${BENCH_DATABASE_URL:-}"}
    elif scenario == "jwt":  # a static key and a JWT issuer side by side; a plan counted per user
        document["keys"] = [{"name": "bench", "key": "${BENCH_KEY}"}]
        document["plans"] = {"bench": {"limits": {"rpm": 100_000_000}}}
        document["auth"] = {"jwt": [{"issuer": "${BENCH_JWT_ISSUER}", "audience": "gateway",
                                     "jwks_url": "${BENCH_JWKS_URL:-http://127.0.0.1:9/jwks.json}"}]}
    return document, {"providers": providers}


def write(scenario: str, mock: str, directory: Path) -> GatewayConfig:
    """Write the scenario's files (JSON is YAML, and needs no extra dependency)."""
    directory.mkdir(parents=True, exist_ok=True)
    routes_doc, providers_doc = _documents(scenario, mock)
    routes = directory / f"{scenario}.routes.yaml"
    providers = directory / f"{scenario}.providers.yaml"
    routes.write_text(SCHEMA_HINT.format("routes") + json.dumps(routes_doc, indent=2) + "\n")
    providers.write_text(
        SCHEMA_HINT.format("providers") + json.dumps(providers_doc, indent=2) + "\n")
    return GatewayConfig(scenario, routes, providers, {"BENCH_KEY": BENCH_KEY, "BENCH_TIGHT_KEY": TIGHT_KEY, "BENCH_FREE_KEY": FREE_KEY,
                                                       "BENCH_JWT_ISSUER": "https://login.bench.invalid/"})


def validate(config: GatewayConfig, repo: Path) -> tuple[bool, str]:
    """Ask the gateway itself whether it accepts the config; (ok, its message)."""
    argv = [sys.executable, "-m", "gateway", "validate", str(config.routes),
            str(config.providers)]
    env = {**os.environ, **config.env}
    try:
        done = subprocess.run(argv, capture_output=True, text=True, cwd=repo, env=env,
                              timeout=60)
    except subprocess.TimeoutExpired:
        return False, "gateway validate timed out"
    message = (done.stdout + done.stderr).strip()
    return done.returncode == 0, "\n".join(message.splitlines()[-8:])

