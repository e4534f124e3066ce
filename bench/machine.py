"""The machine and software a result came from, so figures from different runs compare."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("starlette", "uvicorn", "uvloop", "httptools", "aiohttp", "orjson", "pydantic",
            "jinja2", "redis", "pyyaml", "granian")
TOOLS = {"nginx": ["nginx", "-v"], "wrk": ["wrk", "-v"], "redis-server": ["redis-server", "-v"]}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _tool_version(argv: list[str]) -> str:
    """First version-looking token of a tool's banner (they print to stdout or stderr)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    match = re.search(r"(\d+\.\d+(?:\.\d+)?)", done.stdout + done.stderr)
    return match.group(1) if match else "unknown"


def git_commit(repo: Path) -> str:
    done = subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%h %s"],
                          capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def describe(repo: Path) -> dict[str, object]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES},
        "tools": {name: _tool_version(argv) for name, argv in TOOLS.items()},
        "commit": git_commit(repo),
    }
