"""The strategy examples commented out in the shipped routes.yaml are valid when uncommented."""

from __future__ import annotations

import re
import shutil

from gateway.providers.snapshots import build_snapshot
from tests.support.servers import ROOT

EXAMPLE_LINE = re.compile(r"^  # ([a-z][a-z0-9-]*:$|  +\S)")  # "  # alias:" or an indented line under it


def test_each_commented_strategy_example_compiles_and_uses_its_strategy(tmp_path):
    text = (ROOT / "routes.yaml").read_text()
    uncommented = "\n".join(
        line.replace("  # ", "  ", 1) if EXAMPLE_LINE.match(line) else line for line in text.splitlines()
    )
    (tmp_path / "routes.yaml").write_text(uncommented)
    shutil.copy(ROOT / "providers.yaml", tmp_path / "providers.yaml")
    snapshot = build_snapshot(tmp_path / "routes.yaml", tmp_path / "providers.yaml", env={})
    strategies = {alias: route.strategy for alias, route in snapshot.routes.items()}
    assert {"fallback", "weighted", "cheapest", "fastest"} <= set(strategies.values())
    assert strategies["canary"] == "weighted" and strategies["thrifty"] == "cheapest" and strategies["quick"] == "fastest"
    assert [t.target.id for t in snapshot.routes["mini"].fallback_targets] == ["echo/echo-1"]
