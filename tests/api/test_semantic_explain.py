"""`gateway explain` says whether the semantic cache would look a request up, and why not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.configs import ECHO_PROVIDER, write_config
from tests.support.servers import ROOT

ROUTES = {
    "routes": {
        "support": {"targets": ["echo/echo-1"],
                    "cache": {"ttl": 60, "semantic": {"embed": "embed", "threshold": 0.9}}},
        "embed": {"targets": ["echo/echo-embed"]},
    },
}
QUESTION = [{"role": "user", "content": "how do I reset my password"}]


def explain(tmp_path: Path, body: dict, *args: str) -> subprocess.CompletedProcess[str]:
    routes, providers = write_config(tmp_path / "config", ROUTES, {"echo": ECHO_PROVIDER})
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"model": "support", **body}))
    return subprocess.run(
        [sys.executable, "-m", "gateway", "explain", "support", "--request", str(request), *args,
         "--routes", str(routes), "--providers", str(providers)],
        capture_output=True, text=True, cwd=ROOT, timeout=30,
    )


def test_a_cool_plain_question_would_be_looked_up(tmp_path):
    result = explain(tmp_path, {"messages": QUESTION, "temperature": 0})
    assert result.returncode == 0, result.stderr
    assert ("cache: exact, ttl 60s, scope key; semantic (embed 'embed', threshold 0.9, compare last_user_message): "
            "looked up after an exact miss") in result.stdout


def test_why_a_request_is_not_looked_up(tmp_path):
    hot = explain(tmp_path, {"messages": QUESTION, "temperature": 0.8})
    assert "not looked up nor stored: its temperature is above the route's max_temperature" in hot.stdout
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    facts = json.loads(explain(tmp_path, {"messages": QUESTION, "temperature": 0, "tools": tools},
                               "--format", "json").stdout)
    assert facts["cache"]["semantic"]["looked_up"] is False
    assert facts["cache"]["semantic"]["reason"] == "the request carries tools"
