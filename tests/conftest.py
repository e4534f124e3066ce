"""Fixtures shared by every test: real servers on 127.0.0.1, configs in temp dirs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.server.app import create_app
from tests.support.configs import ECHO_PROVIDER, write_config
from tests.support.openai_upstream import OpenAIUpstream
from tests.support.servers import serve_app


@pytest.fixture(autouse=True)
def fresh_metrics() -> Iterator[None]:
    """Each test starts from an empty metrics registry: one process runs every test's configs."""
    from gateway.observe import metrics

    metrics.clear()
    yield


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's gateways keep their default SQLite ledger in the test's own folder (and
    a DATABASE_URL from the environment running the tests is not theirs to write)."""
    path = tmp_path / "data"
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return path


@pytest.fixture
def upstream() -> Iterator[tuple[str, OpenAIUpstream]]:
    """A real OpenAI-compatible upstream; yields (base URL, recorder)."""
    fake = OpenAIUpstream()
    with serve_app(fake.app()) as url:
        yield url, fake


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start the gateway in-process on a real port for a given config; returns its base URL."""
    stack: list[Any] = []

    def start(routes: dict[str, Any], providers: dict[str, Any] | None = None) -> str:
        providers = providers if providers is not None else {"echo": ECHO_PROVIDER}
        routes_path, providers_path = write_config(tmp_path / f"config{len(stack)}", routes, providers)
        context = serve_app(create_app(str(routes_path), str(providers_path)))
        url = context.__enter__()
        stack.append(context)
        return url

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis (CI's, or a redis-server started here); fails in CI when there is none."""
    from tests.support.redis_server import shared_redis_url

    url, server = shared_redis_url()
    yield url
    if server is not None:
        server.close()


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A real PostgreSQL server (CI's, or one started here); fails in CI when there is none."""
    import os

    from tests.support.postgres_server import TEST_POSTGRES_ENV, own_server

    given = os.environ.get(TEST_POSTGRES_ENV)
    if given:
        yield given
        return
    server = own_server()
    yield server.url()
    server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run a test against each database: an embedded SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    from tests.support.postgres_server import create_database

    return create_database(request.getfixturevalue("postgres_server_url"))


@pytest.fixture(params=["memory", "redis"])
def store_home(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run a test against each home of the store; returns the routes.yaml `store:` section to use."""
    from tests.support.redis_server import new_prefix

    if request.param == "redis":
        monkeypatch.setenv("REDIS_URL", request.getfixturevalue("redis_url"))
    else:
        monkeypatch.delenv("REDIS_URL", raising=False)
    return {"prefix": new_prefix()}


@pytest.fixture
def own_redis() -> Iterator[Any]:
    """A Redis of the test's own, which it may stop and start (an outage it controls)."""
    import shutil

    from tests.support.redis_server import RedisServer, unavailable

    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed")
    server = RedisServer().start()
    yield server
    server.close()
