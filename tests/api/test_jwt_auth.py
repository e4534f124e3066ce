"""Bearer JWTs from an identity provider stand beside the static keys: tokens signed with the
provider's published keys (a local JWKS over real HTTP, keys made in the test) are accepted
through the openai and anthropic SDKs, rotated keys are found without a restart, and every
kind of bad token is refused with 401 in the client's own error shape and RFC 6750's
challenge; an unreachable JWKS costs only the tokens whose key is not cached (503)."""

from __future__ import annotations

import time

import anthropic
import httpx
import openai
import pytest

from tests.support.configs import openai_provider
from tests.support.identity_provider import (
    IdentityProvider,
    hmac_token,
    new_key,
    unsigned_token,
)
from tests.support.servers import serve_app

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
def idp():
    provider = IdentityProvider(keys=[new_key("rsa-1", "RS256"), new_key("ec-1", "ES256")])
    with serve_app(provider.app()) as url:
        provider.base_url = url
        yield provider


def issuer(idp: IdentityProvider, **extra) -> dict:
    return {"issuer": idp.issuer, "audience": idp.audience, "jwks_url": f"{idp.base_url}/jwks.json",
            "claims": {"tenant": "org_id"}, "unknown_kid_interval": 2, **extra}


def routes(idp: IdentityProvider, **extra) -> dict:
    return {
        "routes": {"chat": {"targets": ["up/gpt-test"]}, "other": {"targets": ["up/gpt-test"]}},
        "tenants": {"acme": {}},
        "plans": {"free": {"limits": {"rpm": 3}}, "pro": {"limits": {"rpm": 100}}},
        "auth": {"jwt": [issuer(idp)]},
        **extra,
    }


@pytest.fixture
def served(gateway, upstream, idp):
    base, _ = upstream
    return gateway(routes(idp), {"up": openai_provider(base, ["gpt-test"])})


def chat(url: str, token: str, model: str = "chat", **extra):
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0)
    return client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES, **extra)


def raw(url: str, token: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {token}"},
                      json={"model": "chat", "messages": MESSAGES}, timeout=10)


def test_rs256_and_es256_tokens_are_accepted_through_the_openai_sdk(served, idp):
    for key in idp.keys:
        answer = chat(served, idp.token(key, org_id="acme", tier="pro"))
        assert answer.status_code == 200
        assert answer.parse().choices[0].message.content


def test_an_eddsa_token_is_accepted(gateway, upstream, idp):
    base, _ = upstream
    idp.keys.append(new_key("ed-1", "EdDSA"))
    url = gateway(routes(idp), {"up": openai_provider(base, ["gpt-test"])})
    assert chat(url, idp.token(idp.keys[-1], org_id="acme")).status_code == 200


def test_a_token_is_the_api_key_of_the_anthropic_sdk(served, idp):
    client = anthropic.Anthropic(base_url=served, api_key=idp.token(org_id="acme"), max_retries=0)
    answer = client.messages.create(model="chat", max_tokens=50, messages=MESSAGES)
    assert answer.content[0].text
    with pytest.raises(anthropic.AuthenticationError) as refused:
        anthropic.Anthropic(base_url=served, api_key=idp.token(org_id="acme", ttl=-120), max_retries=0).messages.create(
            model="chat", max_tokens=50, messages=MESSAGES)
    assert refused.value.body["type"] == "error" and "token_expired" in refused.value.body["error"]["message"]


def test_a_rotated_key_is_found_without_a_restart_and_a_removed_one_stops_working(served, idp):
    old = idp.token(org_id="acme")
    assert raw(served, old).status_code == 200
    time.sleep(2.1)  # past unknown_kid_interval, so the next unknown kid may fetch
    idp.keys = [new_key("rsa-2", "RS256")]  # rotated: a new kid appears, the old ones are gone
    assert raw(served, idp.token(org_id="acme")).status_code == 200
    refused = raw(served, old)
    assert refused.status_code == 401 and "unknown_key" in refused.json()["error"]["message"]


