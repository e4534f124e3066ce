"""The log of a real `gateway serve` process that takes bearer JWTs: each request line names
the end user and plan, a refused token's line names its issuer, subject and jti and nothing
else of it, and no token (nor any part of one, nor the HS256 secret) appears in any line at
DEBUG level, whatever the token's fate."""

from __future__ import annotations

import json
import time

import httpx
import jwt

from tests.support.configs import ECHO_PROVIDER, write_config
from tests.support.identity_provider import IdentityProvider, new_key, unsigned_token
from tests.support.servers import gateway_process, serve_app

SECRET = "hs256-secret-that-must-never-be-logged-0123456789"
MESSAGES = [{"role": "user", "content": "hello"}]


def lines(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip().startswith("{")]


def test_tokens_never_reach_the_log_while_users_and_plans_do(tmp_path):
    idp = IdentityProvider(keys=[new_key("rsa-1", "RS256")])
    with serve_app(idp.app()) as idp_url:
        idp.base_url = idp_url
        routes, providers = write_config(tmp_path, {
            "routes": {"chat": {"targets": ["echo/echo-1"]}},
            "tenants": {"acme": {}},
            "plans": {"free": {"limits": {"rpm": 2}}},
            "auth": {"jwt": [
                {"name": "corp", "issuer": idp.issuer, "audience": idp.audience, "jwks_url": f"{idp_url}/jwks.json",
                 "claims": {"tenant": "org_id"}},
                {"name": "dev", "issuer": "https://dev.example/", "audience": "gateway", "secret": SECRET,
                 "claims": {"tenant": "org_id"}},
            ]},
        }, {"echo": ECHO_PROVIDER})
        log = tmp_path / "gateway.log"
        good = idp.token(sub="alice", org_id="acme", tier="free")
        now = int(time.time())
        dev = jwt.encode({"iss": "https://dev.example/", "aud": "gateway", "sub": "dan", "org_id": "acme",
                          "tier": "free", "exp": now + 600, "iat": now}, SECRET, algorithm="HS256")
        tokens = {
            "good": good,
            "dev": dev,
            "expired": idp.token(sub="bob", org_id="acme", ttl=-300, jti="jti-of-the-expired-one"),
            "wrong_audience": idp.token(sub="carol", org_id="acme", aud="elsewhere"),
            "unsigned": unsigned_token(idp.claims(sub="eve", org_id="acme")),
            "unknown_kid": idp.token(new_key("rsa-x"), sub="frank", org_id="acme"),
        }
        env = {"GATEWAY_LOG_FORMAT": "json", "GATEWAY_LOG_LEVEL": "DEBUG"}
        with gateway_process(routes, providers, env=env, log=log) as (url, _):
            statuses = {}
            for name, token in tokens.items():
                response = httpx.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {token}"},
                                      json={"model": "chat", "messages": MESSAGES}, timeout=10)
                statuses[name] = response.status_code
            limited = httpx.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {good}"},
                                 json={"model": "chat", "messages": MESSAGES}, timeout=10)
            limited = httpx.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {good}"},
                                 json={"model": "chat", "messages": MESSAGES}, timeout=10)
            time.sleep(0.5)
    assert statuses == {"good": 200, "dev": 200, "expired": 401, "wrong_audience": 401, "unsigned": 401,
                        "unknown_kid": 401}
    assert limited.status_code == 429
    text = log.read_text()
    for token in tokens.values():
        for part in filter(None, token.split(".")):
            assert part not in text
    assert SECRET not in text
    records = lines(log)
    requests = [r for r in records if r.get("event") == "request" and r.get("status") == 200]
    assert {(r.get("user"), r.get("plan"), r.get("key")) for r in requests} == {
        ("alice", "free", "corp"), ("dan", "free", "dev")}
    refusals = {r["reason"]: r for r in records if r.get("event") == "token_refused"}
    assert {"token_expired", "invalid_audience", "algorithm_not_allowed", "unknown_key"} <= set(refusals)
    expired = refusals["token_expired"]
    assert (expired["sub"], expired["jti"], expired["issuer"]) == ("bob", "jti-of-the-expired-one", idp.issuer)
