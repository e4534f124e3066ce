"""`provider/model` without a route, pattern routes, the x-gateway-provider headers, and
prices from the catalogue (used, overridden, and unpriced models under a budget)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from gateway.config.presets import presets
from gateway.providers.snapshots import build_snapshot
from gateway.server.app import create_app
from tests.support.any_upstream import AnyUpstream
from tests.support.configs import ECHO_PROVIDER
from tests.support.servers import serve_app

GROQ_MODEL = "llama-3.1-70b-versatile"  # the catalogue prices it at 0.59 / 0.79 USD per 1M tokens
KEYS = {name: f"sk-client-{name}-0001" for name in
        ("routes-only", "direct-all", "direct-groq-8b", "budget", "open", "narrow-tenant", "open-tenant")}


def _sha(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for preset in presets().values():
        for name in (preset.key_env, preset.base_url_env):
            if name:
                monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake() -> Iterator[tuple[str, AnyUpstream]]:
    upstream = AnyUpstream()
    with serve_app(upstream.app()) as url:
        yield url, upstream


def _providers(url: str) -> dict[str, Any]:
    return {
        "providers": {
            "groq": {"preset": "groq", "base_url": f"{url}/openai/v1", "api_key": "gsk-upstream-0001"},
            "together_ai": {"preset": "together_ai", "base_url": f"{url}/together/v1", "api_key": "tgt-upstream-0001"},
            "anthropic": {"preset": "anthropic", "base_url": url, "api_key": "ant-upstream-0001"},
            "echo": ECHO_PROVIDER,
        },
    }


ROUTES: dict[str, Any] = {
    "routes": {
        "echo": {"targets": ["echo/echo-1"]},
        "llama": {"targets": [f"groq/{GROQ_MODEL}", "together_ai/meta-llama/Llama-3-70b-chat-hf"]},
        "claude-*": {"targets": ["anthropic/{match}"]},
        "house-*": {"targets": ["groq/{match}"], "price": {"input_per_1m": 1.0, "output_per_1m": 2.0}},
    },
    "keys": [
        {"name": "routes-only", "sha256": _sha(KEYS["routes-only"]), "routes": ["echo", "llama", "claude-*"]},
        {"name": "direct-all", "sha256": _sha(KEYS["direct-all"]), "routes": ["echo"], "direct": True},
        {"name": "direct-groq-8b", "sha256": _sha(KEYS["direct-groq-8b"]), "direct": ["groq/llama-3.1-8b*"]},
        {"name": "budget", "sha256": _sha(KEYS["budget"]), "direct": ["groq"], "budget": {"usd": 5, "per": "day"}},
        {"name": "open", "sha256": _sha(KEYS["open"])},
        {"name": "narrow-tenant", "sha256": _sha(KEYS["narrow-tenant"]), "tenant": "narrow", "direct": True},
        {"name": "open-tenant", "sha256": _sha(KEYS["open-tenant"]), "tenant": "wide", "direct": True},
    ],
    "tenants": {"narrow": {"routes": ["echo"]}, "wide": {}},
}


@pytest.fixture
def gateway(tmp_path: Path, fake: tuple[str, AnyUpstream]) -> Iterator[str]:
    url, _ = fake
    (tmp_path / "routes.yaml").write_text(yaml.safe_dump(ROUTES, sort_keys=False))
    (tmp_path / "providers.yaml").write_text(yaml.safe_dump(_providers(url), sort_keys=False))
    with serve_app(create_app(str(tmp_path / "routes.yaml"), str(tmp_path / "providers.yaml"))) as base:
        yield base


def _client(gateway: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=KEYS[key], max_retries=0)


def _ask(client: openai.OpenAI, model: str, **extra: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=8, **extra,
    )


def test_a_provider_model_with_no_route_reaches_that_provider_and_model(gateway: str, fake: tuple[str, AnyUpstream]):
    raw = _ask(_client(gateway, "direct-all"), f"groq/{GROQ_MODEL}")
    assert raw.parse().choices[0].message.content == "hello from openai"
    arrival = fake[1].arrivals[-1]
    assert arrival.path == "/openai/v1/chat/completions" and arrival.body["model"] == GROQ_MODEL
    assert arrival.headers["authorization"] == "Bearer gsk-upstream-0001"
    assert raw.headers["x-gateway-route"] == f"groq/{GROQ_MODEL}"
    assert raw.headers["x-gateway-target"] == f"groq/{GROQ_MODEL}"
    assert raw.headers["x-gateway-provider"] == "groq"
    # The catalogue's price: 3 prompt and 2 completion tokens at 0.59 / 0.79 per million.
    assert float(raw.headers["x-gateway-cost-usd"]) == pytest.approx((3 * 0.59 + 2 * 0.79) / 1e6)


def test_a_key_without_direct_is_refused_a_provider_model(gateway: str, fake: tuple[str, AnyUpstream]):
    with pytest.raises(openai.PermissionDeniedError) as caught:
        _ask(_client(gateway, "routes-only"), f"groq/{GROQ_MODEL}")
    assert caught.value.status_code == 403
    # A key that lists no routes may (the default), and a glob allows only what it matches.
    assert _ask(_client(gateway, "open"), f"groq/{GROQ_MODEL}").http_response.status_code == 200
    assert _ask(_client(gateway, "direct-groq-8b"), "groq/llama-3.1-8b-instant").http_response.status_code == 200
    with pytest.raises(openai.PermissionDeniedError):
        _ask(_client(gateway, "direct-groq-8b"), f"groq/{GROQ_MODEL}")
    with pytest.raises(openai.NotFoundError):
        _ask(_client(gateway, "direct-all"), "nosuch/model")
    assert len(fake[1].arrivals) == 2


def test_a_tenant_that_narrows_routes_also_closes_direct_addressing(gateway: str, fake: tuple[str, AnyUpstream]):
    """A key may not widen its tenant: `direct: true` on the key of a tenant limited to some
    routes does not reach a provider/model the tenant never granted."""
    with pytest.raises(openai.PermissionDeniedError):
        _ask(_client(gateway, "narrow-tenant"), f"groq/{GROQ_MODEL}")
    assert _ask(_client(gateway, "narrow-tenant"), "echo").http_response.status_code == 200
    assert _ask(_client(gateway, "open-tenant"), f"groq/{GROQ_MODEL}").http_response.status_code == 200
    assert len(fake[1].arrivals) == 1


def test_a_pattern_route_sends_the_whole_name_to_its_target(gateway: str, fake: tuple[str, AnyUpstream]):
    raw = _ask(_client(gateway, "routes-only"), "claude-sonnet-4-20250514")
    assert raw.parse().choices[0].message.content == "hello from anthropic"
    arrival = fake[1].arrivals[-1]
    assert arrival.path == "/v1/messages" and arrival.body["model"] == "claude-sonnet-4-20250514"
    assert arrival.headers["x-api-key"] == "ant-upstream-0001"
    assert raw.headers["x-gateway-route"] == "claude-sonnet-4-20250514"
    assert raw.headers["x-gateway-provider"] == "anthropic"
    with pytest.raises(openai.NotFoundError):
        _ask(_client(gateway, "routes-only"), "gpt-4o")


def test_the_provider_header_pins_one_provider_of_the_route(gateway: str, fake: tuple[str, AnyUpstream]):
    raw = _ask(_client(gateway, "open"), "llama", extra_headers={"x-gateway-provider": "together_ai"})
    assert raw.headers["x-gateway-provider"] == "together_ai"
    assert fake[1].arrivals[-1].path == "/together/v1/chat/completions"
    assert _ask(_client(gateway, "open"), "llama").headers["x-gateway-provider"] == "groq"  # the route's order
    with pytest.raises(openai.BadRequestError) as caught:
        _ask(_client(gateway, "open"), "llama", extra_headers={"x-gateway-provider": "anthropic"})
    assert caught.value.code == "provider_not_in_route"
    with pytest.raises(openai.PermissionDeniedError) as denied:
        _ask(_client(gateway, "routes-only"), "llama", extra_headers={"x-gateway-provider": "together_ai"})
    assert denied.value.code == "provider_not_allowed"


def test_a_key_with_a_budget_is_refused_unpriced_models_unless_the_route_prices_them(
    gateway: str, fake: tuple[str, AnyUpstream]
):
    budget = _client(gateway, "budget")
    with pytest.raises(openai.PermissionDeniedError) as caught:
        _ask(budget, "groq/house-model-not-in-any-catalogue")
    assert caught.value.code == "unpriced_model"
    assert _ask(budget, f"groq/{GROQ_MODEL}").http_response.status_code == 200  # priced by the catalogue
    # The same unknown model through a route with a price: served, at that price.
    raw = _ask(_client(gateway, "open"), "house-model-not-in-any-catalogue")
    assert float(raw.headers["x-gateway-cost-usd"]) == pytest.approx((3 * 1.0 + 2 * 2.0) / 1e6)


def test_an_unpriced_model_is_served_and_counted_as_unpriced(gateway: str, fake: tuple[str, AnyUpstream]):
    raw = _ask(_client(gateway, "open"), "groq/house-model-not-in-any-catalogue")
    assert raw.http_response.status_code == 200
    metrics = httpx.get(f"{gateway}/metrics").text
    line = 'gateway_unpriced_requests_total{route="groq/house-model-not-in-any-catalogue",' \
           'target="groq/house-model-not-in-any-catalogue"} 1.0'
    assert line in metrics


def test_catalogue_prices_are_used_and_yaml_prices_override_them(tmp_path: Path):
    providers = {"providers": {"groq": {
        "preset": "groq", "api_key": "gsk-0001",
        "models": {GROQ_MODEL: {}, "llama-3.1-8b-instant": {"input_per_1m": 1.5, "output_per_1m": 2.5}, "mystery": {}},
    }}}
    (tmp_path / "routes.yaml").write_text(yaml.safe_dump({"routes": {"a": {"targets": [f"groq/{GROQ_MODEL}"]}}}))
    (tmp_path / "providers.yaml").write_text(yaml.safe_dump(providers))
    snapshot = build_snapshot(tmp_path / "routes.yaml", tmp_path / "providers.yaml")
    listed = snapshot.targets[f"groq/{GROQ_MODEL}"].price
    assert (listed.input_per_1m, listed.output_per_1m, listed.known) == (0.59, 0.79, True)
    given = snapshot.targets["groq/llama-3.1-8b-instant"].price
    assert (given.input_per_1m, given.output_per_1m, given.known) == (1.5, 2.5, True)
    assert snapshot.targets["groq/mystery"].price.known is False


_CATALOGUE_PROBE = """
import json, sys
from gateway.providers.snapshots import build_snapshot
snapshot = build_snapshot(sys.argv[1], sys.argv[2])
print(json.dumps({"loaded": "genai_prices" in sys.modules,
                  "windows": {k: t.context_window for k, t in snapshot.targets.items()}}))
