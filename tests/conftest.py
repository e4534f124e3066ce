"""Fixtures shared by every test: real servers on 127.0.0.1, configs in temp dirs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from tests.support.configs import ECHO_PROVIDER, write_config
from tests.support.openai_upstream import OpenAIUpstream
from tests.support.servers import serve_app


@pytest.fixture(autouse=True)
def fresh_metrics() -> Iterator[None]:
    """Each test starts from an empty metrics registry: one process runs every test's configs."""
    from gateway import metrics

    metrics.clear()
    yield


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
