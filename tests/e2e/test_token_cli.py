"""`gateway token mint` signs development tokens with the configured HS256 issuer's secret
(taken from the environment), which the gateway then accepts; with no such issuer it exits
non-zero. `gateway explain --token/--claims` shows the plan, routes and limits a token gets."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jwt
import openai
import pytest

from gateway.server.app import create_app
from tests.support.configs import ECHO_PROVIDER, write_config
from tests.support.servers import serve_app

SECRET = "dev-signing-secret-for-token-cli-tests-0123456789"
OTHER_SECRET = "another-signing-secret-for-token-cli-tests-987654"


def routes(**auth) -> dict:
    return {
        "routes": {"chat": {"targets": ["echo/echo-1"]}, "premium": {"targets": ["echo/echo-1"]}},
        "tenants": {"acme": {"limits": {"rpm": 500}, "budget": {"usd": 40, "per": "month"}}},
        "plans": {"free": {"limits": {"rpm": 10, "tpm": 20000}, "routes": ["chat"]}, "pro": {"limits": {"rpm": 120}}},
        "auth": auth or {"jwt": [{"name": "dev", "issuer": "https://dev.example/", "audience": "gateway",
                                  "secret": "${DEV_JWT_SECRET}", "claims": {"tenant": "org_id"}}]},
    }


def gateway_cli(*args: str, folder, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args, "--routes", str(folder / "routes.yaml"),
         "--providers", str(folder / "providers.yaml")],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "DEV_JWT_SECRET": SECRET, "OTHER_JWT_SECRET": OTHER_SECRET, **(env or {})},
    )


@pytest.fixture
def folder(tmp_path):
    write_config(tmp_path, routes(), {"echo": ECHO_PROVIDER})
    return tmp_path


def test_a_minted_token_is_accepted_by_the_gateway(folder, monkeypatch):
    minted = gateway_cli("token", "mint", "--sub", "alice", "--tenant", "acme", "--plan", "pro", "--ttl", "1h",
                         folder=folder)
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="gateway")
    assert (claims["sub"], claims["org_id"], claims["tier"]) == ("alice", "acme", "pro")
    assert 3590 <= claims["exp"] - claims["iat"] <= 3600
    monkeypatch.setenv("DEV_JWT_SECRET", SECRET)
    with serve_app(create_app(str(folder / "routes.yaml"), str(folder / "providers.yaml"))) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0)
        assert client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}]).choices
        forged = jwt.encode({**claims, "tier": "pro", "sub": "mallory"}, "not-the-secret-but-long-enough-000000",
                            algorithm="HS256")
        with pytest.raises(openai.AuthenticationError) as caught:
            openai.OpenAI(base_url=f"{url}/v1", api_key=forged, max_retries=0).chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "hi"}])
        assert "invalid_signature" in caught.value.message


def test_the_admin_config_shows_issuers_and_plans_but_never_the_secret(folder, monkeypatch):
    import httpx

    monkeypatch.setenv("DEV_JWT_SECRET", SECRET)
    monkeypatch.setenv("GATEWAY_ADMIN_KEY", "admin-key-for-token-cli-tests")
    with serve_app(create_app(str(folder / "routes.yaml"), str(folder / "providers.yaml"))) as url:
        response = httpx.get(f"{url}/admin/config", headers={"authorization": "Bearer admin-key-for-token-cli-tests"})
    assert response.status_code == 200, response.text
    config = response.json()["config"]
    assert config["auth"]["jwt"][0]["secret"] == "[redacted]" and config["auth"]["jwt"][0]["algorithms"] == ["HS256"]
    assert config["plans"]["free"] == {"limits": {"rpm": 10, "tpm": 20000}, "max_tier": None, "routes": ["chat"]}
    assert SECRET not in response.text


def test_minting_without_an_hs256_issuer_fails(tmp_path):
    write_config(tmp_path, routes(jwt=[{"issuer": "https://idp.example/", "audience": "gateway",
                                        "jwks_url": "http://127.0.0.1:9/jwks.json"}]), {"echo": ECHO_PROVIDER})
    minted = gateway_cli("token", "mint", "--sub", "alice", folder=tmp_path)
    assert minted.returncode != 0 and not minted.stdout
    assert "no issuer with a 'secret'" in minted.stderr


def test_with_several_hs256_issuers_issuer_picks_one(tmp_path):
    write_config(tmp_path, routes(jwt=[
        {"name": "dev", "issuer": "https://dev.example/", "audience": "gateway", "secret": "${DEV_JWT_SECRET}"},
        {"name": "other", "issuer": "https://other.example/", "audience": "gw", "secret": "${OTHER_JWT_SECRET}"},
    ]), {"echo": ECHO_PROVIDER})
    assert gateway_cli("token", "mint", "--sub", "alice", folder=tmp_path).returncode != 0
    minted = gateway_cli("token", "mint", "--sub", "alice", "--issuer", "other", folder=tmp_path)
    assert minted.returncode == 0, minted.stderr
    assert jwt.decode(minted.stdout.strip(), OTHER_SECRET, algorithms=["HS256"], audience="gw")["sub"] == "alice"


def test_explain_shows_the_plan_routes_and_limits_of_a_token(folder):
    token = gateway_cli("token", "mint", "--sub", "bob", "--tenant", "acme", "--plan", "free",
                        folder=folder).stdout.strip()
    shown = gateway_cli("explain", "chat", "--token", token, "--format", "json", folder=folder)
    assert shown.returncode == 0, shown.stderr
    caller = json.loads(shown.stdout)["caller"]
    assert caller["user"] == "bob" and caller["plan"] == "free" and caller["tenant"] == "acme"
    assert caller["plan_limits"] == {"rpm": 10, "tpm": 20000} and caller["plan_counts"] == "per user"
    assert caller["tenant_limits"] == {"rpm": 500} and caller["tenant_budget"] == "$40 per month"
    assert caller["routes"] == ["chat"]
    assert token not in shown.stdout
    denied = gateway_cli("explain", "premium", "--claims", json.dumps({"sub": "bob", "org_id": "acme", "tier": "free"}),
                         folder=folder)
    assert denied.returncode == 1 and "plan 'free'" in denied.stdout and "may not use model 'premium'" in denied.stdout
    text = gateway_cli("explain", "premium", "--claims", json.dumps({"sub": "carol", "org_id": "acme", "tier": "pro"}),
                       folder=folder)
    assert text.returncode == 0 and "plan pro" in text.stdout and "user carol" in text.stdout
    unknown = gateway_cli("explain", "chat", "--claims", json.dumps({"sub": "x", "org_id": "nope"}), folder=folder)
    assert unknown.returncode == 1 and "unknown_tenant" in unknown.stderr