"""


def _probe_catalogue(tmp_path: Path, models: dict) -> dict:
    """Build a config's snapshot in a fresh interpreter: whether the catalogue was loaded, and the windows."""
    import json
    import subprocess
    import sys

    tmp_path.mkdir()
    (tmp_path / "routes.yaml").write_text(yaml.safe_dump({"routes": {"a": {"targets": ["openai/gpt-4o-mini"]}}}))
    (tmp_path / "providers.yaml").write_text(yaml.safe_dump({"providers": {
        "openai": {"api": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-0001", "models": models}}}))
    done = subprocess.run([sys.executable, "-c", _CATALOGUE_PROBE, str(tmp_path / "routes.yaml"),
                           str(tmp_path / "providers.yaml")], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def test_the_catalogue_is_read_only_for_what_yaml_leaves_out(tmp_path: Path):
    from gateway.config.prices import listed

    complete = {"gpt-4o-mini": {"input_per_1m": 1.0, "output_per_1m": 2.0, "context_window": 5000}}
    assert _probe_catalogue(tmp_path / "complete", complete) == {"loaded": False, "windows": {"openai/gpt-4o-mini": 5000}}
    # A price without a window: the window is the catalogue's, so the catalogue is read.
    catalogue_window = listed("openai", "gpt-4o-mini").context_window
    assert catalogue_window
    priced_only = {"gpt-4o-mini": {"input_per_1m": 1.0, "output_per_1m": 2.0}}
    assert _probe_catalogue(tmp_path / "priced", priced_only) == {
        "loaded": True, "windows": {"openai/gpt-4o-mini": catalogue_window}}


def test_the_key_of_a_provider_serving_any_model_never_reaches_a_log_line_or_an_answer(tmp_path: Path, upstream):
    """Its targets are made on demand, so its key is not among the config's targets: it must still be masked."""
    import time

    from tests.support.servers import gateway_process

    base, fake_openai = upstream
    secret = "plainpresetsecret5550001"  # no known key shape: only masking by value catches it
    (tmp_path / "routes.yaml").write_text(yaml.safe_dump({"routes": {"echo": {"targets": ["echo/echo-1"]}}}))
    (tmp_path / "providers.yaml").write_text(yaml.safe_dump({"providers": {
        "groq": {"preset": "groq", "base_url": f"{base}/v1", "api_key": secret}, "echo": ECHO_PROVIDER,
    }}))
    log = tmp_path / "gateway.log"
    with gateway_process(tmp_path / "routes.yaml", tmp_path / "providers.yaml", log=log,
                         env={"GATEWAY_LOG_LEVEL": "DEBUG"}) as (url, _):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(model="groq/echo-key-1", messages=[{"role": "user", "content": "x"}])
        deadline = time.monotonic() + 5
        while '"event":"request"' not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert f"Bearer {secret}" in fake_openai.requests[-1].headers["authorization"]  # it was sent, and echoed back
    text = log.read_text()
    assert '"event":"request"' in text and "[redacted]" in text
    assert secret not in text and secret not in failed.value.response.text


def test_the_log_sink_masks_the_keys_of_providers_that_list_no_models(tmp_path: Path):
    from gateway.observe.log import provider_secrets

    secret = "plainpresetsecret5550002"
    (tmp_path / "routes.yaml").write_text(yaml.safe_dump({"routes": {"echo": {"targets": ["echo/echo-1"]}}}))
    (tmp_path / "providers.yaml").write_text(yaml.safe_dump({"providers": {
        "groq": {"preset": "groq", "api_key": secret}, "echo": ECHO_PROVIDER,
    }}))
    snapshot = build_snapshot(tmp_path / "routes.yaml", tmp_path / "providers.yaml")
    assert not any(t.api_key == secret for t in snapshot.targets.values())  # no target of it exists yet
    assert secret in provider_secrets(lambda: snapshot)()


def test_an_anthropic_client_names_an_anthropic_model_directly_and_gets_its_native_answer(
    gateway: str, fake: tuple[str, AnyUpstream]
):
    answer = httpx.post(f"{gateway}/v1/messages", headers={"x-api-key": KEYS["open"]}, json={
        "model": "anthropic/claude-sonnet-4-20250514", "max_tokens": 16,
        "top_k": 5,  # a field only Anthropic's own API carries
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "hi"},
            # A block only an Anthropic target can take: the body must go as it is.
            {"type": "search_result", "source": "https://example.com/a", "title": "A",
             "content": [{"type": "text", "text": "notes"}]},
        ]}],
    })
    assert answer.status_code == 200, answer.text
    assert answer.json()["content"][0]["text"] == "hello from anthropic"
    sent = fake[1].arrivals[-1]
    assert sent.path == "/v1/messages" and sent.body["top_k"] == 5 and sent.body["model"] == "claude-sonnet-4-20250514"
    assert answer.headers["x-gateway-provider"] == "anthropic"
