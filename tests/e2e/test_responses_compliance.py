"""The public Open Responses compliance suite (six tests: basic response, streaming, system
prompt, tool calling, image input, multi-turn) against a running gateway process, with a
chat-completions target, an Anthropic target and the built-in keyless `echo` behind the alias.

The suite is third party and not in this repository; `.ci/openresponses` (run by
`make test` and CI) prepares it under .cache/openresponses when it is available.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.anthropic_upstream import AnthropicUpstream
from tests.support.configs import ECHO_PROVIDER, openai_provider, write_config
from tests.support.openai_upstream import OpenAIUpstream
from tests.support.servers import ROOT, gateway_process, serve_app

SUITE = ROOT / ".cache" / "openresponses"
SOURCE = Path(os.environ.get("OPENRESPONSES_DIR") or ROOT.parent / "shared" / "openresponses")


def _suite() -> Path:
    if not (SOURCE / "run.sh").exists() and not (SUITE / "run.sh").exists():
        pytest.skip("the Open Responses suite is not beside this checkout (set OPENRESPONSES_DIR)")
    assert shutil.which("node"), "the Open Responses suite needs Node.js: run .ci/openresponses"
    assert (SUITE / "node_modules" / ".bin" / "tsx").exists(), "run .ci/openresponses to prepare the suite"
    return SUITE


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory):
    chat, ant = OpenAIUpstream(), AnthropicUpstream()
    with serve_app(chat.app()) as chat_url, serve_app(ant.app()) as ant_url:
        routes = {"routes": {"chat-target": {"targets": ["up/tool-call"]}, "anthropic-target": {"targets": ["ant/m"]},
                             "echo": {"targets": ["echo/echo-1"]}},
                  "keys": [{"name": "suite", "key": "sk-gw-compliance-0001"}]}
        providers = {
            "up": openai_provider(chat_url, ["tool-call"], responses="translate"),
            "ant": {"api": "anthropic", "base_url": ant_url, "api_key": "sk-ant-provider-0001", "models": {"m": {}}},
            "echo": ECHO_PROVIDER,
        }
        folder = tmp_path_factory.mktemp("compliance")
        routes_path, providers_path = write_config(folder, routes, providers)
        with gateway_process(routes_path, providers_path, env={"GATEWAY_DATA_DIR": str(folder / "data")}) as (url, _):
            yield url


@pytest.mark.parametrize("alias", ["chat-target", "anthropic-target", "echo"])
def test_the_open_responses_suite_passes(gateway_url, alias):
    suite = _suite()
    env = {**os.environ, "BASE_URL": f"{gateway_url}/v1", "MODEL": alias, "API_KEY": "sk-gw-compliance-0001",
           "NO_COLOR": "1", "TIMEOUT_S": "120"}
    done = subprocess.run(["bash", str(suite / "run.sh")], env=env, capture_output=True, text=True, timeout=180)
    output = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)
    assert done.returncode == 0, output[-4000:]
    assert re.search(r"6 passed", output), output[-2000:]
