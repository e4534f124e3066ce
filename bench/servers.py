"""Starting the servers under test the same way every time: the gateway and the baseline,
under uvicorn (as shipped) and, for the server comparison, under granian."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import procs
from baseline import UPSTREAM_ENV
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


# Granian set up as close to `gateway serve`'s uvicorn as it goes: one worker process, one
# single-threaded Rust runtime (one core), uvloop, HTTP/1.1 only, no websockets, no access
# log. Granian always runs a supervisor process with the worker as its child; the bench
# reads CPU for the whole process tree, and the idle supervisor adds next to nothing.
GRANIAN_OPTIONS = ["--interface", "asgi", "--http", "1", "--workers", "1", "--runtime-mode", "st",
                   "--runtime-threads", "1", "--loop", "uvloop", "--no-ws", "--log-level", "warning"]


def granian_gateway_argv(port: int) -> list[str]:
    """The app `gateway serve` runs (its factory), under granian; the config comes from the
    environment (`granian_gateway_env`), as `gateway serve` hands it to its workers."""
    return [sys.executable, "-m", "granian", *GRANIAN_OPTIONS, "--host", "127.0.0.1",
            "--port", str(port), "--factory", "gateway.server.app:served_app"]


def granian_gateway_env(config: GatewayConfig, repo: Path) -> dict[str, str]:
    """The checkout on the path (as `python -m gateway` from the repository has it) and the
    config files where `create_app` looks for them."""
    return {**config.env, "GATEWAY_ROUTES": str(config.routes.resolve()),
            "GATEWAY_PROVIDERS": str(config.providers.resolve()),
            "PYTHONPATH": _pythonpath(repo)}


def granian_baseline_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "granian", *GRANIAN_OPTIONS, "--host", "127.0.0.1",
            "--port", str(port), "baseline:app"]


def granian_baseline_env(mock_url: str) -> dict[str, str]:
    return {UPSTREAM_ENV: mock_url, "PYTHONPATH": _pythonpath(BENCH_DIR)}


def _pythonpath(first: Path) -> str:
    rest = os.environ.get("PYTHONPATH")
    return str(first) + (os.pathsep + rest if rest else "")


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

