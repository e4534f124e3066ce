"""/v1/messages requests end in the same log line as chat requests, a cut stream included."""

from __future__ import annotations

import json
import time
from pathlib import Path

import anthropic
import pytest

from tests.support.configs import openai_provider, write_config
from tests.support.servers import gateway_process


def request_lines(log: Path, count: int, timeout: float = 5) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        found = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        found = [line for line in found if line.get("event") == "request"]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_messages_are_logged_with_route_tokens_and_how_the_stream_ended(tmp_path, upstream):
    base, _ = upstream
    routes, providers = write_config(
        tmp_path,
        {"defaults": {"retry": {"attempts": 1}}, "routes": {"good": {"targets": ["up/m1"]}, "cut": {"targets": ["up/cut"]}}},
        {"up": openai_provider(base, ["m1", "cut"])},
    )
    log = tmp_path / "gateway.observe.log"
    with gateway_process(routes, providers, log=log) as (url, _):
        client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
        with client.messages.stream(model="good", max_tokens=32, messages=[{"role": "user", "content": "a b"}]) as stream:
            stream.until_done()
        with pytest.raises(anthropic.APIStatusError):
            with client.messages.stream(model="cut", max_tokens=32, messages=[{"role": "user", "content": "a b c d e"}]) as stream:
                stream.until_done()
        done, cut = request_lines(log, 2)
    assert (done["route"], done["target"], done["status"]) == ("good", "up/m1", 200)
    assert done["stream"] == "done" and done["prompt_tokens"] == 11 and done["completion_tokens"] > 0
    assert (cut["route"], cut["stream"]) == ("cut", "error")
