"""`gateway diff --git REF`: the config at a git revision against the working tree, with real git."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.servers import ROOT

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

ROUTES = {"routes": {"chat": {"targets": ["mine/model-a", "echo/echo-1"]}, "echo": {"targets": ["echo/echo-1"]}}}
PROVIDERS = {"providers": {
    "echo": {"api": "echo", "models": {"echo-1": {}}},
    "mine": {"api": "./packs/mine.yaml", "base_url": "http://127.0.0.1:9/v1", "models": {"model-a": {"input_per_1m": 1}}},
}}


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose config lives in config/, with a pack file in config/packs/."""
    root = tmp_path / "repo"
    config = root / "config"
    (config / "packs").mkdir(parents=True)
    (config / "packs" / "mine.yaml").write_text((ROOT / "gateway" / "providers" / "packs" / "openai.yaml").read_text())
    (config / "routes.yaml").write_text(yaml.safe_dump(ROUTES))
    (config / "providers.yaml").write_text(yaml.safe_dump(PROVIDERS))
    git(root, "init", "-q", "-b", "main")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "add", ".")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "config")
    return root


def gateway_diff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "diff", *args], capture_output=True, text=True, cwd=ROOT)


def test_working_tree_against_head(repo: Path):
    config = repo / "config"
    assert gateway_diff("--git", "HEAD", str(config)).returncode == 0
    routes = yaml.safe_load((config / "routes.yaml").read_text())
    routes["routes"].pop("echo")
    routes["routes"]["chat"]["targets"].reverse()
    (config / "routes.yaml").write_text(yaml.safe_dump(routes))
    with open(config / "packs" / "mine.yaml", "a") as pack:
        pack.write("\n# reviewed\n")
    result = gateway_diff("--git", "HEAD", str(config), "--format", "markdown")
    assert result.returncode == 1, result.stderr
    assert "> - alias `echo` removed" in result.stdout
    assert "| `chat` | answered first by echo/echo-1 (was mine/model-a) |" in result.stdout
    assert "pack file `mine.yaml` changed" in result.stdout


def test_an_invalid_config_at_the_revision_is_reported_with_the_revision(repo: Path):
    config = repo / "config"
    (config / "routes.yaml").write_text("routes:\n  chat:\n    targets: [ghost/model]\n")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qam", "broken")
    (config / "routes.yaml").write_text(yaml.safe_dump(ROUTES))
    result = gateway_diff("--git", "HEAD", str(config))
    assert result.returncode == 2
    assert "HEAD:routes.yaml:3:15: unknown provider 'ghost'" in result.stderr


def test_a_missing_revision_or_file_exits_2(repo: Path):
    result = gateway_diff("--git", "no-such-branch", str(repo / "config"))
    assert result.returncode == 2 and "no-such-branch:routes.yaml" in result.stderr
    result = gateway_diff("--git", "HEAD", str(repo))  # no routes.yaml at the repository root
    assert result.returncode == 2 and "routes.yaml" in result.stderr
