"""A client that hangs up before its answer stops the work it asked for (a real process)."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.support.configs import openai_provider, write_config
from tests.support.servers import gateway_process


def _wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_gone_before_the_first_byte_cancels_the_upstream_call(tmp_path, upstream, stream):
    base, fake = upstream
    routes, providers = write_config(
        tmp_path,
        {"routes": {"chat": {"targets": ["up/hang-first", "up/gpt-test"], "retry": {"attempts": 2, "backoff": 0},
                             "timeout": 30}}},
        {"up": openai_provider(base, ["hang-first", "gpt-test"])},
    )
    log = tmp_path / "gateway.log"
    with gateway_process(routes, providers, env={"GATEWAY_LOG_FORMAT": "json"}, log=log) as (url, _):
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/v1/chat/completions", json=body, timeout=httpx.Timeout(5, read=0.6))
        # The upstream saw its caller hang up, and nothing was tried after that.
        assert _wait_for(lambda: fake.closed == ["hang-first"]), fake.closed
        time.sleep(1.0)
        assert fake.models_called() == ["hang-first"]
        metrics = httpx.get(f"{url}/metrics").text
        assert 'status="499"' in metrics
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("event") == "request"]
    assert [r["status"] for r in requests] == [499]
    assert requests[0]["attempts"] == 1
    assert requests[0]["prompt_tokens"] is None  # nothing reported, nothing billed
    # The server logged no error for the cancelled request.
    assert not [line for line in lines if line.get("level") == "ERROR"]


def test_under_another_asgi_server_the_receive_watch_cancels_it_too(gateway, upstream):
    """The in-process server here is plain uvicorn with h11: the gateway's own protocol is
    not there, so the watch on `receive` is what notices the client leaving."""
    base, fake = upstream
    url = gateway(
        {"routes": {"chat": {"targets": ["up/hang-first", "up/gpt-test"], "retry": {"attempts": 2, "backoff": 0},
                             "timeout": 30}}},
        {"up": openai_provider(base, ["hang-first", "gpt-test"])},
    )
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{url}/v1/chat/completions", timeout=httpx.Timeout(5, read=0.6),
                   json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]})
    assert _wait_for(lambda: fake.closed == ["hang-first"]), fake.closed
    time.sleep(1.0)
    assert fake.models_called() == ["hang-first"]
    assert 'status="499"' in httpx.get(f"{url}/metrics").text
