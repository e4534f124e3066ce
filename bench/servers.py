"""Starting the servers under test the same way every time: the gateway and the baseline."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import procs
from gateway_config import GatewayConfig

BENCH_DIR = Path(__file__).resolve().parent


def gateway_argv(config: GatewayConfig, port: int, workers: int = 1) -> list[str]:
    """The documented CLI, run from the repository so an uninstalled checkout works too."""
    return [sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1",
            "--port", str(port), "--routes", str(config.routes),
            "--providers", str(config.providers), "--workers", str(workers)]


def baseline_argv(mock_url: str, port: int, workers: int = 1) -> list[str]:
    return [sys.executable, str(BENCH_DIR / "baseline.py"), "--port", str(port),
            "--upstream", mock_url, "--workers", str(workers)]


def start(name: str, argv_for_port: Callable[[int], list[str]], cores: set[int], workdir: Path,
          repo: Path, env: dict[str, str] | None = None) -> tuple[procs.Proc, str, float]:
    """Spawn pinned, wait for /health; return (process, base URL, start-up seconds)."""
    port = procs.free_port()
    proc = procs.spawn(name, argv_for_port(port), cores, workdir, env=env, cwd=repo)
    base = f"http://127.0.0.1:{port}"
    try:
        startup = procs.wait_http_ok(proc, base + "/health", timeout=60)
    except RuntimeError:
        proc.stop()
        raise
    return proc, base, startup

