"""An example value that conforms to a JSON Schema, for the `echo` pack's structured answers.

A client that asks the shipped config for structured output (`parse` with a pydantic
model, `response_format: json_schema`, a forced tool) must get something its own
validation accepts, or the keyless tryout fails at the first step. The example is the
smallest plain value each keyword allows: every listed property, `minItems` items, the
first `enum` value, the lower bound of a range, a string of the text being echoed cut to
the schema's lengths, and a valid value for the formats pydantic checks (dates, times,
e-mail, URLs, UUIDs). `pattern` and `multipleOf` are not solved for.
"""

from __future__ import annotations

import math
from typing import Any

_MAX_DEPTH = 16  # a recursive schema (a tree, a linked list) ends in an empty value here
_FORMATS = {
    "date-time": "1970-01-01T00:00:00Z",
    "date": "1970-01-01",
    "time": "00:00:00Z",
    "duration": "P0D",
    "email": "echo@example.com",
    "idn-email": "echo@example.com",
    "hostname": "example.com",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "iri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
_TYPE_ORDER = ("object", "array", "string", "integer", "number", "boolean", "null")


def example_of(schema: Any, text: str) -> Any:
    """A value valid against `schema` (a JSON Schema object); strings carry `text`."""
    return _Example(schema, text).value(schema, 0)


class _Example:
    def __init__(self, root: Any, text: str) -> None:
        self.root = root
        self.text = text

    def value(self, schema: Any, depth: int) -> Any:
        if not isinstance(schema, dict):
            return self.text if schema is not False else None  # `true` (anything) or a broken schema
        schema = self._resolve(schema, depth)
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[0]
        for word in ("anyOf", "oneOf"):
            options = schema.get(word)
            if isinstance(options, list) and options:
                return self.value(_first_not_null(options), depth + 1)
        combined = _merged(schema)
        kind = _kind(combined)
        if depth >= _MAX_DEPTH:
            return {"object": {}, "array": []}.get(kind, self._scalar(kind, combined))
        if kind == "object":
            return self._object(combined, depth)
        if kind == "array":
            return self._array(combined, depth)
        return self._scalar(kind, combined)

    def _resolve(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        """Follow a local `$ref` (`#/$defs/Name`, `#/definitions/Name`, `#`)."""
        seen = 0
        while isinstance(schema.get("$ref"), str) and seen < _MAX_DEPTH:
            target: Any = self.root
            for part in schema["$ref"].lstrip("#").split("/"):
                if part:
                    target = target.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(target, dict) else None
            if not isinstance(target, dict):
                return {}
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **rest}
            seen += 1
        return schema

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        out: dict[str, Any] = {}
        if isinstance(properties, dict):
            for name, sub in properties.items():
                out[name] = self.value(sub, depth + 1)
        for name in schema.get("required") or ():
            if isinstance(name, str) and name not in out:
                out[name] = self.text
        return out

    def _array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        prefix = schema.get("prefixItems")
        items = schema.get("items")
        values = [self.value(sub, depth + 1) for sub in prefix] if isinstance(prefix, list) else []
        least = schema.get("minItems")
        count = least if isinstance(least, int) and not isinstance(least, bool) and least > 0 else 0
        while len(values) < count:
            values.append(self.value(items if isinstance(items, dict) else {}, depth + 1))
        return values

    def _scalar(self, kind: str, schema: dict[str, Any]) -> Any:
        if kind == "string":
            return self._string(schema)
        if kind in ("integer", "number"):
            return _number(schema, kind == "integer")
        if kind == "boolean":
            return False
        if kind == "null":
            return None
        return self.text

    def _string(self, schema: dict[str, Any]) -> str:
        form = schema.get("format")
        fixed = _FORMATS.get(form) if isinstance(form, str) else None
        if fixed is not None:
            return fixed
        text = self.text
        low, high = schema.get("minLength"), schema.get("maxLength")
        if isinstance(high, int) and high >= 0:
            text = text[:high]
        if isinstance(low, int) and len(text) < low:
            text += "." * (low - len(text))
        return text


def _first_not_null(options: list[Any]) -> Any:
    for option in options:
        if not (isinstance(option, dict) and option.get("type") == "null"):
            return option
    return options[0]


def _merged(schema: dict[str, Any]) -> dict[str, Any]:
    """`allOf` parts folded into the schema (their properties and requirements added)."""
    parts = schema.get("allOf")
    if not isinstance(parts, list):
        return schema
    out = {k: v for k, v in schema.items() if k != "allOf"}
    for part in parts:
        if isinstance(part, dict):
            for key, value in part.items():
                if key == "properties" and isinstance(value, dict):
                    out["properties"] = {**out.get("properties", {}), **value}
                elif key == "required" and isinstance(value, list):
                    out["required"] = [*out.get("required", []), *value]
                else:
                    out.setdefault(key, value)
    return out


def _kind(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        named = [k for k in _TYPE_ORDER if k in kind]
        kind = named[0] if named else None
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "string"


def _number(schema: dict[str, Any], integer: bool) -> int | float:
    """The lower bound when there is one, else 0, kept inside any upper bound (an open
    interval of fractions gets its middle)."""
    low, high = _bound(schema, "minimum", "exclusiveMinimum"), _bound(schema, "maximum", "exclusiveMaximum")
    if integer:
        least = None if low is None else (math.floor(low[0]) + 1 if low[1] else math.ceil(low[0]))
        most = None if high is None else (math.ceil(high[0]) - 1 if high[1] else math.floor(high[0]))
        if least is not None:
            return least
        return 0 if most is None or most >= 0 else most
    if low is not None and high is not None:
        return low[0] if not low[1] else (low[0] + high[0]) / 2
    if low is not None:
        return low[0] + 1 if low[1] else low[0]
    if high is not None and (high[0] < 0 or high[0] == 0 and high[1]):
        return high[0] - 1 if high[1] else high[0]
    return 0


def _bound(schema: dict[str, Any], name: str, exclusive_name: str) -> tuple[float, bool] | None:
    """(value, exclusive) of one side of a range; draft 4 writes `exclusive...: true` beside it."""
    inclusive, exclusive = schema.get(name), schema.get(exclusive_name)
    if isinstance(exclusive, bool):
        exclusive, inclusive = (inclusive, None) if exclusive else (None, inclusive)
    if _is_number(exclusive):
        return float(exclusive), True
    if _is_number(inclusive):
        return float(inclusive), False
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
