"""OpenTelemetry traces: a span per request continuing the client's W3C trace, a child
span per upstream call, `traceparent` forwarded upstream; nothing at all when off."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gateway.observe import tracing
from tests.support.configs import ECHO_PROVIDER, openai_provider
from tests.support.servers import ROOT

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing.enable(SimpleSpanProcessor(exporter))
    try:
        yield exporter
    finally:
        tracing.shutdown()


@pytest.fixture
def traced(gateway, upstream, spans):
    base, fake = upstream
    url = gateway(
        {
            "defaults": {"retry": {"attempts": 1}, "circuit": {"failures": 1000}},
            "routes": {"t-chat": {"targets": ["up/fail-500", "up/gpt-test"]}, "t-slow": {"targets": ["up/slow-1"]}},
        },
        {"up": openai_provider(base, ["fail-500", "gpt-test", "slow-1"]), "echo": ECHO_PROVIDER},
    )
    return url, fake, spans


def finished(exporter: InMemorySpanExporter, count: int, timeout: float = 5) -> list:
    deadline = time.monotonic() + timeout
    while len(exporter.get_finished_spans()) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return list(exporter.get_finished_spans())


def test_request_span_continues_the_client_trace_with_a_child_per_attempt(traced):
    url, fake, exporter = traced
    response = httpx.post(f"{url}/v1/chat/completions", headers={"traceparent": TRACEPARENT},
                          json={"model": "t-chat", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    spans = finished(exporter, 3)
    request = next(s for s in spans if s.kind == SpanKind.SERVER)
    attempts = sorted((s for s in spans if s.kind == SpanKind.CLIENT), key=lambda s: s.start_time)

    assert format(request.context.trace_id, "032x") == TRACE_ID
    assert format(request.parent.span_id, "016x") == CLIENT_SPAN
    assert request.name == "chat t-chat"
    attributes = dict(request.attributes)
    assert attributes["gateway.route"] == "t-chat" and attributes["gateway.target"] == "up/gpt-test"
    assert attributes["http.response.status_code"] == 200 and attributes["gateway.attempts"] == 2
    assert attributes["gen_ai.usage.input_tokens"] == 11 and attributes["gen_ai.usage.output_tokens"] == 7

    assert [s.attributes["gateway.target"] for s in attempts] == ["up/fail-500", "up/gpt-test"]
    for span in attempts:
        assert span.parent.span_id == request.context.span_id
        assert span.context.trace_id == request.context.trace_id
        assert span.attributes["gateway.route"] == "t-chat"
    failed, answered = attempts
    assert failed.attributes["gateway.outcome"] == "server_error"
    assert failed.attributes["http.response.status_code"] == 500
    assert failed.status.status_code == StatusCode.ERROR
    assert answered.attributes["gateway.outcome"] == "ok"
    assert answered.attributes["gen_ai.usage.input_tokens"] == 11
    assert answered.attributes["gen_ai.usage.output_tokens"] == 7

    # Each upstream call carried the traceparent of its own attempt span.
    sent = [seen.headers.get("traceparent") for seen in fake.requests]
    assert sent == [f"00-{TRACE_ID}-{format(s.context.span_id, '016x')}-01" for s in attempts]


def test_a_stream_span_ends_with_the_stream_and_carries_its_usage(traced):
    url, _, exporter = traced
    with httpx.stream("POST", f"{url}/v1/chat/completions",
                      json={"model": "t-slow", "stream": True, "stream_options": {"include_usage": True},
                            "messages": [{"role": "user", "content": "one two"}]}) as response:
        body = response.read().decode()
    assert "data: [DONE]" in body
    spans = finished(exporter, 2)
    request = next(s for s in spans if s.kind == SpanKind.SERVER)
    (answered,) = [s for s in spans if s.kind == SpanKind.CLIENT]
    assert request.parent is None  # no traceparent sent: a new trace
    assert request.attributes["gateway.stream"] == "done"
    assert request.attributes["gen_ai.usage.output_tokens"] == 4
    # The upstream paused 0.3 s between chunks: the attempt span covers the whole stream,
    # not just its first chunk, and ends inside the request span.
    assert (answered.end_time - answered.start_time) / 1e9 >= 0.6
    assert answered.end_time <= request.end_time
    assert answered.attributes["gen_ai.usage.output_tokens"] == 4


def test_failed_request_span_is_an_error(traced):
    url, _, exporter = traced
    response = httpx.post(f"{url}/v1/chat/completions", json={"model": "nope", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 404
    (span,) = finished(exporter, 1)
    assert span.attributes["http.response.status_code"] == 404
    assert "gateway.route" not in span.attributes  # unknown alias: never a client-chosen value


def test_tracing_off_imports_nothing_from_opentelemetry(tmp_path):
    """With no OTLP endpoint set, serving requests loads no OpenTelemetry module at all."""
    script = textwrap.dedent(f"""
        import asyncio, os, sys
        os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        import httpx, yaml
        open({str(tmp_path / 'routes.yaml')!r}, "w").write(yaml.safe_dump({{"routes": {{"echo": {{"targets": ["echo/echo-1"]}}}}}}))
        open({str(tmp_path / 'providers.yaml')!r}, "w").write(yaml.safe_dump({{"providers": {{"echo": {ECHO_PROVIDER!r}}}}}))
        from gateway.server.app import create_app
        app = create_app({str(tmp_path / 'routes.yaml')!r}, {str(tmp_path / 'providers.yaml')!r})

        async def main():
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
                for stream in (False, True):
                    r = await client.post("/v1/chat/completions", headers={{"traceparent": {TRACEPARENT!r}}},
                        json={{"model": "echo", "stream": stream, "messages": [{{"role": "user", "content": "x"}}]}})
                    assert r.status_code == 200, r.text
        asyncio.run(main())
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
