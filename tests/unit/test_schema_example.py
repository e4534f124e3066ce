"""The echo pack's schema examples validate against their schemas (checked with the
`jsonschema` library itself, formats included), for the keywords pydantic and hand-written
schemas use."""

from __future__ import annotations

import jsonschema
import pytest

from gateway.providers.packs._schema_example import example_of

CASES = [
    {"type": "integer", "minimum": 3, "maximum": 10},
    {"type": "integer", "exclusiveMinimum": 3},
    {"type": "integer", "maximum": -4},
    {"type": "integer", "exclusiveMaximum": 0},
    {"type": "number", "exclusiveMinimum": 2.5, "exclusiveMaximum": 2.75},
    {"type": "number", "minimum": 1.5},
    {"type": "number", "minimum": 1.5, "exclusiveMaximum": 1.75},
    {"type": "number", "exclusiveMaximum": -3},
    {"type": "integer", "minimum": 2.5, "maximum": 3.5},
    {"type": "string", "minLength": 40},
    {"type": "string", "maxLength": 0},
    {"type": "string", "format": "date-time"},
    {"type": "string", "format": "uuid"},
    {"type": "string", "format": "ipv4"},
    {"type": ["null", "boolean"]},
    {"enum": [3, "x"]},
    {"const": {"a": 1}},
    {"oneOf": [{"type": "null"}, {"type": "array", "items": {"type": "integer"}, "minItems": 3}]},
    {"type": "object", "required": ["undeclared"]},
    {"type": "object", "properties": {"x": {"$ref": "#/definitions/X"}}, "required": ["x"],
     "definitions": {"X": {"type": "object", "properties": {"y": {"$ref": "#/definitions/Y"}}, "required": ["y"]},
                     "Y": {"type": "string", "enum": ["only"]}}},
    {"type": "object", "properties": {"tree": {"$ref": "#/$defs/Node"}}, "required": ["tree"],
     "$defs": {"Node": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
                        "required": ["kids"]}}},
    {"type": "object", "properties": {"a~b": {"type": "integer"}, "ref": {"$ref": "#/properties/a~0b"}}},
    {"items": {"type": "string"}, "minItems": 1},
]


@pytest.mark.parametrize("schema", CASES)
def test_the_example_is_valid_against_its_schema(schema):
    value = example_of(schema, "some text")
    jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())


def test_draft_4_exclusive_flags_are_read_as_flags():
    schema = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer", "minimum": 5,
              "exclusiveMinimum": True}
    value = example_of(schema, "")
    jsonschema.Draft4Validator(schema).validate(value)
    assert value == 6


def test_strings_carry_the_echoed_text_and_properties_keep_their_order():
    schema = {"type": "object", "properties": {"b": {"type": "string"}, "a": {"type": "string", "maxLength": 4}}}
    assert example_of(schema, "echoed words") == {"b": "echoed words", "a": "echo"}


def test_a_schema_that_only_refers_to_itself_ends_with_the_text():
    assert example_of({"$ref": "#"}, "x") == "x"
