"""The log of a real `gateway serve` process: one JSON line per request with the fields
operators query, start-up events, levels and formats from the environment, and no
secret in any line, even when an upstream echoes the key it was sent."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import openai
import pytest

from gateway.pipeline.identify import hash_key
from tests.support.configs import ECHO_PROVIDER, openai_provider, write_config
from tests.support.servers import gateway_process

CLIENT_KEY = "client-secret-key-5555-abcdef"
WRONG_CLIENT_KEY = "client-wrong-key-7777-zyxwvu"
SHAPED_PROVIDER_KEY = "sk-proj-LEAKCHECK0123456789abcdef"
PLAIN_PROVIDER_KEY = "plainprovidersecret987654321"  # no known key shape: only masking by value catches it
REQUEST_FIELDS = {"request_id", "key", "route", "target", "attempts", "status", "prompt_tokens",
                  "completion_tokens", "cost_usd", "overhead_ms", "upstream_ms", "cache", "config"}


def config(tmp_path: Path, base: str) -> tuple[Path, Path]:
    return write_config(
        tmp_path,
        {
            # One try per target and a circuit that never opens: every count below is exact.
            "defaults": {"retry": {"attempts": 1}, "circuit": {"failures": 1000}},
            "routes": {
                "good": {"targets": ["up/gpt-test"]},
                "fallback": {"targets": ["up/fail-500", "up/gpt-test"]},
                "leak": {"targets": ["shaped/echo-key-1", "plain/echo-key-2"]},
                "leak-then-ok": {"targets": ["plain/echo-key-3", "up/gpt-test"]},
            },
            "keys": [{"name": "team-logs", "sha256": hash_key(CLIENT_KEY)}],
        },
        {
            "up": openai_provider(base, {"gpt-test": {"input_per_1m": 1.0, "output_per_1m": 2.0}, "fail-500": {}}),
            "shaped": openai_provider(base, ["echo-key-1"], api_key=SHAPED_PROVIDER_KEY),
            "plain": openai_provider(base, ["echo-key-2", "echo-key-3"], api_key=PLAIN_PROVIDER_KEY),
            "echo": ECHO_PROVIDER,
        },
    )


def lines(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def requests_logged(log: Path, count: int, timeout: float = 5) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in lines(log) if line["event"] == "request"]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_one_json_line_per_request_with_the_fields_operators_query(tmp_path, upstream):
    base, _ = upstream
    routes, providers = config(tmp_path, base)
    log = tmp_path / "gateway.observe.log"
    with gateway_process(routes, providers, log=log) as (url, _):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=CLIENT_KEY, max_retries=0)
        answer = client.chat.completions.with_raw_response.create(
            model="fallback", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-request-id": "req-log-1"})
        config_version = answer.headers["x-gateway-config"]
        list(client.chat.completions.create(model="good", messages=[{"role": "user", "content": "a b"}],
                                            stream=True, stream_options={"include_usage": True}))
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="missing", messages=[{"role": "user", "content": "x"}])
        logged = requests_logged(log, 3)
        events = {line["event"] for line in lines(log)}

    assert {"start", "ready"} <= events
    assert len(logged) == 3
    plain, streamed, missing = logged
    assert REQUEST_FIELDS <= set(plain)
    assert plain["request_id"] == "req-log-1"
    assert (plain["key"], plain["route"], plain["target"]) == ("team-logs", "fallback", "up/gpt-test")
    assert plain["attempts"] == 2 and plain["fallbacks"] == 1 and plain["status"] == 200
    assert (plain["prompt_tokens"], plain["completion_tokens"]) == (11, 7)
    assert plain["cost_usd"] == pytest.approx((11 * 1.0 + 7 * 2.0) / 1e6)
    assert plain["config"] == config_version
    assert plain["upstream_ms"] > 0 and plain["overhead_ms"] >= 0 and plain["level"] == "INFO"
    assert streamed["stream"] == "done" and streamed["first_byte_ms"] > 0
    assert streamed["completion_tokens"] > 0 and streamed["attempts"] == 1
    assert missing["status"] == 404 and missing["error"] == "model_not_found" and missing["route"] == ""
    # Bodies are never logged: the user's words appear nowhere.
    assert "a b" not in log.read_text().replace('"a b"', "")


def test_no_provider_or_client_key_reaches_any_log_line(tmp_path, upstream):
    base, fake = upstream
    routes, providers = config(tmp_path, base)
    log = tmp_path / "gateway.observe.log"
    env = {"GATEWAY_LOG_LEVEL": "DEBUG"}
    with gateway_process(routes, providers, env=env, log=log) as (url, _):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=CLIENT_KEY, max_retries=0)
        bodies = []
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(model="leak", messages=[{"role": "user", "content": "x"}])
        bodies.append(failed.value.response.text)
        with pytest.raises(openai.APIStatusError) as failed_stream:
            client.chat.completions.create(model="leak", messages=[{"role": "user", "content": "x"}], stream=True)
        bodies.append(failed_stream.value.response.text)
        ok = client.chat.completions.create(model="leak-then-ok", messages=[{"role": "user", "content": "x"}])
        assert ok.choices[0].message.content
        wrong = httpx.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {WRONG_CLIENT_KEY}"},
                           json={"model": "good", "messages": [{"role": "user", "content": "x"}]})
        bodies.append(wrong.text)
        requests_logged(log, 4)

    # The upstream really was sent the keys and really echoed them back...
    sent = [seen.headers.get("authorization", "") for seen in fake.requests]
    assert f"Bearer {SHAPED_PROVIDER_KEY}" in sent and f"Bearer {PLAIN_PROVIDER_KEY}" in sent
    text = log.read_text()
    assert "[redacted]" in text  # ...and the echo reached the log, masked
    assert any(line.get("failures") for line in lines(log))
    for secret in (SHAPED_PROVIDER_KEY, PLAIN_PROVIDER_KEY, CLIENT_KEY, WRONG_CLIENT_KEY):
        assert secret not in text
        assert secret[:12] not in text
        for body in bodies:
            assert secret not in body


def test_level_and_text_format_come_from_the_environment(tmp_path, upstream):
    base, _ = upstream
    routes, providers = config(tmp_path, base)
    quiet, text_log = tmp_path / "quiet.log", tmp_path / "text.log"
    body = {"model": "good", "messages": [{"role": "user", "content": "x"}]}
    auth = {"authorization": f"Bearer {CLIENT_KEY}"}
    with gateway_process(routes, providers, env={"GATEWAY_LOG_LEVEL": "WARNING"}, log=quiet) as (url, _):
        assert httpx.post(f"{url}/v1/chat/completions", json=body, headers=auth).status_code == 200
        assert httpx.post(f"{url}/v1/chat/completions", json={**body, "model": "leak"}, headers=auth).status_code == 502
        time.sleep(0.3)
    logged = lines(quiet)
    assert all(line["level"] in ("WARNING", "ERROR") for line in logged)
    failed = [line for line in logged if line["event"] == "request"]
    assert [line["status"] for line in failed] == [502]  # a failed request is a warning; a 200 is not shown

    with gateway_process(routes, providers, env={"GATEWAY_LOG_FORMAT": "text"}, log=text_log) as (url, _):
        httpx.post(f"{url}/v1/chat/completions", json=body, headers=auth)
        time.sleep(0.3)
    written = text_log.read_text().splitlines()
    request = [line for line in written if " request " in line]
    assert len(request) == 1
    assert "route=good" in request[0] and "target=up/gpt-test" in request[0] and "status=200" in request[0]
    assert not any(line.startswith("{") for line in written)


def test_the_sink_masks_provider_keys_by_value_and_hides_locals_in_tracebacks():
    """The last line of defence, on its own: even a careless log call cannot leak a key."""
    import io

    from loguru import logger

    from gateway.observe import log

    stream = io.StringIO()
    log.setup(secrets=lambda: [PLAIN_PROVIDER_KEY], stream=stream)
    try:
        log.event("error", f"upstream said: bad key {PLAIN_PROVIDER_KEY}", "ERROR", detail=f"Bearer {CLIENT_KEY}")
        try:
            api_key = SHAPED_PROVIDER_KEY  # noqa: F841 - a local that a verbose traceback would print
            raise RuntimeError("boom")
        except RuntimeError:
            logger.opt(exception=True).error("failed")
    finally:
        log.setup()
    text = stream.getvalue()
    assert "upstream said: bad key [redacted]" in text and "RuntimeError: boom" in text
    for secret in (PLAIN_PROVIDER_KEY, SHAPED_PROVIDER_KEY, CLIENT_KEY):
        assert secret not in text


def test_a_client_that_leaves_before_its_body_arrives_is_a_499_not_a_bug(tmp_path, upstream):
    base, _ = upstream
    routes, providers = config(tmp_path, base)
    log = tmp_path / "gateway.observe.log"
    with gateway_process(routes, providers, log=log) as (url, _):
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
                         b"authorization: Bearer " + CLIENT_KEY.encode() + b"\r\ncontent-length: 500\r\n\r\n{\"model\":")
            time.sleep(0.3)  # the headers and part of the body are in; the rest never comes
        [logged] = requests_logged(log, 1)
        events = [line["event"] for line in lines(log)]
    assert logged["status"] == 499 and logged["error"] == "client_closed_request"
    assert "error" not in events, "a client leaving is not an unhandled error in the gateway"
