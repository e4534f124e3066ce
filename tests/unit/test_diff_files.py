"""`gateway diff` takes two routes files (each with its providers.yaml beside it) as well
as two folders."""

from __future__ import annotations

import subprocess
import sys

from tests.support.configs import ECHO_PROVIDER, write_config
from tests.support.servers import ROOT


def _diff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "diff", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


def test_diff_of_two_routes_files_equals_the_diff_of_their_folders(tmp_path):
    old_routes, _ = write_config(tmp_path / "old", {"routes": {"a": {"targets": ["echo/echo-1"]}}}, {"echo": ECHO_PROVIDER})
    new_routes, _ = write_config(tmp_path / "new", {"routes": {"b": {"targets": ["echo/echo-1"]}}}, {"echo": ECHO_PROVIDER})
    by_file = _diff(str(old_routes), str(new_routes), "--format", "json")
    by_folder = _diff(str(tmp_path / "old"), str(tmp_path / "new"), "--format", "json")
    assert by_file.returncode == by_folder.returncode == 1  # a route removed is risky
    assert by_file.stdout == by_folder.stdout
    assert '"a"' in by_file.stdout and '"b"' in by_file.stdout
    # A routes file under another name is found by its own name, with providers.yaml beside it.
    renamed = tmp_path / "new" / "staging-routes.yaml"
    renamed.write_text(new_routes.read_text())
    assert _diff(str(old_routes), str(renamed), "--format", "json").stdout == by_file.stdout
    missing = _diff(str(old_routes), str(tmp_path / "nowhere.yaml"))
    assert missing.returncode == 2 and "no such directory or file" in missing.stderr
