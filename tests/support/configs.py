"""Writing routes.yaml / providers.yaml pairs for a test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ECHO_PROVIDER = {"api": "echo", "models": {"echo-1": {}, "echo-embed": {"type": "embedding"}}}


def write_config(directory: Path, routes: dict[str, Any], providers: dict[str, Any]) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    routes_path = directory / "routes.yaml"
    providers_path = directory / "providers.yaml"
    routes_path.write_text(yaml.safe_dump(routes, sort_keys=False))
    providers_path.write_text(yaml.safe_dump({"providers": providers}, sort_keys=False))
    return routes_path, providers_path


def openai_provider(base_url: str, models: dict[str, Any] | list[str], api_key: str = "sk-upstream-test-key-0001", **extra: Any) -> dict[str, Any]:
    spec = {m: {} for m in models} if isinstance(models, list) else models
    return {"api": "openai", "base_url": f"{base_url}/v1", "api_key": api_key, "models": spec, **extra}
