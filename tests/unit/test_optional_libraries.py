"""Libraries only some configs use are imported by the configs that use them, at start-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.configs import ECHO_PROVIDER, write_config

SCRIPT = (
    "import sys\n"
    "from gateway.server.app import create_app\n"
    "create_app(sys.argv[1], sys.argv[2])\n"
    "print('jsonschema' in sys.modules)\n"
)


def _imports_jsonschema(folder: Path, route: dict) -> bool:
    routes, providers = write_config(folder, {"routes": {"r": route}}, {"echo": ECHO_PROVIDER})
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(routes), str(providers)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[-1] == "True"


def test_jsonschema_loads_with_a_route_that_validates_output_and_not_without(tmp_path):
    assert not _imports_jsonschema(tmp_path / "plain", {"targets": ["echo/echo-1"]})
    assert _imports_jsonschema(tmp_path / "checked", {"targets": ["echo/echo-1"], "validate_output": True})
