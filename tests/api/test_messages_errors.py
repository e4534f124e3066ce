"""Errors on /v1/messages come in Anthropic's shape with the status its SDK maps to its exceptions."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import pytest

from gateway.pipeline.identify import hash_key
from gateway.server.app import create_app
from tests.support.configs import ECHO_PROVIDER, write_config
from tests.support.servers import serve_app

CLIENT_KEY = "sk-client-messages-0001"
ROUTES = {
    "defaults": {"max_body_bytes": 4096},
    "routes": {"chat": {"targets": ["echo/echo-1"]}, "other": {"targets": ["echo/echo-1"]},
               "embed": {"targets": ["echo/echo-embed"]}},
}
KEYED = {**ROUTES, "keys": [{"name": "team", "sha256": hash_key(CLIENT_KEY), "routes": ["chat"]}]}
HELLO = [{"role": "user", "content": "hello"}]


def serve(tmp_path_factory, routes) -> Iterator[str]:
    routes_path, providers_path = write_config(tmp_path_factory.mktemp("config"), routes, {"echo": ECHO_PROVIDER})
    with serve_app(create_app(str(routes_path), str(providers_path))) as url:
        yield url


@pytest.fixture(scope="module")
def open_gateway(tmp_path_factory) -> Iterator[str]:
    """A gateway without keys, shared by the module."""
    yield from serve(tmp_path_factory, ROUTES)


@pytest.fixture(scope="module")
def keyed_gateway(tmp_path_factory) -> Iterator[str]:
    """A gateway with one key that may use only `chat`."""
    yield from serve(tmp_path_factory, KEYED)


def client(url: str, **options) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, max_retries=0, **options)


def assert_anthropic_error(response: httpx.Response, status: int, error_type: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in response.text
    assert response.headers["x-request-id"] == body["request_id"]


def test_unknown_alias_is_the_sdks_not_found_error(open_gateway):
    url = open_gateway
    with pytest.raises(anthropic.NotFoundError) as caught:
        client(url, api_key="unused").messages.create(model="ghost", max_tokens=8, messages=HELLO)
    assert caught.value.body["error"]["type"] == "not_found_error"
    assert caught.value.body["error"]["code"] == "model_not_found"


def test_an_embedding_alias_is_not_a_messages_model(open_gateway):
    url = open_gateway
    with pytest.raises(anthropic.NotFoundError):
        client(url, api_key="unused").messages.create(model="embed", max_tokens=8, messages=HELLO)


def test_x_api_key_and_bearer_both_authenticate(keyed_gateway):
    url = keyed_gateway
    by_header = client(url, api_key=CLIENT_KEY).messages.create(model="chat", max_tokens=8, messages=HELLO)
    by_bearer = client(url, auth_token=CLIENT_KEY).messages.create(model="chat", max_tokens=8, messages=HELLO)
    assert by_header.content[0].text == by_bearer.content[0].text == "Echo: hello"


def test_missing_or_wrong_key_is_the_sdks_authentication_error(keyed_gateway):
    url = keyed_gateway
    with pytest.raises(anthropic.AuthenticationError) as caught:
        client(url, api_key="sk-wrong").messages.create(model="chat", max_tokens=8, messages=HELLO)
    assert caught.value.body["error"]["type"] == "authentication_error"
    response = httpx.post(f"{url}/v1/messages", json={"model": "chat", "max_tokens": 8, "messages": HELLO})
    assert_anthropic_error(response, 401, "authentication_error")


def test_key_without_the_route_is_the_sdks_permission_error(keyed_gateway):
    url = keyed_gateway
    with pytest.raises(anthropic.PermissionDeniedError) as caught:
        client(url, api_key=CLIENT_KEY).messages.create(model="other", max_tokens=8, messages=HELLO)
    assert caught.value.body["error"]["type"] == "permission_error"
    with pytest.raises(anthropic.PermissionDeniedError):
        client(url, api_key=CLIENT_KEY).messages.count_tokens(model="other", messages=HELLO)


def test_body_over_the_size_limit_is_the_sdks_content_too_large_error(open_gateway):
    url = open_gateway
    with pytest.raises(anthropic.ContentTooLargeError) as caught:
        client(url, api_key="unused").messages.create(model="chat", max_tokens=8, messages=[{"role": "user", "content": "x" * 8000}])
    assert caught.value.body["error"]["type"] == "request_too_large"


BAD_BODIES = [
    ("not json", b"{nope"),
    ("empty body", b""),
    ("json array", b"[1]"),
    ("missing model", b'{"max_tokens":5,"messages":[{"role":"user","content":"x"}]}'),
    ("missing max_tokens", b'{"model":"chat","messages":[{"role":"user","content":"x"}]}'),
    ("max_tokens zero", b'{"model":"chat","max_tokens":0,"messages":[{"role":"user","content":"x"}]}'),
    ("max_tokens a string", b'{"model":"chat","max_tokens":"5","messages":[{"role":"user","content":"x"}]}'),
    ("missing messages", b'{"model":"chat","max_tokens":5}'),
    ("empty messages", b'{"model":"chat","max_tokens":5,"messages":[]}'),
    ("system role in messages", b'{"model":"chat","max_tokens":5,"messages":[{"role":"system","content":"x"}]}'),
    ("content a number", b'{"model":"chat","max_tokens":5,"messages":[{"role":"user","content":5}]}'),
    ("block without type", b'{"model":"chat","max_tokens":5,"messages":[{"role":"user","content":[{"text":"x"}]}]}'),
    ("unknown block type", b'{"model":"chat","max_tokens":5,"messages":[{"role":"user","content":[{"type":"hologram"}]}]}'),
    ("image without source", b'{"model":"chat","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image"}]}]}'),
    ("image not an image", b'{"model":"chat","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"text/plain","data":"eA=="}}]}]}'),
    ("tool_result without id", b'{"model":"chat","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","content":"x"}]}]}'),
    ("tool_use input not an object", b'{"model":"chat","max_tokens":5,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"n","input":[1]}]}]}'),
    ("system a number", b'{"model":"chat","max_tokens":5,"system":5,"messages":[{"role":"user","content":"x"}]}'),
    ("system block not text", b'{"model":"chat","max_tokens":5,"system":[{"type":"image"}],"messages":[{"role":"user","content":"x"}]}'),
    ("tools not a list", b'{"model":"chat","max_tokens":5,"tools":{},"messages":[{"role":"user","content":"x"}]}'),
    ("tool without schema", b'{"model":"chat","max_tokens":5,"tools":[{"name":"t"}],"messages":[{"role":"user","content":"x"}]}'),
    ("tool_choice unknown", b'{"model":"chat","max_tokens":5,"tool_choice":{"type":"maybe"},"messages":[{"role":"user","content":"x"}]}'),
    ("temperature a string", b'{"model":"chat","max_tokens":5,"temperature":"hot","messages":[{"role":"user","content":"x"}]}'),
    ("top_k a float", b'{"model":"chat","max_tokens":5,"top_k":1.5,"messages":[{"role":"user","content":"x"}]}'),
    ("stop_sequences a string", b'{"model":"chat","max_tokens":5,"stop_sequences":"END","messages":[{"role":"user","content":"x"}]}'),
    ("stream not a bool", b'{"model":"chat","max_tokens":5,"stream":"yes","messages":[{"role":"user","content":"x"}]}'),
    ("metadata a string", b'{"model":"chat","max_tokens":5,"metadata":"m","messages":[{"role":"user","content":"x"}]}'),
    ("invalid utf-8", b'{"model":"chat","max_tokens":5,"messages":[{"role":"user","content":"\xff"}]}'),
]


@pytest.mark.parametrize(("name", "body"), BAD_BODIES, ids=[name for name, _ in BAD_BODIES])
def test_malformed_bodies_are_invalid_request_errors(open_gateway, name, body):
    url = open_gateway
    response = httpx.post(f"{url}/v1/messages", content=body, headers={"content-type": "application/json"})
    assert_anthropic_error(response, 400, "invalid_request_error")


def test_malformed_count_tokens_body_is_an_invalid_request_error(open_gateway):
    url = open_gateway
    response = httpx.post(f"{url}/v1/messages/count_tokens", json={"model": "chat", "messages": "hi"})
    assert_anthropic_error(response, 400, "invalid_request_error")


def test_unknown_messages_paths_and_wrong_methods_answer_in_anthropic_shape(open_gateway):
    response = httpx.post(f"{open_gateway}/v1/messages/batches", json={})
    assert_anthropic_error(response, 404, "not_found_error")
    response = httpx.get(f"{open_gateway}/v1/messages")
    assert response.status_code == 405
    assert response.json()["type"] == "error"
