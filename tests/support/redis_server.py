"""A real Redis for tests: the one CI starts (GATEWAY_TEST_REDIS_URL) or a redis-server of our own.

Tests that need Redis must fail, never skip, in CI when none can be had: a skipped
Redis test would let a broken shared store land unnoticed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest
import redis

from tests.support.servers import free_port

TEST_REDIS_ENV = "GATEWAY_TEST_REDIS_URL"


class RedisServer:
    """A redis-server process on 127.0.0.1 that a test may stop, freeze and start again."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="gateway-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", self.dir]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if answers(self.url):
                return self
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


def unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"a real Redis is required in CI: {reason}")
    pytest.skip(reason)


def shared_redis_url() -> tuple[str, RedisServer | None]:
    """CI's Redis when it answers, else one started here; fails in CI when neither works."""
    url = os.environ.get(TEST_REDIS_ENV)
    if url:
        if answers(url):
            return url, None
        unavailable(f"{TEST_REDIS_ENV}={url} does not answer")
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed and GATEWAY_TEST_REDIS_URL is not set")
    server = RedisServer().start()
    return server.url, server


def new_prefix() -> str:
    """Keys of one test never meet another's, even on a shared Redis."""
    return f"test-{uuid.uuid4().hex[:12]}:"
