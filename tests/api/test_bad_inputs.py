"""Malformed requests get a 4xx in OpenAI's error shape, never a 500."""

from __future__ import annotations

import httpx
import pytest

ROUTES = {"defaults": {"max_body_bytes": 2048}, "routes": {"echo": {"targets": ["echo/echo-1"]}, "embed": {"targets": ["echo/echo-embed"]}}}

CHAT_CASES = [
    ("not json", b"{nope", 400),
    ("empty body", b"", 400),
    ("json array", b"[1,2]", 400),
    ("missing model", b'{"messages":[{"role":"user","content":"x"}]}', 400),
    ("model not a string", b'{"model":5,"messages":[{"role":"user","content":"x"}]}', 400),
    ("missing messages", b'{"model":"echo"}', 400),
    ("empty messages", b'{"model":"echo","messages":[]}', 400),
    ("messages not a list", b'{"model":"echo","messages":"hi"}', 400),
    ("message not an object", b'{"model":"echo","messages":["hi"]}', 400),
    ("unknown role", b'{"model":"echo","messages":[{"role":"wizard","content":"x"}]}', 400),
    ("content a number", b'{"model":"echo","messages":[{"role":"user","content":5}]}', 400),
    ("stream not bool", b'{"model":"echo","stream":"yes","messages":[{"role":"user","content":"x"}]}', 400),
    ("max_tokens a string", b'{"model":"echo","max_tokens":"10","messages":[{"role":"user","content":"x"}]}', 400),
    ("max_tokens a bool", b'{"model":"echo","max_tokens":true,"messages":[{"role":"user","content":"x"}]}', 400),
    ("temperature a string", b'{"model":"echo","temperature":"hot","messages":[{"role":"user","content":"x"}]}', 400),
    ("tools not a list", b'{"model":"echo","tools":{},"messages":[{"role":"user","content":"x"}]}', 400),
    ("unknown alias", b'{"model":"ghost","messages":[{"role":"user","content":"x"}]}', 404),
    ("embedding alias on chat", b'{"model":"embed","messages":[{"role":"user","content":"x"}]}', 404),
    ("too large", b'{"model":"echo","messages":[{"role":"user","content":"' + b"x" * 4096 + b'"}]}', 413),
    ("invalid utf-8", b'{"model":"echo","messages":[{"role":"user","content":"\xff\xfe"}]}', 400),
]


def assert_openai_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in response.text
    assert response.headers["x-request-id"]


@pytest.mark.parametrize(("name", "body", "status"), CHAT_CASES, ids=[c[0] for c in CHAT_CASES])
def test_malformed_chat_bodies(gateway, name, body, status):
    url = gateway(ROUTES)
    response = httpx.post(f"{url}/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert_openai_error(response, status)


@pytest.mark.parametrize("body", [b'{"model":"embed"}', b'{"model":"embed","input":5}', b'{"model":"embed","input":[]}',
                                  b'{"model":"embed","input":"x","dimensions":0}', b'{"model":"echo","input":"x"}',
                                  b'{"model":"embed","input":["a",0]}', b'{"model":"embed","input":[[1],"a"]}',
                                  b'{"model":"embed","input":[[1],[]]}', b'{"model":"embed","input":[1,-2]}'])
def test_malformed_embedding_bodies(gateway, body):
    url = gateway(ROUTES)
    response = httpx.post(f"{url}/v1/embeddings", content=body)
    assert response.status_code in (400, 404)
    assert_openai_error(response, response.status_code)


def test_token_inputs_are_embedded(gateway):
    url = gateway(ROUTES)
    for given in ([1, 2, 3], [[1, 2], [3]], ["a", "b"]):
        answer = httpx.post(f"{url}/v1/embeddings", json={"model": "embed", "input": given})
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["data"]) == (1 if isinstance(given[0], int) else 2)


def test_unknown_path_and_wrong_method_are_openai_shaped(gateway):
    url = gateway(ROUTES)
    assert_openai_error(httpx.get(f"{url}/v1/nothing"), 404)
    assert_openai_error(httpx.get(f"{url}/v1/chat/completions"), 405)


def test_health_ready_and_metrics(gateway):
    url = gateway(ROUTES)
    assert httpx.get(f"{url}/health").status_code == 200
    ready = httpx.get(f"{url}/ready")
    assert ready.status_code == 200 and ready.json()["config"]
    httpx.post(f"{url}/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": "x"}]})
    metrics = httpx.get(f"{url}/metrics").text
    assert 'gateway_requests_total{endpoint="chat",route="echo",status="200",target="echo/echo-1"}' in metrics
    assert "gateway_request_duration_seconds_bucket" in metrics
