"""The generation parameters a request may set, checked before anything is dispatched.

A value a provider would refuse (`n: 1000`, `max_tokens: -5`, `temperature: 9`) or one
that would silently mean something else (`n: -1`) is a 400 naming the field, in the
client API's own error shape, before any limit is drawn from or any upstream is called.
Every client API reads its own names and ranges from a table here (`Bounds`), so a new
front-end (OpenAI's Responses: `max_output_tokens`, `temperature`, `top_p`, `tools`)
declares its table and calls the same functions. Fields no table names pass through
unchecked: a new provider parameter works without a release.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import BadRequest

MAX_CHOICES = 128  # OpenAI's own ceiling for `n`


@dataclass(frozen=True, slots=True)
class Bound:
    """The range of one numeric field: `integer` fields refuse fractions and booleans."""

    low: float
    high: float | None = None
    integer: bool = False

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if self.high is None:
            return f"{kind} of at least {self.low:g}"
        return f"{kind} from {self.low:g} to {self.high:g}"


Bounds = Mapping[str, Bound]

POSITIVE = Bound(1, integer=True)
# OpenAI's Chat Completions (and legacy completions, which share these names).
OPENAI_CHAT: Bounds = {
    "n": Bound(1, MAX_CHOICES, integer=True),
    "max_tokens": POSITIVE,
    "max_completion_tokens": POSITIVE,
    "temperature": Bound(0, 2),
    "top_p": Bound(0, 1),
    "presence_penalty": Bound(-2, 2),
    "frequency_penalty": Bound(-2, 2),
    "top_logprobs": Bound(0, 20, integer=True),
}
# OpenAI's Responses API: the same sampling ranges under its own names.
OPENAI_RESPONSES: Bounds = {
    "max_output_tokens": POSITIVE,
    "temperature": Bound(0, 2),
    "top_p": Bound(0, 1),
    "top_logprobs": Bound(0, 20, integer=True),
}
# Anthropic's Messages API.
ANTHROPIC_MESSAGES: Bounds = {
    "max_tokens": POSITIVE,
    "temperature": Bound(0, 1),
    "top_p": Bound(0, 1),
    "top_k": Bound(0, integer=True),
}


def check_bounds(body: Mapping[str, Any], bounds: Bounds) -> None:
    """Each field of `bounds` the body sets (not null) must be a number in its range.
    Walks the body's fields rather than the table: a body sets few of them."""
    for name, value in body.items():
        bound = bounds.get(name)
        if bound is None or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int if bound.integer else (int, float)):
            raise BadRequest(f"'{name}' must be {bound.describe()}", param=name, code="invalid_type")
        if value < bound.low or (bound.high is not None and value > bound.high):
            raise BadRequest(f"'{name}' must be {bound.describe()}; got {value}", param=name, code="invalid_value")


# ------------------------------------------------------------------------- tools


def _name(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 128


def _object_or_absent(value: Any) -> bool:
    return value is None or isinstance(value, dict)


def check_function_tools(tools: Any, nested: bool = True, param: str = "tools") -> None:
    """OpenAI's tool list: function tools as `{type: function, function: {name, parameters}}`
    (Chat Completions, `nested`) or `{type: function, name, parameters}` (Responses), and
    `custom` tools with a name. Other tool types are the provider's own (built-in tools a
    Responses client names, say) and pass when they are an object with a `type`."""
    if not isinstance(tools, list):
        raise BadRequest(f"'{param}' must be a list of tools", param=param, code="invalid_type")
    for i, tool in enumerate(tools):
        where = f"{param}[{i}]"
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise BadRequest(f"{where} must be an object with a 'type'", param=where)
        kind = tool["type"]
        if kind == "function":
            spec = tool.get("function") if nested else tool
            inner = f"{where}.function" if nested else where
            if not isinstance(spec, dict):
                raise BadRequest(f"{inner} must be an object with a 'name'", param=inner)
            if not _name(spec.get("name")):
                raise BadRequest(f"{inner}.name must be a non-empty string", param=f"{inner}.name")
            if not _object_or_absent(spec.get("parameters")):
                raise BadRequest(f"{inner}.parameters must be a JSON Schema object", param=f"{inner}.parameters")
        elif kind == "custom" and nested:
            spec = tool.get("custom")
            if not isinstance(spec, dict) or not _name(spec.get("name")):
                raise BadRequest(f"{where}.custom must be an object with a 'name'", param=f"{where}.custom")
        elif nested:
            raise BadRequest(f"{where}.type must be 'function' or 'custom'", param=f"{where}.type")


# --------------------------------------------------------------- content parts

# OpenAI's chat content parts: each type and the field it must carry as an object or string.
_PART_FIELDS: dict[str, tuple[str, type]] = {
    "text": ("text", str),
    "image_url": ("image_url", dict),
    "input_audio": ("input_audio", dict),
    "file": ("file", dict),
    "refusal": ("refusal", str),
}


def check_content_parts(parts: list[Any], where: str) -> None:
    """Each part of an OpenAI message's content list is a known type carrying its field
    (`image_url.url` a string): junk parts are the client's to fix, not a provider's 400."""
    for j, part in enumerate(parts):
        place = f"{where}[{j}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise BadRequest(f"{place} must be a content part with a 'type'", param=place)
        rule = _PART_FIELDS.get(part["type"])
        if rule is None:
            known = ", ".join(_PART_FIELDS)
            raise BadRequest(f"{place}.type must be one of {known}", param=f"{place}.type")
        name, kind = rule
        value = part.get(name)
        if not isinstance(value, kind):
            what = "a string" if kind is str else "an object"
            raise BadRequest(f"{place}.{name} must be {what}", param=f"{place}.{name}")
        if name == "image_url" and not isinstance(value.get("url"), str):
            raise BadRequest(f"{place}.image_url.url must be a string", param=f"{place}.image_url.url")
