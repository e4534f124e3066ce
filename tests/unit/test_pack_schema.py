"""schemas/pack.schema.json matches the pack model, and every built-in pack passes it."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from gateway.ops.schemas import SCHEMAS, render
from gateway.providers.packs.loader import BUILTIN_DIR, builtin_names

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "schemas" / "pack.schema.json"


def test_committed_pack_schema_matches_the_model():
    model, title = SCHEMAS["pack.schema.json"]
    assert SCHEMA.read_text() == render(model, title), "schemas/pack.schema.json is stale: run `make schemas`"


def test_the_built_in_packs_exist():
    assert builtin_names() == [
        "anthropic", "azure-openai", "bedrock", "cohere", "echo", "gemini", "ollama", "openai",
        "vertex", "vertex-anthropic", "vertex-gemini",
    ]


@pytest.mark.parametrize("name", builtin_names())
def test_built_in_pack_points_editors_at_the_schema_and_passes_it(name):
    text = (BUILTIN_DIR / f"{name}.yaml").read_text()
    assert text.splitlines()[0] == "# yaml-language-server: $schema=../../../schemas/pack.schema.json"
    jsonschema.validate(yaml.safe_load(text), yaml.safe_load(SCHEMA.read_text()))


def test_schema_refuses_unknown_keys_and_bad_framing():
    schema = yaml.safe_load(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors({"name": "x", "chat": {"url": "/", "bodyy": "{{ 1 }}"}}))
    assert list(validator.iter_errors({"name": "x", "chat": {"url": "/", "stream": {"framing": "xml"}}}))
    assert not list(validator.iter_errors({"name": "x", "chat": {"url": "/"}}))
