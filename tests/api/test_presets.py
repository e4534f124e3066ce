"""Built-in presets: each preset's request reaches the right path with the right auth
header, `auto_presets` enables exactly the presets whose variables are set, and `.env`
never overrides the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from gateway.config.presets import presets
from gateway.providers.snapshots import build_snapshot
from gateway.server.app import create_app
from gateway.server.cli import load_env_file
from tests.support.any_upstream import AnyUpstream
from tests.support.configs import ECHO_PROVIDER
from tests.support.servers import ROOT, serve_app

ECHO_ROUTES: dict[str, Any] = {"routes": {"echo": {"targets": ["echo/echo-1"]}}}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No preset variable of the machine running the tests leaks into them."""
    for preset in presets().values():
        for name in (preset.key_env, preset.base_url_env):
            if name:
                monkeypatch.delenv(name, raising=False)


@pytest.fixture
def any_upstream() -> Iterator[tuple[str, AnyUpstream]]:
    fake = AnyUpstream()
    with serve_app(fake.app()) as url:
        yield url, fake


def write(directory: Path, routes: dict[str, Any], providers: dict[str, Any]) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "routes.yaml").write_text(yaml.safe_dump(routes, sort_keys=False))
    (directory / "providers.yaml").write_text(yaml.safe_dump(providers, sort_keys=False))
    return directory / "routes.yaml", directory / "providers.yaml"


# One row per preset: the endpoint root it ships with, the model a client names, the path
# the request must reach, and the header that must carry the key.
ROWS = [
    ("openai", "https://api.openai.com/v1", "gpt-4o-mini", "/v1/chat/completions", "authorization", "Bearer {}"),
    ("anthropic", "https://api.anthropic.com", "claude-sonnet-4-20250514", "/v1/messages", "x-api-key", "{}"),
    ("gemini", "https://generativelanguage.googleapis.com", "gemini-2.0-flash",
     "/v1beta/models/gemini-2.0-flash:generateContent", "x-goog-api-key", "{}"),
    ("groq", "https://api.groq.com/openai/v1", "llama-3.1-70b-versatile", "/openai/v1/chat/completions", "authorization", "Bearer {}"),
    ("together_ai", "https://api.together.xyz/v1", "meta-llama/Llama-3-70b-chat-hf", "/v1/chat/completions", "authorization", "Bearer {}"),
    ("mistral", "https://api.mistral.ai/v1", "mistral-large-latest", "/v1/chat/completions", "authorization", "Bearer {}"),
    ("deepseek", "https://api.deepseek.com/v1", "deepseek-chat", "/v1/chat/completions", "authorization", "Bearer {}"),
    ("openrouter", "https://openrouter.ai/api/v1", "anthropic/claude-3.5-sonnet", "/api/v1/chat/completions", "authorization", "Bearer {}"),
    ("fireworks_ai", "https://api.fireworks.ai/inference/v1", "accounts/fireworks/models/llama-v3p1-70b-instruct",
     "/inference/v1/chat/completions", "authorization", "Bearer {}"),
    ("xai", "https://api.x.ai/v1", "grok-2-latest", "/v1/chat/completions", "authorization", "Bearer {}"),
    ("perplexity", "https://api.perplexity.ai", "sonar", "/chat/completions", "authorization", "Bearer {}"),
    ("cohere", "https://api.cohere.com", "command-r-plus", "/v2/chat", "authorization", "Bearer {}"),
]
# Local servers: the base-URL variable points the preset at the server; no key is needed.
LOCAL_ROWS = [
    ("ollama", "OLLAMA_BASE_URL", "", "llama3.1", "/api/chat"),
    ("vllm", "VLLM_BASE_URL", "/v1", "meta-llama/Llama-3.1-8B-Instruct", "/v1/chat/completions"),
    ("llama_cpp", "LLAMA_CPP_BASE_URL", "/v1", "default", "/v1/chat/completions"),
    ("lm_studio", "LM_STUDIO_BASE_URL", "/v1", "qwen2.5-7b-instruct", "/v1/chat/completions"),
]
KEY_ENV = {
    "openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY", "groq": "GROQ_API_KEY",
    "together_ai": "TOGETHER_API_KEY", "mistral": "MISTRAL_API_KEY", "deepseek": "DEEPSEEK_API_KEY",
    "openrouter": "OPENROUTER_API_KEY", "fireworks_ai": "FIREWORKS_API_KEY", "xai": "XAI_API_KEY",
    "perplexity": "PERPLEXITYAI_API_KEY", "cohere": "COHERE_API_KEY",
}


