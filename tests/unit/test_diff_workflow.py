"""The documented CI workflow: its shell steps run for real against a clone with a base branch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.servers import ROOT

WORKFLOW = ROOT / "docs" / "examples" / "config-review.yml"
pytestmark = pytest.mark.skipif(shutil.which("git") is None or shutil.which("bash") is None, reason="needs git and bash")
ROUTES = "routes:\n  echo:\n    targets: [echo/echo-1]\n  chat:\n    targets: [echo/echo-1]\nkeys:\n  - name: ci\n    key: ${CI_ONLY_SECRET_NOT_SET}\n"
PROVIDERS = "providers:\n  echo:\n    api: echo\n    models: {echo-1: {}}\n"


def load_workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_the_workflow_runs_on_pull_requests_and_reviews():
    workflow = load_workflow()
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on:` as true
    assert "pull_request" in triggers and "pull_request_review" in triggers
    assert workflow["permissions"]["pull-requests"] == "write"


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
                   cwd=cwd, check=True, capture_output=True)


def run_steps(clone: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Run the workflow's own `run:` scripts for validate and diff, as the runner would."""
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "gateway").write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m gateway "$@"\n')
    (shim / "gateway").chmod(0o755)
    outputs = tmp_path / "github-output"
    outputs.write_text("")
    job = load_workflow()["jobs"]["review"]
    env = {**os.environ, **{k: str(v) for k, v in job["env"].items()}, "BASE_REF": "main",
           "GITHUB_OUTPUT": str(outputs), "PATH": f"{shim}:{os.environ['PATH']}"}
    env.pop("CI_ONLY_SECRET_NOT_SET", None)
    result = None
    for step in job["steps"]:
        if step.get("name") in ("Validate", "Diff against the base branch"):
            result = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=clone, env=env, capture_output=True, text=True)
            if result.returncode != 0:
                break
    assert result is not None
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines() if "=" in line)
    return result, values


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    origin = tmp_path / "origin"
    origin.mkdir()
    (origin / "routes.yaml").write_text(ROUTES)
    (origin / "providers.yaml").write_text(PROVIDERS)
    git(origin, "init", "-q", "-b", "main")
    git(origin, "add", ".")
    git(origin, "commit", "-qm", "config")
    git(tmp_path, "clone", "-q", str(origin), "clone")
    return tmp_path / "clone"


def test_a_risky_pull_request_is_flagged_and_commented(clone: Path, tmp_path: Path):
    (clone / "routes.yaml").write_text(ROUTES.replace("  chat:\n    targets: [echo/echo-1]\n", ""))
    result, outputs = run_steps(clone, tmp_path)
    assert result.returncode == 0, result.stderr
    assert outputs["risky"] == "true"
    comment = (clone / "config-review.md").read_text()
    assert comment.startswith("<!-- gateway-config-diff -->") and "alias `chat` removed" in comment


def test_a_safe_pull_request_is_not_flagged(clone: Path, tmp_path: Path):
    (clone / "routes.yaml").write_text(ROUTES + "  # a comment\n")
    result, outputs = run_steps(clone, tmp_path)
    assert result.returncode == 0, result.stderr
    assert outputs["risky"] == "false"


def test_an_invalid_config_fails_the_check(clone: Path, tmp_path: Path):
    (clone / "routes.yaml").write_text(ROUTES.replace("echo/echo-1]\n  chat", "ghost/x]\n  chat"))
    result, outputs = run_steps(clone, tmp_path)
    assert result.returncode == 1 and "unknown provider 'ghost'" in result.stderr
    assert "risky" not in outputs
