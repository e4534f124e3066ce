"""`gateway validate`, the same check every reload runs: all problems of both files in one run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.servers import ROOT

ROUTES = """\
defaults:
  strategy: sideways
routes:
  a:
    targets: [nowhere/model]
  b:
    targets: [echo/echo-1]
    limits: {rpm: -5}
  c:
    equivalent: missing-class
  d:
    targets: [echo/ghost]
keys:
  - name: ci
    key: ${VALIDATE_TEST_UNSET_KEY}
"""
PROVIDERS = """\
providers:
  echo:
    api: echo
    modelz: {}
    models:
      echo-1: {}
  other:
    api: not-a-pack
    models:
      m: {}
"""
EXPECTED = [  # (file, line, col, words in the message)
    ("routes.yaml", 2, 3, "defaults.strategy"),
    ("routes.yaml", 5, 15, "unknown provider 'nowhere'"),
    ("routes.yaml", 8, 14, "routes.b.limits.rpm"),
    ("routes.yaml", 10, 5, "unknown equivalents class 'missing-class'"),
    ("routes.yaml", 12, 15, "provider 'echo' has no model 'ghost'"),
    ("routes.yaml", 15, 10, "VALIDATE_TEST_UNSET_KEY is not set"),
    ("providers.yaml", 4, 5, "unknown key 'modelz'"),
    ("providers.yaml", 8, 5, "unknown api 'not-a-pack'"),
]


def validate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "validate", *args], capture_output=True, text=True, cwd=ROOT)


def broken(tmp_path: Path) -> Path:
    (tmp_path / "routes.yaml").write_text(ROUTES)
    (tmp_path / "providers.yaml").write_text(PROVIDERS)
    return tmp_path


def test_every_problem_of_both_files_is_listed_in_one_run(tmp_path):
    directory = broken(tmp_path)
    result = validate(str(directory / "routes.yaml"), str(directory / "providers.yaml"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    for name, line, col, words in EXPECTED:
        prefix = f"{directory / name}:{line}:{col}: "
        assert any(l.startswith(prefix) and words in l for l in lines), (prefix, words, lines)
    assert lines[-1] == f"{len(lines) - 1} error(s)"
    issue_lines = [l for l in lines[:-1]]
    routes_first = [l.split(":")[0].endswith("routes.yaml") for l in issue_lines]
    assert routes_first == sorted(routes_first, reverse=True)  # routes.yaml first, then providers.yaml, by line


def test_json_lists_the_same_problems_for_machines(tmp_path):
    directory = broken(tmp_path)
    result = validate(str(directory), "--format", "json")  # a directory holding both files
    assert result.returncode == 1
    body = json.loads(result.stdout)
    assert body["valid"] is False and body["count"] == len(body["errors"]) >= len(EXPECTED)
    found = {(Path(e["file"]).name, e["line"], e["col"]) for e in body["errors"]}
    assert {(name, line, col) for name, line, col, _ in EXPECTED} <= found


def test_missing_secrets_can_be_allowed_for_ci(tmp_path):
    (tmp_path / "routes.yaml").write_text("routes:\n  echo:\n    targets: [echo/echo-1]\nkeys:\n  - name: ci\n    key: ${VALIDATE_TEST_UNSET_KEY}\n")
    (tmp_path / "providers.yaml").write_text("providers:\n  echo:\n    api: echo\n    models: {echo-1: {}}\n")
    assert validate(str(tmp_path)).returncode == 1
    result = validate(str(tmp_path), "--allow-missing-env", "--format", "json")
    assert result.returncode == 0, result.stdout
    body = json.loads(result.stdout)
    assert body["valid"] is True and body["routes"] == ["echo"] and body["keys"] == ["ci"]