def test_made_up_kids_fetch_the_keys_at_most_once_per_interval(served, idp):
    assert raw(served, idp.token(org_id="acme")).status_code == 200
    before = idp.fetches
    for i in range(5):
        stranger = new_key(f"unknown-{i}", "RS256")
        assert raw(served, idp.token(stranger, org_id="acme")).status_code == 401
    assert idp.fetches - before <= 1


def refused(url: str, token: str) -> str:
    response = raw(url, token)
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key"
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="invalid_token", error_description="')
    assert token not in response.text and token not in challenge
    return error["message"]


def test_bad_tokens_are_refused_with_401_and_a_reason_safe_to_show(served, idp):
    claims = idp.claims(org_id="acme")
    assert "malformed" in refused(served, "not.a.jwt")
    assert "algorithm_not_allowed" in refused(served, unsigned_token(claims))
    # HS256 "signed" with the issuer's own public key: the classic key-confusion attack.
    assert "algorithm_not_allowed" in refused(served, hmac_token(claims, idp.keys[0].public_pem(), "rsa-1"))
    assert "token_expired" in refused(served, idp.token(org_id="acme", ttl=-120))
    now = int(time.time())
    assert "token_not_yet_valid" in refused(served, idp.token(org_id="acme", nbf=now + 600))
    assert "token_not_yet_valid" in refused(served, idp.token(org_id="acme", iat=now + 600))
    assert "invalid_issuer" in refused(served, idp.token(org_id="acme", iss="https://evil.example/"))
    assert "invalid_audience" in refused(served, idp.token(org_id="acme", aud="someone-else"))
    forged = idp.token(org_id="acme").rsplit(".", 1)[0] + "." + idp.token(org_id="globex").rsplit(".", 1)[1]
    assert "invalid_signature" in refused(served, forged)
    assert "unknown_tenant" in refused(served, idp.token(org_id="globex"))
    assert "unknown_plan" in refused(served, idp.token(org_id="acme", tier="platinum"))


def test_a_small_clock_skew_is_forgiven(served, idp):
    assert raw(served, idp.token(org_id="acme", ttl=-10)).status_code == 200  # leeway: 30 s by default


def test_an_expired_token_is_refused_through_the_openai_sdk(served, idp):
    with pytest.raises(openai.AuthenticationError) as caught:
        chat(served, idp.token(org_id="acme", ttl=-120))
    assert caught.value.code == "invalid_api_key" and "token_expired" in caught.value.message


def test_with_the_jwks_down_cached_keys_work_and_others_get_503(served, idp):
    cached = idp.token(idp.keys[0], org_id="acme")
    assert raw(served, cached).status_code == 200
    idp.down = True
    time.sleep(2.1)
    assert raw(served, idp.token(idp.keys[0], org_id="acme", sub="bob")).status_code == 200  # key still cached
    response = raw(served, idp.token(new_key("rsa-9"), org_id="acme"))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "jwks_unavailable" and int(response.headers["retry-after"]) >= 1


def test_with_the_jwks_down_from_the_start_tokens_get_503_not_500(gateway, upstream, idp):
    base, _ = upstream
    idp.down = True
    url = gateway(routes(idp), {"up": openai_provider(base, ["gpt-test"])})
    response = raw(url, idp.token(org_id="acme"))
    assert response.status_code == 503 and response.headers["retry-after"]
    assert response.json()["error"]["type"] == "service_unavailable"
    idp.down = False
    deadline = time.monotonic() + 15
    while raw(url, idp.token(org_id="acme")).status_code != 200:  # fetched again once it is back
        assert time.monotonic() < deadline
        time.sleep(0.5)


def test_oidc_discovery_finds_the_keys(gateway, upstream, idp):
    base, _ = upstream
    config = routes(idp)
    config["auth"]["jwt"] = [{"issuer": idp.issuer, "audience": idp.audience,
                              "discovery_url": f"{idp.base_url}/.well-known/openid-configuration",
                              "default_tenant": "acme"}]
    url = gateway(config, {"up": openai_provider(base, ["gpt-test"])})
    assert raw(url, idp.token()).status_code == 200  # no tenant claim: the issuer's default tenant


