"""The end user and plan of a request reach its trace span; metrics name users only when
`metrics.per_user_labels` asks for it (user ids are unbounded labels)."""

from __future__ import annotations

import time

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.observe import tracing

APP_KEY = "sk-app-key-for-user-telemetry-0001"
MESSAGES = [{"role": "user", "content": "hi"}]


def config(per_user_labels: bool) -> dict:
    return {
        "routes": {"chat": {"targets": ["echo/echo-1"]}},
        "plans": {"free": {"limits": {"rpm": 1}}},
        "keys": [{"name": "app", "key": APP_KEY, "plan": "free", "per_user": True}],
        "metrics": {"per_user_labels": per_user_labels},
    }


def ask(url: str, user: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {APP_KEY}",
                                                             "x-gateway-user": user},
                      json={"model": "chat", "messages": MESSAGES}, timeout=10)


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing.enable(SimpleSpanProcessor(exporter))
    try:
        yield exporter
    finally:
        tracing.shutdown()


def test_the_request_span_names_the_user_and_plan(gateway, spans):
    url = gateway(config(False))
    assert ask(url, "ursula").status_code == 200
    deadline = time.monotonic() + 5
    while not spans.get_finished_spans() and time.monotonic() < deadline:
        time.sleep(0.02)
    attributes = [dict(s.attributes) for s in spans.get_finished_spans() if "gateway.route" in s.attributes]
    assert any(a.get("gateway.user") == "ursula" and a.get("gateway.plan") == "free" for a in attributes)


@pytest.mark.parametrize("labelled", [False, True])
def test_user_labels_on_limit_metrics_are_opt_in(gateway, labelled):
    url = gateway(config(labelled))
    assert ask(url, "victor").status_code == 200
    assert ask(url, "victor").status_code == 429
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    refusals = [line for line in metrics.splitlines() if line.startswith("gateway_limit_rejections_total{")]
    assert any('scope="user"' in line for line in refusals)
    assert ("victor" in metrics) is labelled
