"""The helper filters and functions every pack template may use.

They exist for what a sandboxed template cannot say well: JSON inside strings, looking
back through the history, reshaping message lists, ids, usage arithmetic and the state
a stream keeps between events. Each is generic and named for what it does; none knows
about any one provider. `docs/packs.md` lists them with examples.

Helpers raise `TemplateValueError` for data they cannot read; the engine turns it into
a 400 while rendering a request (the client sent it) and a 502 while reading an answer
(the provider sent it).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.ids import short_id

# What the helpers take for a mapping. `dict` first: nearly every value is one (decoded
# JSON), and isinstance with a tuple stops at the first match, skipping the abstract
# class's check, which costs eight times as much.
MAPPINGS = (dict, Mapping)


class TemplateValueError(ValueError):
    """Data a helper cannot work with; the message says what and where."""


def fromjson(text: Any, what: str = "value") -> Any:
    """Parse a JSON string (tool-call arguments); an empty string is an empty object."""
    if isinstance(text, (dict, list)):
        return text
    if text is None or text == "":
        return {}
    if not isinstance(text, (str, bytes)):
        raise TemplateValueError(f"{what} must be a JSON string")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise TemplateValueError(f"{what} is not valid JSON") from None


def tojson(value: Any) -> str:
    """Compact JSON text, unescaped (Jinja's own `tojson` escapes for HTML)."""
    return orjson.dumps(value).decode()


def text_of(content: Any) -> str:
    """The plain text of a message content: a string, or the text parts of a list joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, MAPPINGS) and p.get("type") == "text")
    return str(content)


def text_of_roles(messages: Any, roles: Any = ("system", "developer"), sep: str = "\n\n") -> str:
    """The text of every message with one of these roles, joined: what providers with a
    separate system field (hoisted out of the message list) receive."""
    wanted = (roles,) if isinstance(roles, str) else tuple(roles)
    texts = [text_of(m.get("content")) for m in messages or () if isinstance(m, MAPPINGS) and m.get("role") in wanted]
    return sep.join(t for t in texts if t)


def join_field(items: Any, field: str, sep: str = "", **where: Any) -> str:
    """Join one string field of the items that match every `where` condition.

    `join_field(answer.content, 'text', type='text')` is the answer's text from its
    text blocks; a list as a condition value means "one of these".
    """
    out = []
    for item in items or ():
        if not isinstance(item, MAPPINGS):
            continue
        if all(item.get(k) in v if isinstance(v, (list, tuple)) else item.get(k) == v for k, v in where.items()):
            value = item.get(field)
            if isinstance(value, str):
                out.append(value)
    return sep.join(out)


def parts_of(content: Any) -> list[Any]:
    """A message content as a list of OpenAI parts: a string becomes one text part."""
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [p for p in content if isinstance(p, MAPPINGS)]
    raise TemplateValueError("message content must be a string or a list of parts")


_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(;[^,]*)?,(.*)$", re.DOTALL)


def data_url(url: Any) -> dict[str, Any] | None:
    """Split a `data:` URL into {media_type, data, base64}; None for any other URL."""
    if not isinstance(url, str) or not url.startswith("data:"):
        return None
    match = _DATA_URL.match(url)
    if match is None:
        raise TemplateValueError("an image data URL is malformed")
    params = match.group(2) or ""
    return {"media_type": match.group(1) or "application/octet-stream", "data": match.group(3), "base64": ";base64" in params}


def image_url(part: Mapping[str, Any]) -> str:
    """The URL of an `image_url` part, whether written as an object or a bare string."""
    value = part.get("image_url")
    if isinstance(value, MAPPINGS):
        value = value.get("url")
    if not isinstance(value, str) or not value:
        raise TemplateValueError("an image_url part has no url")
    return value


def merge_turns(items: Any, role: str = "role", content: str = "content") -> list[Any]:
    """Merge consecutive items with the same role, joining their content lists.

    Providers that require alternating turns get a user turn of tool results followed by
    a user text, or two assistant turns, as one turn each.
    """
    merged: list[dict[str, Any]] = []
    for item in items or ():
        if merged and merged[-1].get(role) == item.get(role):
            previous = merged[-1]
            merged[-1] = {**previous, content: _as_list(previous.get(content)) + _as_list(item.get(content))}
        else:
            merged.append(dict(item))
    return merged


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [{"type": "text", "text": value}] if isinstance(value, str) else [value]


def tool_name(messages: Any, tool_call_id: Any) -> str:
    """The function name of the earlier assistant tool call with this id."""
    for message in reversed(messages or ()):
        for call in (message.get("tool_calls") or ()) if isinstance(message, MAPPINGS) else ():
            if isinstance(call, MAPPINGS) and call.get("id") == tool_call_id:
                function = call.get("function") or {}
                if function.get("name"):
                    return str(function["name"])
    raise TemplateValueError(f"no earlier assistant tool call has the id '{tool_call_id}'")


JSON_OUTPUT_TOOL = "json_answer"  # the forced tool's name when the request names no schema


def json_output(body: Any, supports: Any = None) -> dict[str, Any] | None:
    """What the request's `response_format` asks for, ready for a provider that has its own
    schema-constrained output and tool calling: null for plain text, else
    `{type, name, schema, native}`.

    `schema` is the requested JSON Schema (`{"type": "object"}` for `json_object`). `native`
    says whether the provider's own structured output can carry it: a `json_schema` request
    to a model whose `supports` (the target's list; null means everything) names
    `structured_output`. Otherwise the pack forces a single tool whose input schema is
    `schema` and reads its input back as the answer's content.
    """
    fmt = body.get("response_format") if isinstance(body, MAPPINGS) else None
    if not isinstance(fmt, MAPPINGS) or fmt.get("type") not in ("json_object", "json_schema"):
        return None
    spec = fmt.get("json_schema") if fmt.get("type") == "json_schema" else None
    spec = spec if isinstance(spec, MAPPINGS) else {}
    schema = spec.get("schema")
    name = spec.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        name = JSON_OUTPUT_TOOL
    native = fmt.get("type") == "json_schema" and isinstance(schema, MAPPINGS) and (
        supports is None or "structured_output" in supports
    )
    return {
        "type": fmt.get("type"),
        "name": name,
        "schema": schema if isinstance(schema, MAPPINGS) else {"type": "object"},
        "native": native,
    }


def fail(message: str) -> None:
    """Refuse what the provider cannot take, with a message for the client (a 400 for requests)."""
    raise TemplateValueError(str(message))


def new_id(prefix: str = "") -> str:
    return short_id(prefix)


def now() -> int:
    return int(time.time())


def usage(prompt: Any, completion: Any, cached: Any = None, reasoning: Any = None) -> dict[str, Any]:
    """An OpenAI usage object; missing counts are zero, and the total is their sum."""
    prompt_tokens = int(prompt or 0)
    completion_tokens = int(completion or 0)
    out: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if cached is not None:
        out["prompt_tokens_details"] = {"cached_tokens": int(cached or 0)}
    if reasoning is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": int(reasoning or 0)}
    return out


def chunk(delta: Any = None, finish_reason: Any = None, index: int = 0) -> dict[str, Any]:
    """A stream chunk with one choice; the engine adds id, object, created and model."""
    return {"choices": [{"index": index, "delta": dict(delta or {}), "finish_reason": finish_reason}]}


def usage_chunk(value: Mapping[str, Any]) -> dict[str, Any]:
    """The closing chunk that carries usage and no choices (`stream_options.include_usage`)."""
    return {"choices": [], "usage": value}


def seconds(value: Any) -> float | None:
    """A duration such as `37s`, `1.5s`, `250ms` or `12` as seconds."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    match = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s|m)?\s*", str(value))
    if match is None:
        return None
    number = float(match.group(1))
    return {"ms": number / 1000, "m": number * 60}.get(match.group(2) or "s", number)


def pick(mapping: Any, *keys: str) -> dict[str, Any]:
    """The listed keys of a mapping that are present and not null."""
    if not isinstance(mapping, MAPPINGS):
        return {}
    return {k: mapping[k] for k in keys if mapping.get(k) is not None}


def drop_nulls(mapping: Any) -> dict[str, Any]:
    """A mapping without its null values (for nested objects where absent means default)."""
    return {k: v for k, v in (mapping or {}).items() if v is not None}


class StreamState:
    """What one stream remembers between events: values, counters and completion.

    Templates read values as attributes (`state.model`, null when unset) and change them
    through methods, since the sandbox forbids mutating dicts in place.
    """

    __slots__ = ("_values", "_counters", "_indexes", "finished")

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._counters: dict[str, int] = {}
        self._indexes: dict[tuple[str, Any], int] = {}
        self.finished = False

    def __getitem__(self, name: str) -> Any:
        return self._values.get(name)

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)

    def set(self, name: str, value: Any) -> str:
        self._values[name] = value
        return ""

    def add(self, name: str, amount: Any) -> Any:
        """Add to a number (accumulated usage); returns the new total."""
        total = (self._values.get(name) or 0) + (amount or 0)
        self._values[name] = total
        return total

    def next(self, counter: str) -> int:
        """0, 1, 2, ... on successive calls: indexes for items that arrive whole."""
        value = self._counters.get(counter, 0)
        self._counters[counter] = value + 1
        return value

    def count(self, counter: str) -> int:
        """How many times `next(counter)` was called."""
        return self._counters.get(counter, 0)

    def index_for(self, counter: str, key: Any) -> int:
        """A stable index per key, numbered apart from the provider's own numbering.

        Anthropic numbers text and tool blocks together; OpenAI numbers only tool calls.
        `index_for('tool', event.index)` gives tool 0, 1, ... whatever the block number.
        """
        slot = (counter, key)
        if slot not in self._indexes:
            self._indexes[slot] = self.next(counter)
        return self._indexes[slot]

    def has(self, counter: str, key: Any) -> bool:
        return (counter, key) in self._indexes

    def finish(self) -> str:
        """Mark the stream complete: ending after this is a normal end, not a cut."""
        self.finished = True
        return ""


# Every filter is also callable as a function; the globals add the helpers that take no
# piped value (ids, time, chunk builders) or that only make sense as calls.
FILTERS: dict[str, Any] = {
    "text_of_roles": text_of_roles,
    "join_field": join_field,
    "fromjson": fromjson,
    "tojson": tojson,
    "text_of": text_of,
    "parts_of": parts_of,
    "data_url": data_url,
    "image_url": image_url,
    "merge_turns": merge_turns,
    "seconds": seconds,
    "pick": pick,
    "drop_nulls": drop_nulls,
}

GLOBALS: dict[str, Any] = {
    **FILTERS,
    "tool_name": tool_name,
    "json_output": json_output,
    "fail": fail,
    "new_id": new_id,
    "now": now,
    "usage": usage,
    "chunk": chunk,
    "usage_chunk": usage_chunk,
}