def test_static_keys_keep_working_beside_tokens(gateway, upstream, idp):
    base, _ = upstream
    config = routes(idp, keys=[{"name": "ci", "key": "sk-static-key-beside-jwt-0001"}])
    url = gateway(config, {"up": openai_provider(base, ["gpt-test"])})
    assert chat(url, "sk-static-key-beside-jwt-0001").status_code == 200
    assert chat(url, idp.token(org_id="acme")).status_code == 200
    with pytest.raises(openai.AuthenticationError) as caught:
        chat(url, "sk-unknown-key-0000")
    assert "invalid API key" in caught.value.message


def test_a_tokens_routes_claim_narrows_what_it_may_use(gateway, upstream, idp):
    base, _ = upstream
    config = routes(idp)
    config["auth"]["jwt"][0]["claims"] = {"tenant": "org_id", "routes": "scope", "route_prefix": "llm:"}
    url = gateway(config, {"up": openai_provider(base, ["gpt-test"])})
    token = idp.token(org_id="acme", scope="openid profile llm:chat")
    assert chat(url, token).status_code == 200
    with pytest.raises(openai.PermissionDeniedError):
        chat(url, token, model="other")


def test_keycloak_roles_map_to_plans(gateway, upstream, idp):
    base, _ = upstream
    config = routes(idp)
    config["auth"]["jwt"][0]["claims"] = {"tenant": "org_id", "plan": None, "roles": "realm_access.roles",
                                          "role_plans": {"gateway-pro": "pro", "gateway-free": "free"}}
    url = gateway(config, {"up": openai_provider(base, ["gpt-test"])})
    free = idp.token(org_id="acme", realm_access={"roles": ["offline_access", "gateway-free"]})
    for _ in range(3):
        assert raw(url, free).status_code == 200
    limited = raw(url, free)
    assert limited.status_code == 429 and "plan 'free'" in limited.json()["error"]["message"]
    pro = idp.token(org_id="acme", sub="carol", realm_access={"roles": ["gateway-pro", "gateway-free"]})
    assert all(raw(url, pro).status_code == 200 for _ in range(5))


def test_an_issuer_added_by_a_reload_is_trusted_without_a_restart(gateway, upstream, idp, tmp_path, monkeypatch):
    import yaml

    monkeypatch.setenv("GATEWAY_ADMIN_KEY", "admin-key-for-jwt-reload-test")
    base, _ = upstream
    config = routes(idp)
    config["auth"]["jwt"][0]["audience"] = "someone-else"
    url = gateway(config, {"up": openai_provider(base, ["gpt-test"])})
    token = idp.token(org_id="acme")
    assert raw(url, token).status_code == 401
    config["auth"]["jwt"][0]["audience"] = idp.audience
    (tmp_path / "config0" / "routes.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    reloaded = httpx.post(f"{url}/admin/reload", headers={"authorization": "Bearer admin-key-for-jwt-reload-test"},
                          timeout=10)
    assert reloaded.status_code == 200, reloaded.text
    assert raw(url, token).status_code == 200


def test_a_token_without_a_kid_is_checked_with_the_issuers_only_key(gateway, upstream, idp):
    import jwt

    base, _ = upstream
    idp.keys = [new_key("only-1", "RS256")]
    url = gateway(routes(idp), {"up": openai_provider(base, ["gpt-test"])})
    token = jwt.encode(idp.claims(org_id="acme"), idp.keys[0].private, algorithm="RS256")
    assert "kid" not in jwt.get_unverified_header(token)
    assert raw(url, token).status_code == 200
    stranger = jwt.encode(idp.claims(org_id="acme"), new_key("x").private, algorithm="RS256")
    assert "invalid_signature" in refused(url, stranger)
