"""A real `gateway serve` process, as operators run it, driven by the official SDK."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai
import pytest
from starlette.testclient import TestClient

from tests.support.configs import openai_provider, write_config
from tests.support.servers import ROOT, gateway_process


@pytest.fixture(scope="module")
def shipped_gateway():
    """The shipped routes.yaml/providers.yaml, exactly as `make run` serves them."""
    with gateway_process(ROOT / "routes.yaml", ROOT / "providers.yaml") as (url, _):
        yield url


def test_shipped_config_answers_with_echo(shipped_gateway):
    client = openai.OpenAI(base_url=f"{shipped_gateway}/v1", api_key="x", max_retries=0)
    answer = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "from a process"}])
    assert answer.choices[0].message.content == "Echo: from a process"
    chunks = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "streamed too"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: streamed too"
    assert {m.id for m in client.models.list()} >= {"echo", "embed"}
    assert len(client.embeddings.create(model="embed", input="x").data[0].embedding) == 16


async def test_async_client_against_a_process_with_an_upstream(tmp_path, upstream):
    base, fake = upstream
    routes, providers = write_config(
        tmp_path, {"routes": {"chat": {"targets": ["up/fail-500", "up/gpt-test"], "retry": {"attempts": 1}}}},
        {"up": openai_provider(base, ["fail-500", "gpt-test"])},
    )
    with gateway_process(routes, providers) as (url, _):
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as client:
            answer = await client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
            assert answer.choices[0].message.content == "Upstream gpt-test: hi"
            stream = await client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
            )
            chunks = [c async for c in stream]
            assert chunks[-1].usage.total_tokens == 14
    assert fake.models_called() == ["fail-500", "gpt-test", "fail-500", "gpt-test"]


def test_serve_refuses_to_start_on_a_broken_config(tmp_path):
    import subprocess
    import sys

    (tmp_path / "routes.yaml").write_text("routes:\n  a:\n    targets: [ghost/m]\n")
    (tmp_path / "providers.yaml").write_text("providers:\n  echo: {api: echo, models: {e: {}}}\n")
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--routes", str(tmp_path / "routes.yaml"),
         "--providers", str(tmp_path / "providers.yaml"), "--port", "1"],
        capture_output=True, text=True, cwd=ROOT, timeout=30,
    )
    assert result.returncode == 2
    assert "routes.yaml:3:15: unknown provider 'ghost'" in result.stderr


def _young_collections(base: str) -> float:
    text = httpx.get(f"{base}/metrics").text
    line = next(line for line in text.splitlines() if line.startswith('python_gc_collections_total{generation="0"}'))
    return float(line.split()[-1])


async def test_a_served_gateway_collects_garbage_rarely(shipped_gateway):
    """`gateway serve` freezes what start-up made and spaces young collections out
    (gateway/server/collector.py). At CPython's default, these 1,200 concurrent requests
    cost about ten young collections, each walking the objects of every request in flight."""
    before = _young_collections(shipped_gateway)
    async with openai.AsyncOpenAI(base_url=f"{shipped_gateway}/v1", api_key="x", max_retries=0) as client:

        async def caller(who: int) -> None:
            for n in range(60):
                answer = await client.chat.completions.create(
                    model="echo", messages=[{"role": "user", "content": f"{who}-{n}"}])
                assert answer.choices[0].message.content == f"Echo: {who}-{n}"

        await asyncio.gather(*(caller(who) for who in range(20)))
    assert _young_collections(shipped_gateway) - before <= 2


def test_an_embedded_app_leaves_its_hosts_collector_alone():
    """An app built in another program (here the test process) does not retune its collector."""
    import gc

    from gateway.server.app import create_app

    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    app = create_app(str(ROOT / "routes.yaml"), str(ROOT / "providers.yaml"))
    with TestClient(app) as local:
        assert local.get("/health").status_code == 200
    assert gc.get_threshold() == thresholds and gc.get_freeze_count() == frozen


def test_request_lines_reach_the_log_while_the_gateway_runs(tmp_path):
    """Lines are gathered for a few milliseconds (log.GATHER_SECONDS), not held until the
    buffer fills or the process exits: a request's line is in the log right after its answer."""
    log = tmp_path / "gateway.log"
    with gateway_process(ROOT / "routes.yaml", ROOT / "providers.yaml", log=log) as (url, _):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}])
        deadline = time.monotonic() + 2
        lines: list[dict[str, object]] = []
        while time.monotonic() < deadline and not lines:
            lines = [line for line in map(_json_line, log.read_text().splitlines())
                     if line.get("event") == "request" and line.get("endpoint") == "chat"]
            time.sleep(0.02)
        assert lines and lines[0]["status"] == 200


def _json_line(text: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
