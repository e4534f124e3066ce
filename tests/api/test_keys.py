"""Client keys through the official openai SDK: who may call, and what each key sees."""

from __future__ import annotations

import hashlib

import httpx
import openai
import pytest

from tests.support.configs import ECHO_PROVIDER, write_config
from tests.support.servers import gateway_process

SEARCH_KEY = "sk-team-search-0123456789"
CI_KEY = "sk-ci-from-the-environment-42"
MESSAGES = [{"role": "user", "content": "hi"}]


def keyed_routes() -> dict:
    return {
        "routes": {
            "smart": {"targets": ["echo/echo-1"]},
            "fast": {"targets": ["echo/echo-1"]},
            "embed-small": {"targets": ["echo/echo-embed"]},
            "secret-model": {"targets": ["echo/echo-1"]},
        },
        "keys": [
            {"name": "team-search", "sha256": hashlib.sha256(SEARCH_KEY.encode()).hexdigest(),
             "routes": ["smart", "fast", "emb*"]},
            {"name": "ci", "key": "${GATEWAY_CI_KEY}"},
        ],
    }


@pytest.fixture
def keyed(gateway, monkeypatch) -> str:
    monkeypatch.setenv("GATEWAY_CI_KEY", CI_KEY)
    return gateway(keyed_routes())


def client(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def test_missing_key_is_401(keyed):
    with pytest.raises(openai.AuthenticationError) as caught:
        client(keyed, "placeholder").chat.completions.create(
            model="smart", messages=MESSAGES, extra_headers={"Authorization": openai.Omit()}
        )
    assert caught.value.status_code == 401
    assert caught.value.code == "missing_api_key"


def test_unknown_key_is_401_and_is_not_echoed(keyed):
    wrong = "sk-not-a-real-key-987654321"
    with pytest.raises(openai.AuthenticationError) as caught:
        client(keyed, wrong).chat.completions.create(model="smart", messages=MESSAGES)
    assert caught.value.code == "invalid_api_key"
    assert wrong not in caught.value.response.text


def test_bearer_key_may_use_its_routes_and_globs(keyed):
    c = client(keyed, SEARCH_KEY)
    assert c.chat.completions.create(model="smart", messages=MESSAGES).choices[0].message.content == "Echo: hi"
    assert c.embeddings.create(model="embed-small", input="x").data[0].embedding


def test_alias_outside_the_keys_routes_is_403(keyed):
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client(keyed, SEARCH_KEY).chat.completions.create(model="secret-model", messages=MESSAGES)
    assert caught.value.status_code == 403
    assert "team-search" in caught.value.message and SEARCH_KEY not in caught.value.response.text


def test_x_api_key_header_is_accepted(keyed):
    response = httpx.post(
        f"{keyed}/v1/chat/completions", headers={"x-api-key": SEARCH_KEY},
        json={"model": "smart", "messages": MESSAGES},
    )
    assert response.status_code == 200
    forbidden = httpx.post(
        f"{keyed}/v1/chat/completions", headers={"x-api-key": SEARCH_KEY},
        json={"model": "secret-model", "messages": MESSAGES},
    )
    assert forbidden.status_code == 403


def test_key_from_the_environment_may_use_every_route(keyed):
    c = client(keyed, CI_KEY)
    assert c.chat.completions.create(model="secret-model", messages=MESSAGES).choices[0].message.content


def test_models_lists_only_what_the_key_may_use(keyed):
    assert sorted(m.id for m in client(keyed, SEARCH_KEY).models.list()) == ["embed-small", "fast", "smart"]
    assert sorted(m.id for m in client(keyed, CI_KEY).models.list()) == ["embed-small", "fast", "secret-model", "smart"]
    with pytest.raises(openai.NotFoundError):
        client(keyed, SEARCH_KEY).models.retrieve("secret-model")
    with pytest.raises(openai.AuthenticationError):
        client(keyed, "sk-wrong-key-000000").models.list()


def test_open_gateway_says_so_loudly_at_start(tmp_path):
    routes, providers = write_config(tmp_path / "open", {"routes": {"echo": {"targets": ["echo/echo-1"]}}},
                                     {"echo": ECHO_PROVIDER})
    log = tmp_path / "open.log"
    with gateway_process(routes, providers, log=log) as (url, _):
        assert httpx.get(f"{url}/v1/models").status_code == 200  # no key needed
    assert "NO CLIENT KEYS CONFIGURED" in log.read_text()


def test_keyed_gateway_does_not_warn(tmp_path, monkeypatch):
    monkeypatch.setenv("GATEWAY_CI_KEY", CI_KEY)
    routes, providers = write_config(tmp_path / "keyed", keyed_routes(), {"echo": ECHO_PROVIDER})
    log = tmp_path / "keyed.log"
    with gateway_process(routes, providers, log=log) as (url, _):
        assert httpx.get(f"{url}/v1/models").status_code == 401
    text = log.read_text()
    assert "NO CLIENT KEYS CONFIGURED" not in text and CI_KEY not in text