CLOUDS = {"bedrock", "vertex_ai"}  # signed requests: their rows are in test_bedrock.py and test_vertex.py


def test_every_preset_has_a_row():
    assert {r[0] for r in ROWS} | {r[0] for r in LOCAL_ROWS} | CLOUDS == set(presets())


@pytest.mark.parametrize(("preset", "root", "model", "path", "header", "value"), ROWS, ids=[r[0] for r in ROWS])
def test_a_preset_reaches_its_path_with_its_key_header(
    preset: str, root: str, model: str, path: str, header: str, value: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, any_upstream: tuple[str, AnyUpstream],
) -> None:
    secret = f"sk-{preset}-secret-0001"
    monkeypatch.setenv(KEY_ENV[preset], secret)
    # As shipped: `{preset: X}` alone gives the vendor's endpoint root and reads its key variable.
    shipped = write(tmp_path / "shipped", ECHO_ROUTES, {"providers": {preset: {"preset": preset}, "echo": ECHO_PROVIDER}})
    snapshot = build_snapshot(*shipped)
    target = snapshot.find_target(f"{preset}/{model}")
    assert target is not None and target.base_url == root and target.api_key == secret

    # Against the mock: only the host is replaced, so the path is the preset's own.
    url, fake = any_upstream
    root_path = root.split("://", 1)[1].partition("/")[2]
    mocked = {"preset": preset, "base_url": f"{url}/{root_path}".rstrip("/")}
    routes, providers = write(tmp_path / "mock", ECHO_ROUTES, {"providers": {preset: mocked, "echo": ECHO_PROVIDER}})
    with serve_app(create_app(str(routes), str(providers))) as gateway:
        client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model=f"{preset}/{model}", messages=[{"role": "user", "content": "hi"}], max_tokens=16,
        )
    answer = raw.parse()
    assert answer.choices[0].message.content.startswith("hello from")
    assert raw.headers["x-gateway-provider"] == preset
    assert raw.headers["x-gateway-route"] == f"{preset}/{model}"
    arrival = fake.arrivals[-1]
    assert arrival.path == path
    assert arrival.headers[header] == value.format(secret)


