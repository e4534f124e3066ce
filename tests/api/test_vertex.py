"""Google Vertex AI (api: vertex): OAuth access tokens from a service-account file made in
the test, minted by a mock token endpoint that checks the JWT's signature; Gemini and
Anthropic-on-Vertex paths; a token refreshed before it expires, and once after a 401."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.configs import ECHO_PROVIDER
from tests.support.servers import serve_app
from tests.support.vertex_upstream import VertexUpstream, service_account_file

PROJECT, LOCATION = "proj-test", "europe-west4"
GEMINI, CLAUDE = "gemini-2.0-flash", "claude-3-5-sonnet-v2@20241022"


@pytest.fixture
def vertex(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, VertexUpstream, Path]]:
    fake = VertexUpstream()
    with serve_app(fake.app()) as url:
        fake.token_uri = f"{url}/token"
        path, fake.public_key = service_account_file(tmp_path, fake.token_uri, PROJECT)
        # The file comes from the variable Google's libraries read; nothing else is looked at.
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
        yield url, fake, path


def _client(gateway: Any, url: str, **provider: Any) -> tuple[openai.OpenAI, str]:
    spec = {"api": "vertex", "base_url": url, "project": PROJECT, "location": LOCATION, **provider}
    routes = {"routes": {"gemini": {"targets": [f"gcp/{GEMINI}"]}, "claude": {"targets": [f"gcp/{CLAUDE}"]}}}
    base = gateway(routes, {"gcp": spec, "echo": ECHO_PROVIDER})
    return openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0), base


def _ask(client: openai.OpenAI, model: str) -> Any:
    return client.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": "Hi"}])


def test_gemini_on_vertex_uses_a_token_from_the_service_account(gateway, vertex):
    url, fake, _ = vertex
    client, _ = _client(gateway, url)
    first, second = _ask(client, "gemini"), _ask(client, "gemini")
    assert first.parse().choices[0].message.content == "hello from gemini"
    assert second.http_response.status_code == 200
    assert fake.calls[0]["path"] == f"/v1/projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/{GEMINI}:generateContent"
    assert [c["token"] for c in fake.calls] == ["ya29.token-1", "ya29.token-1"]  # a valid token is reused
    assert len(fake.issued) == 1
    assert float(first.headers["x-gateway-cost-usd"]) == pytest.approx((3 * 0.1 + 2 * 0.4) / 1e6)  # the catalogue's price


def test_anthropic_on_vertex_goes_to_raw_predict_with_the_vertex_version(gateway, vertex):
    url, fake, _ = vertex
    client, _ = _client(gateway, url)
    answer = _ask(client, "claude").parse()
    assert answer.choices[0].message.content == "hello from anthropic"
    call = fake.calls[-1]
    assert call["path"] == f"/v1/projects/{PROJECT}/locations/{LOCATION}/publishers/anthropic/models/{CLAUDE}:rawPredict"
    assert call["body"]["anthropic_version"] == "vertex-2023-10-16" and "model" not in call["body"]
    assert call["token"] == "ya29.token-1"


def test_an_anthropic_client_reaches_anthropic_on_vertex(gateway, vertex):
    url, fake, _ = vertex
    _, base = _client(gateway, url)
    answer = httpx.post(f"{base}/v1/messages", json={
        "model": "claude", "max_tokens": 32, "messages": [{"role": "user", "content": "Hi"}],
    })
    assert answer.status_code == 200, answer.text
    assert answer.json()["content"][0]["text"] == "hello from anthropic"
    assert "model" not in fake.calls[-1]["body"]


def test_the_vertex_preset_reads_the_project_from_its_variable(gateway, vertex, monkeypatch: pytest.MonkeyPatch):
    url, fake, _ = vertex
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "proj-from-env")
    base = gateway({"routes": {"echo": {"targets": ["echo/echo-1"]}}},
                   {"vertex_ai": {"preset": "vertex_ai", "base_url": url}, "echo": ECHO_PROVIDER})
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
    assert _ask(client, f"vertex_ai/{GEMINI}").http_response.status_code == 200
    assert fake.calls[-1]["path"] == f"/v1/projects/proj-from-env/locations/us-east5/publishers/google/models/{GEMINI}:generateContent"


def test_a_token_is_refreshed_before_it_expires(gateway, vertex):
    url, fake, _ = vertex
    fake.lifetime = 60  # inside google-auth's refresh margin: already due for renewal when it arrives
    client, _ = _client(gateway, url)
    _ask(client, "gemini")
    _ask(client, "gemini")
    assert [c["token"] for c in fake.calls] == ["ya29.token-1", "ya29.token-2"]
    assert len(fake.issued) == 2


def test_a_401_gets_one_fresh_token_and_one_more_try(gateway, vertex):
    url, fake, _ = vertex
    client, _ = _client(gateway, url)
    _ask(client, "gemini")
    fake.revoked.add("ya29.token-1")  # revoked long before its expiry
    raw = _ask(client, "gemini")
    assert raw.http_response.status_code == 200
    assert [c["token"] for c in fake.calls] == ["ya29.token-1", "ya29.token-1", "ya29.token-2"]
    assert raw.headers["x-gateway-attempts"] == "1"  # the fresh try is part of the same attempt


def test_the_token_endpoint_refuses_an_assertion_changed_by_one_byte(gateway, vertex):
    url, fake, _ = vertex
    client, _ = _client(gateway, url)
    _ask(client, "gemini")
    good = fake.assertions[-1]
    head, payload, signature = good.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"}
    assert httpx.post(fake.token_uri, data={**form, "assertion": good}).status_code == 200
    assert httpx.post(fake.token_uri, data={**form, "assertion": f"{head}.{payload}.{flipped}"}).status_code == 400


def test_credentials_that_cannot_get_a_token_make_the_target_fail_cleanly(gateway, vertex, tmp_path: Path):
    url, fake, _ = vertex
    (tmp_path / "other").mkdir()
    other, _ = service_account_file(tmp_path / "other", fake.token_uri)
    client, _ = _client(gateway, url, credentials=str(other))  # a key the token endpoint does not trust
    with pytest.raises(openai.APIStatusError) as caught:
        _ask(client, "gemini")
    assert caught.value.status_code == 502
    assert not fake.calls
