"""JSON Schemas for routes.yaml and providers.yaml, generated from the pydantic models.

Run `python -m gateway.ops.schemas schemas` (or `make schemas`) after changing
`model.py`; a test fails while the committed schemas differ from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from gateway.config.model import ProvidersFile, RoutesFile
from gateway.providers.packs.spec import PackSpec

SCHEMAS = {"routes.schema.json": (RoutesFile, "routes.yaml"), "providers.schema.json": (ProvidersFile, "providers.yaml")}
SCHEMAS["pack.schema.json"] = (PackSpec, "pack file")


def schema_for(model: type, title: str) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = title
    return schema


def render(model: type, title: str) -> str:
    return json.dumps(schema_for(model, title), indent=2, sort_keys=True) + "\n"


def write_all(directory: str | Path) -> list[Path]:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, (model, title) in SCHEMAS.items():
        path = out / filename
        path.write_text(render(model, title), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_all(sys.argv[1] if len(sys.argv) > 1 else "schemas"):
        print(f"wrote {path}")
