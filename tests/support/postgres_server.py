"""A real PostgreSQL for tests: CI's (GATEWAY_TEST_POSTGRES_URL) or a server of our own
made with initdb/pg_ctl in a temporary folder on a free port of 127.0.0.1.

Tests that need PostgreSQL must fail, never skip, in CI when none can be had: a skipped
PostgreSQL test would let a broken fleet database land unnoticed.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

from tests.support.servers import free_port

TEST_POSTGRES_ENV = "GATEWAY_TEST_POSTGRES_URL"


def find_bin(name: str) -> str | None:
    """A PostgreSQL server binary: on PATH, or in Debian's versioned folder (newest first)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]), reverse=True)
    return candidates[0] if candidates else None


class PostgresServer:
    """A postgres process that a test may stop and start again (same port, same data)."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="gateway-postgres-")
        self.data = os.path.join(self.dir, "data")
        self.initdb = find_bin("initdb")
        self.pg_ctl = find_bin("pg_ctl")
        self._runas: list[str] = []
        if os.geteuid() == 0:  # the server refuses to run as root: run it as 'postgres'
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._runas = ["runuser", "-u", "postgres", "--"]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *command: str) -> None:
        subprocess.run([*self._runas, *command], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> PostgresServer:
        if self.initdb is None or self.pg_ctl is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found")
        if not os.path.exists(self.data):
            self._run(self.initdb, "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        self._run(self.pg_ctl, "-D", self.data, "-o", options, "-l", os.path.join(self.dir, "log"), "-w", "-t", "30",
                  "start")
        return self

    def stop(self) -> None:
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._run(self.pg_ctl, "-D", self.data, "-m", "fast", "-w", "stop")

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def create_database(server_url: str) -> str:
    """A new empty database on the server; returns its URL."""
    import asyncpg

    name = f"gw_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        connection = await asyncpg.connect(server_url.replace("postgresql://", "postgres://", 1), timeout=10)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(create())
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def unavailable(reason: str) -> None:
    """Fail in CI (CI=true), skip elsewhere."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(f"no PostgreSQL: {reason}")


def own_server() -> PostgresServer:
    """A fresh server of our own, or fail/skip when none can start."""
    server = PostgresServer()
    try:
        return server.start()
    except (RuntimeError, OSError, KeyError, subprocess.CalledProcessError) as exc:
        detail = exc.stderr.decode(errors="replace").strip() if isinstance(exc, subprocess.CalledProcessError) else exc
        server.close()
        unavailable(str(detail))
        raise


def wait_until(check, timeout: float = 10.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
