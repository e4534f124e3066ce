"""The README's quickstart as a process: a key in `.env`, a `groq/…` model through the
OpenAI SDK, no route written for it; and the environment beats the file."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import yaml

from gateway.config.presets import presets
from tests.support.any_upstream import AnyUpstream
from tests.support.servers import ROOT, free_port, serve_app, wait_healthy


@pytest.fixture
def fake() -> Iterator[tuple[str, AnyUpstream]]:
    upstream = AnyUpstream()
    with serve_app(upstream.app()) as url:
        yield url, upstream


def _serve(folder: Path, env: dict[str, str]) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", str(port), "--no-watch"],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, process)
    return url, process


@pytest.mark.parametrize("in_environment", [False, True], ids=["from-dotenv", "environment-wins"])
def test_a_key_in_dot_env_reaches_a_groq_model_with_no_route(tmp_path: Path, fake: tuple[str, AnyUpstream], in_environment: bool):
    base, upstream = fake
    (tmp_path / ".env").write_text("GROQ_API_KEY=gsk-from-dotenv-0001\n")
    (tmp_path / "routes.yaml").write_text(yaml.safe_dump({"routes": {"echo": {"targets": ["echo/echo-1"]}}}))
    # As shipped (auto_presets), with only the endpoint root moved to the local mock.
    (tmp_path / "providers.yaml").write_text(yaml.safe_dump({
        "auto_presets": True,
        "providers": {"groq": {"preset": "groq", "base_url": f"{base}/openai/v1"}, "echo": {"api": "echo", "models": {"echo-1": {}}}},
    }))
    env = {k: v for k, v in os.environ.items() if k not in {p.key_env for p in presets().values()}}
    env.update({"PYTHONPATH": str(ROOT), "GATEWAY_DATA_DIR": str(tmp_path / "data")})
    if in_environment:
        env["GROQ_API_KEY"] = "gsk-from-environment-0002"
    url, process = _serve(tmp_path, env)
    try:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        answer = client.chat.completions.create(
            model="groq/llama-3.1-70b-versatile", messages=[{"role": "user", "content": "hi"}],
        )
    finally:
        process.terminate()
        process.wait(timeout=15)
    assert answer.choices[0].message.content == "hello from openai"
    expected = "gsk-from-environment-0002" if in_environment else "gsk-from-dotenv-0001"
    assert upstream.arrivals[-1].headers["authorization"] == f"Bearer {expected}"
    assert upstream.arrivals[-1].body["model"] == "llama-3.1-70b-versatile"
