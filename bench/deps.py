"""Debian tools and bench-only Python packages the benchmark needs, installed on first use.

A fresh clone on a fresh machine must be able to run `make bench`, and these tools are
not Python packages, so the benchmark installs them itself (as root, from Debian). The
Python packages only the bench uses (granian, for the server comparison) are not the
gateway's dependencies: they are pip-installed into the bench's own interpreter when missing
(the same list is the `bench` extra in pyproject.toml), and a scenario whose package could
not be installed reports itself skipped.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

ECHO_MODULE_DIRS = ("/usr/lib/nginx/modules", "/usr/share/nginx/modules")
ECHO_MODULE_FILE = "ngx_http_echo_module.so"

# command or file that proves the tool is there -> the Debian package that provides it
TOOLS: dict[str, str] = {
    "nginx": "nginx-light",
    "wrk": "wrk",
    "redis-server": "redis-server",
    "taskset": "util-linux",
    ECHO_MODULE_FILE: "libnginx-mod-http-echo",
}


def echo_module_path() -> Path | None:
    """Where Debian put nginx's echo module, which paces the mock's SSE chunks."""
    for directory in ECHO_MODULE_DIRS:
        candidate = Path(directory, ECHO_MODULE_FILE)
        if candidate.exists():
            return candidate
    return None


def _present(tool: str) -> bool:
    if tool == ECHO_MODULE_FILE:
        return echo_module_path() is not None
    return shutil.which(tool) is not None


def _apt_install(packages: list[str]) -> None:
    """Install, refreshing the package lists once if the first try cannot find them."""
    command = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    env_note = f"installing {' '.join(packages)} from Debian"
    print(f"bench: {env_note}", file=sys.stderr)
    if subprocess.run(command, stdout=subprocess.DEVNULL).returncode == 0:
        return
    subprocess.run(["apt-get", "update"], stdout=subprocess.DEVNULL, check=True)
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True)


def ensure_tools() -> None:
    """Install whatever of TOOLS is missing; fail loudly when that is impossible."""
    missing = sorted({pkg for tool, pkg in TOOLS.items() if not _present(tool)})
    if missing:
        if shutil.which("apt-get") is None:
            raise SystemExit(f"bench: missing Debian packages {missing} and no apt-get")
        _apt_install(missing)
    still = [tool for tool in TOOLS if not _present(tool)]
    if still:
        raise SystemExit(f"bench: still missing after install: {still}")


# import name -> pip requirement; kept in step with the `bench` extra in pyproject.toml
PYTHON_PACKAGES: dict[str, str] = {"granian": "granian>=2.8"}


def ensure_python_packages(wanted: list[str]) -> dict[str, str]:
    """pip-install whichever of `wanted` (import names) is missing; {name: why not} for those
    still missing afterwards. Never raises: the scenario that needs one skips instead."""
    failed: dict[str, str] = {}
    for name in wanted:
        if importlib.util.find_spec(name) is not None:
            continue
        requirement = PYTHON_PACKAGES[name]
        print(f"bench: installing {requirement} with pip (bench only)", file=sys.stderr)
        try:
            done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", requirement],
                                  capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as error:
            failed[name] = f"pip install {requirement} failed: {error}"
            continue
        importlib.invalidate_caches()
        if done.returncode != 0 or importlib.util.find_spec(name) is None:
            tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["no output"]
            failed[name] = f"pip install {requirement} failed: {tail[0][:200]}"
    return failed