@pytest.mark.parametrize(("preset", "variable", "suffix", "model", "path"), LOCAL_ROWS, ids=[r[0] for r in LOCAL_ROWS])
def test_a_local_server_preset_follows_its_base_url_variable(
    preset: str, variable: str, suffix: str, model: str, path: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, any_upstream: tuple[str, AnyUpstream],
) -> None:
    url, fake = any_upstream
    monkeypatch.setenv(variable, url + suffix)
    routes, providers = write(tmp_path, ECHO_ROUTES, {"auto_presets": True, "providers": {"echo": ECHO_PROVIDER}})
    with serve_app(create_app(str(routes), str(providers))) as gateway:
        client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0)
        answer = client.chat.completions.create(model=f"{preset}/{model}", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content.startswith("hello from")
    assert fake.arrivals[-1].path == path
    assert "authorization" not in fake.arrivals[-1].headers  # no key variable set: none sent


def test_auto_presets_enables_exactly_the_presets_whose_variables_are_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GROQ_API_KEY", "gsk-test-0001")
    monkeypatch.setenv("MISTRAL_API_KEY", "mistral-test-0001")
    monkeypatch.setenv("OLLAMA_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("VLLM_API_KEY", "only-the-key")  # a local server needs its base URL to be enabled
    paths = write(tmp_path, ECHO_ROUTES, {"auto_presets": True, "providers": {"echo": ECHO_PROVIDER}})
    snapshot = build_snapshot(*paths)
    enabled = {s.preset: s.how for s in snapshot.presets if s.provider is not None}
    assert enabled == {"groq": "auto", "mistral": "auto", "ollama": "auto"}
    assert snapshot.addresses is not None
    assert snapshot.addresses.route("groq/llama-3.1-8b-instant", "chat") is not None
    assert snapshot.addresses.route("together_ai/meta-llama/Llama-3-70b-chat-hf", "chat") is None

    # Off: the same environment enables nothing.
    paths = write(tmp_path / "off", ECHO_ROUTES, {"providers": {"echo": ECHO_PROVIDER}})
    assert all(s.provider is None for s in build_snapshot(*paths).presets)


def test_a_given_field_overrides_the_preset_and_a_declared_provider_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GROQ_API_KEY", "gsk-from-env-0001")
    providers = {
        "auto_presets": True,
        "providers": {
            "fast": {"preset": "groq", "api_key": "gsk-given-0002", "models": {"llama-3.1-8b-instant": {}}},
            "echo": ECHO_PROVIDER,
        },
    }
    snapshot = build_snapshot(*write(tmp_path, ECHO_ROUTES, providers))
    target = snapshot.targets["fast/llama-3.1-8b-instant"]
    assert target.api_key == "gsk-given-0002" and target.base_url == "https://api.groq.com/openai/v1"
    # `fast` already is the groq preset: auto_presets does not add a second provider for it.
    assert "groq" not in {t.provider for t in snapshot.targets.values()}
    assert snapshot.addresses is not None and snapshot.addresses.route("groq/x", "chat") is None
    # A provider that lists models serves only those.
    assert snapshot.addresses.route("fast/other-model", "chat") is None


def test_an_explicit_preset_without_its_key_is_an_error_naming_the_variable(tmp_path: Path):
    from gateway.config.load import ConfigError

    paths = write(tmp_path, ECHO_ROUTES, {"providers": {"groq": {"preset": "groq"}, "echo": ECHO_PROVIDER}})
    with pytest.raises(ConfigError) as caught:
        build_snapshot(*paths)
    assert any("GROQ_API_KEY is not set" in str(i) and i.line == 3 for i in caught.value.issues)
    paths = write(tmp_path / "x", ECHO_ROUTES, {"providers": {"groq": {"preset": "grok"}, "echo": ECHO_PROVIDER}})
    with pytest.raises(ConfigError, match="unknown preset 'grok'"):
        build_snapshot(*paths)


def test_dot_env_fills_unset_variables_and_never_overrides_set_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / ".env").write_text("GROQ_API_KEY=from-file-0001\nMISTRAL_API_KEY=from-file-0002\n")
    monkeypatch.setenv("GROQ_API_KEY", "from-env-0001")
    assert load_env_file(str(tmp_path)) is True
    assert os.environ["GROQ_API_KEY"] == "from-env-0001"
    assert os.environ["MISTRAL_API_KEY"] == "from-file-0002"


def test_validate_reads_dot_env_and_names_presets_without_printing_a_secret(tmp_path: Path):
    secret = "gsk-dotenv-secret-value-9137"
    (tmp_path / ".env").write_text(f"GROQ_API_KEY={secret}\n")
    write(tmp_path, ECHO_ROUTES, {"auto_presets": True, "providers": {"echo": ECHO_PROVIDER}})
    env = {k: v for k, v in os.environ.items() if k not in {p.key_env for p in presets().values()}}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run([sys.executable, "-m", "gateway", "validate"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "groq (auto, GROQ_API_KEY set)" in result.stdout
    assert "mistral (MISTRAL_API_KEY)" in result.stdout  # off, and which variable would enable it
    assert secret not in result.stdout + result.stderr
    as_json = subprocess.run([sys.executable, "-m", "gateway", "validate", "--format", "json"],
                             capture_output=True, text=True, cwd=tmp_path, env=env)
    assert secret not in as_json.stdout and '"preset": "groq"' in as_json.stdout


def test_a_responses_client_reaches_an_openai_compatible_preset_through_chat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, any_upstream: tuple[str, AnyUpstream]
) -> None:
    """Groq and the other OpenAI-compatible presets have no /v1/responses of their own: `responses: translate`."""
    url, fake = any_upstream
    monkeypatch.setenv("GROQ_API_KEY", "gsk-responses-0001")
    providers = {"providers": {"groq": {"preset": "groq", "base_url": f"{url}/openai/v1"}, "echo": ECHO_PROVIDER}}
    routes, providers_path = write(tmp_path, ECHO_ROUTES, providers)
    with serve_app(create_app(str(routes), str(providers_path))) as gateway:
        client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0)
        answer = client.responses.create(model="groq/llama-3.1-70b-versatile", input="hi")
    assert answer.output_text == "hello from openai"
    assert fake.arrivals[-1].path == "/openai/v1/chat/completions"
