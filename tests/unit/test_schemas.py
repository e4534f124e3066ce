"""The committed JSON Schemas match the models, and the shipped files use and pass them."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from gateway.ops.schemas import SCHEMAS, render

ROOT = Path(__file__).resolve().parents[2]


def test_committed_schemas_match_the_models():
    for filename, (model, title) in SCHEMAS.items():
        committed = (ROOT / "schemas" / filename).read_text()
        assert committed == render(model, title), f"schemas/{filename} is stale: run `make schemas`"


def test_shipped_files_point_editors_at_the_schemas_and_pass_them():
    for name in ("routes", "providers"):
        text = (ROOT / f"{name}.yaml").read_text()
        assert text.splitlines()[0] == f"# yaml-language-server: $schema=./schemas/{name}.schema.json"
        schema = yaml.safe_load((ROOT / "schemas" / f"{name}.schema.json").read_text())
        jsonschema.validate(yaml.safe_load(text), schema)


def test_schema_refuses_unknown_keys():
    schema = yaml.safe_load((ROOT / "schemas" / "routes.schema.json").read_text())
    bad = {"routes": {"a": {"targets": ["echo/echo-1"], "limts": {}}}}
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(bad))
    assert errors
