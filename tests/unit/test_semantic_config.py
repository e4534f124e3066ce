"""`cache.semantic` is checked when the config compiles: its `embed` must name an
embeddings route of the file, and only a chat route may have one."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.load import ConfigError
from gateway.providers.snapshots import build_snapshot

PROVIDERS = """\
providers:
  echo:
    api: echo
    models:
      echo-1: {}
      echo-embed: {type: embedding}
"""


def compile_routes(tmp_path: Path, routes: str):
    (tmp_path / "routes.yaml").write_text(routes)
    (tmp_path / "providers.yaml").write_text(PROVIDERS)
    return build_snapshot(tmp_path / "routes.yaml", tmp_path / "providers.yaml", env={})


def issues_for(tmp_path: Path, routes: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        compile_routes(tmp_path, routes)
    return [str(issue) for issue in caught.value.issues]


def routes_with(semantic: str, route_targets: str = "[echo/echo-1]") -> str:
    return f"""\
routes:
  support:
    targets: {route_targets}
    cache:
      ttl: 60
      semantic: {semantic}
  embed:
    targets: [echo/echo-embed]
  chat:
    targets: [echo/echo-1]
"""


def test_a_valid_semantic_cache_compiles_with_its_defaults(tmp_path):
    snapshot = compile_routes(tmp_path, routes_with("{embed: embed, threshold: 0.9}"))
    semantic = snapshot.routes["support"].semantic
    assert semantic is not None
    assert (semantic.embed, semantic.threshold, semantic.compare) == ("embed", 0.9, "last_user_message")
    assert (semantic.max_entries, semantic.max_temperature, semantic.timeout) == (10000, 0.3, 0.3)
    assert snapshot.routes["chat"].semantic is None


def test_an_unknown_embeddings_route_is_reported_at_its_line(tmp_path):
    issues = issues_for(tmp_path, routes_with("{embed: nowhere}"))
    assert len(issues) == 1
    assert issues[0].startswith(f"{tmp_path / 'routes.yaml'}:6:")
    assert "unknown embeddings route 'nowhere'" in issues[0]


def test_a_chat_route_cannot_embed(tmp_path):
    issues = issues_for(tmp_path, routes_with("{embed: chat}"))
    assert len(issues) == 1 and "'chat' is a chat route" in issues[0]


def test_an_embeddings_route_has_no_semantic_cache(tmp_path):
    issues = issues_for(tmp_path, routes_with("{embed: embed}", "[echo/echo-embed]"))
    assert len(issues) == 1 and "only chat routes have a semantic cache" in issues[0]


@pytest.mark.parametrize("semantic, where", [
    ("{embed: embed, threshold: 1.5}", "threshold"),
    ("{embed: embed, compare: everything}", "compare"),
    ("{embed: embed, max_entries: 0}", "max_entries"),
    ("{threshold: 0.9}", "embed"),
])
def test_a_malformed_semantic_setting_is_refused(tmp_path, semantic, where):
    issues = issues_for(tmp_path, routes_with(semantic))
    assert any(f"cache.semantic.{where}" in issue for issue in issues), issues
