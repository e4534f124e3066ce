"""Every kind of config mistake is reported at its file, line and column."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config.load import ConfigError
from gateway.providers.snapshots import build_snapshot

ROOT = Path(__file__).resolve().parents[2]

PROVIDERS = """\
providers:
  echo:
    api: echo
    models:
      echo-1: {}
"""

ROUTES = """\
routes:
  echo:
    targets: [echo/echo-1]
"""


def issues_for(tmp_path: Path, routes: str, providers: str = PROVIDERS, env: dict[str, str] | None = None) -> list[str]:
    (tmp_path / "routes.yaml").write_text(routes)
    (tmp_path / "providers.yaml").write_text(providers)
    with pytest.raises(ConfigError) as caught:
        build_snapshot(tmp_path / "routes.yaml", tmp_path / "providers.yaml", env=env or {})
    return [str(issue) for issue in caught.value.issues]


def test_yaml_syntax_error_has_position(tmp_path):
    """An unclosed '[' is reported where it was opened, not where the parser gave up."""
    issues = issues_for(tmp_path, "routes:\n  echo:\n    targets: [echo/echo-1\n")
    assert len(issues) == 1
    assert issues[0].startswith(f"{tmp_path / 'routes.yaml'}:3:14: YAML syntax: this '[' is not closed")


def test_unclosed_flow_mapping_is_reported_where_it_opened(tmp_path):
    routes = ROUTES + "    limits: {rpm: 10,\n  other:\n    targets: [echo/echo-1]\n"
    issues = issues_for(tmp_path, routes)
    assert len(issues) == 1
    assert issues[0].startswith(f"{tmp_path / 'routes.yaml'}:4:13: YAML syntax: this '{{' is not closed")


@pytest.mark.parametrize(("name", "hint"), [
    ("no", 'routes.no: no is read as a YAML boolean; quote it: "no"'),
    ("on", 'routes.on: on is read as a YAML boolean; quote it: "on"'),
    ("yes", 'routes.yes: yes is read as a YAML boolean; quote it: "yes"'),
    ("42", 'routes.42: 42 is read as a number; route names are strings, quote it: "42"'),
    ("1.5", 'routes.1.5: 1.5 is read as a number; route names are strings, quote it: "1.5"'),
])
def test_a_route_name_yaml_reads_as_a_boolean_or_number_gets_the_fix(tmp_path, name, hint):
    issues = issues_for(tmp_path, ROUTES + f"  {name}:\n    targets: [echo/echo-1]\n")
    assert issues == [f"{tmp_path / 'routes.yaml'}:4:3: {hint}"]


def test_a_target_pattern_is_explained_as_written_not_as_a_regular_expression(tmp_path):
    issues = issues_for(tmp_path, "routes:\n  echo:\n    targets:\n      - echo/echo-1\n      - Echo-1\n")
    assert len(issues) == 1
    assert issues[0].startswith(f"{tmp_path / 'routes.yaml'}:5:9: routes.echo.targets.1.target: a target is written provider/model")
    assert "'Echo-1'" in issues[0] and "^[" not in issues[0]


def test_unknown_key_is_refused_at_its_line(tmp_path):
    issues = issues_for(tmp_path, ROUTES + "    limits: {rpm: 10, rmp: 5}\n")
    assert issues == [f"{tmp_path / 'routes.yaml'}:4:23: unknown key 'rmp' at routes.echo.limits.rmp"]


def test_wrong_type_names_the_field(tmp_path):
    issues = issues_for(tmp_path, ROUTES + "    timeout: soon\n")
    assert len(issues) == 1 and issues[0].startswith(f"{tmp_path / 'routes.yaml'}:4:5: routes.echo.timeout:")


def test_unknown_target_is_reported_where_it_is_named(tmp_path):
    issues = issues_for(tmp_path, "routes:\n  echo:\n    targets:\n      - echo/echo-1\n      - echo/echo-9\n      - nobody/m\n")
    assert issues == [
        f"{tmp_path / 'routes.yaml'}:5:9: provider 'echo' has no model 'echo-9'",
        f"{tmp_path / 'routes.yaml'}:6:9: unknown provider 'nobody' in target 'nobody/m'",
    ]


def test_missing_env_var_names_variable_file_and_line(tmp_path):
    providers = PROVIDERS + "  up:\n    api: openai\n    base_url: http://127.0.0.1:1/v1\n    api_key: ${UP_KEY}\n    models: {m: {}}\n"
    issues = issues_for(tmp_path, ROUTES, providers)
    assert issues == [f"{tmp_path / 'providers.yaml'}:9:14: environment variable UP_KEY is not set and has no default"]


def test_env_defaults_and_typed_substitution(tmp_path):
    (tmp_path / "routes.yaml").write_text(ROUTES + "    timeout: ${ROUTE_TIMEOUT:-12.5}\n    limits:\n      rpm: ${RPM}\n")
    (tmp_path / "providers.yaml").write_text(PROVIDERS)
    snapshot = build_snapshot(tmp_path / "routes.yaml", tmp_path / "providers.yaml", env={"RPM": "60"})
    assert snapshot.routes["echo"].timeout == 12.5
    assert snapshot.routes["echo"].limits.rpm == 60


def test_duplicate_alias_is_refused(tmp_path):
    issues = issues_for(tmp_path, ROUTES + "  echo:\n    targets: [echo/echo-1]\n")
    assert issues == [f"{tmp_path / 'routes.yaml'}:4:3: duplicate key 'echo'"]


def test_all_errors_of_both_files_are_reported_together(tmp_path):
    providers = "providers:\n  echo:\n    api: echo\n    modles: {}\n"
    issues = issues_for(tmp_path, "routes:\n  a:\n    targets: []\n  b: {}\n", providers)
    assert len(issues) >= 3
    assert any("providers.yaml:4:5: unknown key 'modles'" in i for i in issues)
    assert any("routes.yaml:2:3" in i and "at least one target" in i for i in issues)
    assert any("routes.yaml:4:3" in i and "exactly one of" in i for i in issues)


def test_unknown_api_and_missing_base_url(tmp_path):
    providers = PROVIDERS + "  x:\n    api: telepathy\n    models: {m: {}}\n  y:\n    api: openai\n    models: {m: {}}\n"
    issues = issues_for(tmp_path, ROUTES, providers)
    assert any(":7:5: unknown api 'telepathy'" in i for i in issues)
    assert any(":9:3: provider 'y' needs a base_url" in i for i in issues)


def test_key_needs_exactly_one_secret(tmp_path):
    issues = issues_for(tmp_path, ROUTES + "keys:\n  - name: a\n")
    assert issues == [f"{tmp_path / 'routes.yaml'}:5:5: keys.0: a key needs exactly one of 'sha256' or 'key'"]


def run_validate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "validate", *args], capture_output=True, text=True, cwd=ROOT)


def test_validate_command_exits_nonzero_with_every_error(tmp_path):
    (tmp_path / "routes.yaml").write_text("routes:\n  a:\n    targets: [echo/nope]\n  b:\n    targets: [ghost/m]\n")
    (tmp_path / "providers.yaml").write_text(PROVIDERS)
    result = run_validate(str(tmp_path / "routes.yaml"), str(tmp_path / "providers.yaml"))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if "routes.yaml:" in line]
    assert len(lines) == 2
    assert "2 error(s)" in result.stderr


def test_validate_json_format(tmp_path):
    import json

    (tmp_path / "routes.yaml").write_text("routes:\n  a:\n    targets: [echo/nope]\n")
    (tmp_path / "providers.yaml").write_text(PROVIDERS)
    result = run_validate(str(tmp_path / "routes.yaml"), str(tmp_path / "providers.yaml"), "--format", "json")
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["valid"] is False
    assert report["errors"][0]["line"] == 3 and report["errors"][0]["col"] == 15


def test_validate_accepts_the_shipped_config_without_any_env():
    env_free = subprocess.run(
        [sys.executable, "-m", "gateway", "validate"], capture_output=True, text=True, cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert env_free.returncode == 0, env_free.stderr
    assert env_free.stdout.startswith("ok: ")


def test_hash_key_prints_sha256():
    result = subprocess.run([sys.executable, "-m", "gateway", "hash-key", "test"], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.strip() == "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def test_same_config_same_version_and_change_changes_it(tmp_path):
    (tmp_path / "routes.yaml").write_text(ROUTES)
    (tmp_path / "providers.yaml").write_text(PROVIDERS)
    first = build_snapshot(tmp_path / "routes.yaml", tmp_path / "providers.yaml", env={})
    again = build_snapshot(tmp_path / "routes.yaml", tmp_path / "providers.yaml", env={})
    (tmp_path / "routes.yaml").write_text(ROUTES + "    timeout: 5\n")
    changed = build_snapshot(tmp_path / "routes.yaml", tmp_path / "providers.yaml", env={})
    assert first.version == again.version != changed.version
