"""GET /admin/config and POST /admin/reload: behind the admin key, and never showing a secret."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gateway.pipeline.identify import hash_key

ADMIN = "admin-key-0123456789"
CLIENT_KEY = "client-key-abcdefghij"
PROVIDER_KEY = "sk-provider-secret-0123456789"
HEADER_SECRET = "header-secret-value-42"


@pytest.fixture
def admin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_KEY", ADMIN)
    monkeypatch.setenv("GATEWAY_WATCH", "0")  # these tests reload on demand only


def start(gateway, upstream_url: str = "http://127.0.0.1:9") -> str:
    routes = {
        "routes": {
            "echo": {"targets": ["echo/echo-1"], "limits": {"rpm": 60}},
            "remote": {"targets": ["remote/model-a", "echo/echo-1"], "strategy": "fallback"},
        },
        "keys": [
            {"name": "team-a", "sha256": hash_key(CLIENT_KEY), "routes": ["echo"], "budget": {"usd": 5, "per": "day"}},
        ],
    }
    providers = {
        "echo": {"api": "echo", "models": {"echo-1": {}}},
        "remote": {
            "api": "openai", "base_url": f"http://user:pa55word@127.0.0.1:9/v1?token={HEADER_SECRET}",
            "api_key": PROVIDER_KEY, "headers": {"x-secret": HEADER_SECRET},
            "models": {"model-a": {"input_per_1m": 1.5, "output_per_1m": 2}},
        },
    }
    return gateway(routes, providers)


def get_config(url: str, key: str = ADMIN) -> httpx.Response:
    return httpx.get(f"{url}/admin/config", headers={"authorization": f"Bearer {key}"})


def test_admin_endpoints_are_closed_without_an_admin_key(gateway, monkeypatch):
    monkeypatch.delenv("GATEWAY_ADMIN_KEY", raising=False)
    url = start(gateway)
    for response in (get_config(url, "anything"), httpx.post(f"{url}/admin/reload")):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "admin_disabled"


def test_admin_endpoints_refuse_a_wrong_or_missing_key(gateway, admin_env):
    url = start(gateway)
    assert get_config(url, "not-the-admin-key").status_code == 401
    assert get_config(url, CLIENT_KEY).status_code == 401  # a client key is not an admin key
    assert httpx.get(f"{url}/admin/config").status_code == 401
    assert httpx.post(f"{url}/admin/reload", headers={"x-api-key": "nope"}).status_code == 401


def test_config_shows_the_running_version_sources_and_routes_without_secrets(gateway, admin_env):
    url = start(gateway)
    response = get_config(url)
    assert response.status_code == 200
    body = response.json()
    served = httpx.post(
        f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {CLIENT_KEY}"},
        json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert body["version"] == served.headers["x-gateway-config"] == response.headers["x-gateway-config"]
    assert body["loaded_at"] > 0 and body["loaded_at_iso"].endswith("+00:00")
    assert [Path(p).name for p in body["sources"]] == ["routes.yaml", "providers.yaml"]
    assert body["last_refused"] is None
    config = body["config"]
    assert [t["target"] for t in config["routes"]["remote"]["targets"]] == ["remote/model-a", "echo/echo-1"]
    assert config["routes"]["echo"]["limits"] == {"rpm": 60}
    assert config["keys"] == [{"name": "team-a", "routes": ["echo"], "limits": None,
                               "budget": {"usd": 5.0, "per": "day"}, "max_tier": None, "plan": None,
                               "per_user": False}]
    remote = config["providers"]["remote"]
    assert remote["api_key"] == "[redacted]" and remote["headers"] == {"x-secret": "[redacted]"}
    assert remote["base_url"] == "http://127.0.0.1:9/v1?[redacted]"
    assert remote["models"]["model-a"]["input_per_1m"] == 1.5
    for secret in (PROVIDER_KEY, HEADER_SECRET, CLIENT_KEY, hash_key(CLIENT_KEY), "pa55word", ADMIN):
        assert secret not in response.text


def test_a_refused_reload_is_shown_with_its_errors_and_the_old_config_keeps_serving(gateway, admin_env, tmp_path):
    url = start(gateway)
    before = get_config(url).json()["version"]
    routes_path = Path(get_config(url).json()["sources"][0])
    routes_path.write_text(
        "routes:\n  echo:\n    targets: [echo/echo-1]\n    limits: {rpm: -1}\n  other:\n    targets: [ghost/model]\n"
    )
    response = httpx.post(f"{url}/admin/reload", headers={"authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "config_refused" and error["version"] == before
    body = get_config(url).json()
    assert body["version"] == before
    refused = body["last_refused"]
    assert refused["trigger"] == "admin" and refused["result"] == "refused"
    assert {(e["line"], e["col"]) for e in refused["errors"]} == {(e["line"], e["col"]) for e in error["errors"]}
    assert any(e["line"] == 4 and "rpm" in e["message"] for e in refused["errors"]), refused["errors"]
    assert all(e["file"] == str(routes_path) for e in refused["errors"])
    assert body["reloads"][-1] == {k: v for k, v in refused.items()}
    chat = httpx.post(
        f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {CLIENT_KEY}"},
        json={"model": "echo", "messages": [{"role": "user", "content": "still here"}]},
    )
    assert chat.status_code == 200 and chat.headers["x-gateway-config"] == before
