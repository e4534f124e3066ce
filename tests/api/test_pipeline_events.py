"""The typed event stream under every API: how a stream ends is decided once, and that
decision is what metering, the cache and the circuit act on.

Part runs the pipeline itself (`complete`) against a real local upstream and reads the
events it yields; part goes through the official SDKs against the app.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import anthropic
import openai
import pytest

from gateway.observe.exchange import Exchange
from gateway.pipeline.admit import windows_now
from gateway.pipeline.complete import complete
from gateway.pipeline.request import chat_request
from gateway.pipeline.runtime import Runtime
from gateway.providers.events import COMPLETE, CUT, End, Frame, TextDelta, Usage
from gateway.providers.snapshots import build_snapshot
from tests.support.anthropic_upstream import AnthropicUpstream
from tests.support.configs import openai_provider, write_config
from tests.support.servers import serve_app

ASK = [{"role": "user", "content": "tell me about events"}]


@pytest.fixture
async def pipeline(tmp_path: Path, upstream):
    """A runtime on a real upstream, as the app holds it, without the HTTP layer in between."""
    base, fake = upstream
    routes = {
        "defaults": {"retry": {"attempts": 1}},
        "routes": {"cached": {"targets": ["up/gpt-x"], "cache": {"ttl": 60}},
                   "cut": {"targets": ["up/cut-x"], "cache": {"ttl": 60}}},
        "keys": [{"name": "team", "sha256": hashlib.sha256(b"sk-team-events-1").hexdigest()}],
    }
    routes_path, providers_path = write_config(tmp_path, routes, {"up": openai_provider(base, ["gpt-x", "cut-x"])})
    snapshot = build_snapshot(routes_path, providers_path)
    runtime = Runtime(snapshot, str(routes_path), str(providers_path))
    await runtime.upstream.start()
    key = next(iter(snapshot.keys.values()))
    yield runtime, key, fake
    await runtime.upstream.close()


async def run(runtime: Runtime, key, alias: str, **body) -> tuple[list, Exchange]:
    """Every event of a streamed request, as the pipeline hands them to a front-end."""
    exchange = Exchange("r", time.perf_counter(), "chat")
    request = chat_request("test-api", {"model": alias, "messages": ASK, "stream": True, **body})
    done = await complete(runtime, runtime.snapshot, key, request, exchange)
    assert done.outcome.stream is not None
    events = [event async for event in done.outcome.stream.events]
    return events, exchange


async def usage_totals(runtime: Runtime, route: str) -> dict[str, float]:
    await runtime.store.flush()
    rows = await runtime.store.usage(windows_now()[0])
    return next(row.counts for row in rows if row.route == route)


async def test_a_cut_upstream_stream_ends_in_one_cut_event_and_is_neither_cached_nor_billed_whole(pipeline):
    runtime, key, fake = pipeline
    events, exchange = await run(runtime, key, "cut")
    ends = [e for e in events if isinstance(e, End)]
    assert len(ends) == 1 and events[-1] is ends[0]
    assert ends[0].status == CUT and ends[0].error["code"] == "stream_interrupted"
    assert exchange.stream_end == "error"
    sent = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert sent and "Upstream cut-x: tell me about events".startswith(sent) and len(sent) < 36  # a part only
    # No usage came: what is billed is the estimate of what was sent, not a whole answer.
    totals = await usage_totals(runtime, "cut")
    assert totals["completion_tokens"] == -(-len(sent) // 4)  # about 4 characters a token
    await run(runtime, key, "cut")
    assert len(fake.requests) == 2  # never served from the cache


async def test_the_usage_of_the_final_event_is_what_is_billed(pipeline):
    runtime, key, fake = pipeline
    events, exchange = await run(runtime, key, "cached", stream_options={"include_usage": True})
    usages = [e.usage for e in events if isinstance(e, Usage)]
    assert len(usages) == 1 and events[-1] == End(COMPLETE)
    reported = (usages[0]["prompt_tokens"], usages[0]["completion_tokens"])
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert reported[1] != -(-len(text) // 4)  # so the figures below cannot be an estimate
    totals = await usage_totals(runtime, "cached")
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == reported
    assert (exchange.prompt_tokens, exchange.completion_tokens) == reported


async def test_an_openai_wire_stream_carries_the_upstreams_own_frames_for_an_openai_client(pipeline):
    runtime, key, _ = pipeline
    exchange = Exchange("r", time.perf_counter(), "chat")
    request = chat_request("openai", {"model": "cached", "messages": ASK, "stream": True})
    done = await complete(runtime, runtime.snapshot, key, request, exchange)
    assert done.outcome.stream.wire == "openai"
    events = [event async for event in done.outcome.stream.events]
    frames = [e.data for e in events if isinstance(e, Frame)]
    assert frames and all(f.startswith(b"data: {") and f.endswith(b"\n\n") for f in frames)
    assert any(isinstance(e, TextDelta) for e in events)  # and the typed events for everyone else


@pytest.fixture
def anthropic_native(gateway, store_home):
    fake = AnthropicUpstream()
    with serve_app(fake.app()) as base:
        providers = {"ant": {"api": "anthropic", "base_url": base, "api_key": "sk-ant-test-provider-1",
                             "models": {"m": {}, "cut": {}}}}
        routes = {"defaults": {"retry": {"attempts": 1}},
                  "routes": {"claude": {"targets": ["ant/m"], "cache": {"ttl": 60}},
                             "claude-cut": {"targets": ["ant/cut"], "cache": {"ttl": 60}}},
                  "store": store_home}
        url = gateway(routes, providers)
        yield anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0), fake


def test_an_anthropic_native_stream_on_a_caching_route_is_served_from_the_cache(anthropic_native):
    client, fake = anthropic_native
    ask = {"model": "claude", "max_tokens": 50, "messages": [{"role": "user", "content": "cache my stream"}]}
    with client.messages.stream(**ask) as first:
        first_text = first.get_final_text()
        first_message = first.get_final_message()
    with client.messages.stream(**ask) as again:
        assert again.get_final_text() == first_text
        assert again.get_final_message().stop_reason == first_message.stop_reason
    assert len(fake.requests) == 1  # the second stream came from the cache
    plain = client.messages.with_raw_response.create(**ask)
    assert plain.headers["x-gateway-cache"] == "hit"
    assert plain.parse().content[0].text == first_text
    assert len(fake.requests) == 1


def test_a_cut_anthropic_native_stream_is_never_cached(anthropic_native):
    client, fake = anthropic_native
    ask = {"model": "claude-cut", "max_tokens": 50, "messages": [{"role": "user", "content": "cut me off"}]}
    for _ in range(2):
        with pytest.raises(anthropic.APIError):
            with client.messages.stream(**ask) as stream:
                stream.get_final_text()
    assert len(fake.requests) == 2


def test_an_openai_client_stream_keeps_the_upstreams_own_chunks(gateway, upstream):
    """The pass-through writes the provider's chunks as they came (their ids are the upstream's)."""
    base, _ = upstream
    url = gateway({"routes": {"plain": {"targets": ["up/gpt-x"]}}}, {"up": openai_provider(base, ["gpt-x"])})
    c = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    chunks = list(c.chat.completions.create(model="plain", messages=ASK, stream=True))
    assert chunks and all(ch.id.startswith("chatcmpl-upstream") for ch in chunks)
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "Upstream gpt-x: tell me about events"
