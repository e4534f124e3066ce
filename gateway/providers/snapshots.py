"""Building a snapshot with this gateway's packs: the one call every entry point makes.

`gateway.config.compile.build_snapshot` takes the pack compiler as an argument, because
packs belong to this layer, above the config. Here it is bound to the real one, so the
server, the CLI, the GitOps tools and the tests all compile a config the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from gateway.config import compile as _compile
from gateway.config.snapshot import Snapshot
from gateway.providers.packs.loader import load_pack


def build_snapshot(
    routes_path: str | os.PathLike[str],
    providers_path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
) -> Snapshot:
    """Load, validate and compile both files; raise `ConfigError` listing every issue."""
    return _compile.build_snapshot(routes_path, providers_path, env, packs=load_pack)
