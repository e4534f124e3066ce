"""Which request fields change what an answer means, and which targets carry them.

A pack that translates the request (every pack with a `chat.body` template) carries only
the fields its template reads; a field it drops would be silently ignored by the
provider's answer. A pack says which fields it carries with `maps:`; a request using a
field that changes the answer's meaning skips every target whose pack does not list it,
and when no target is left the client gets a 400 naming the field (see `plan.usable`),
never a 200 that ignored it. A pack without `maps:` (the pass-through `openai` and
`azure-openai` packs, the in-process `echo`) is not filtered.

`images` stands for image parts in the messages and `tool_choice.function` for a
`tool_choice` that names one function; every other name is an OpenAI request field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.config.snapshot import Target


def _is_json(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") in ("json_object", "json_schema")


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


# Field -> whether its value asks for something (a default value asks for nothing).
MEANINGFUL: dict[str, Callable[[Any], bool]] = {
    "response_format": _is_json,
    "tools": bool,
    "functions": bool,
    "n": lambda v: _positive(v) and v > 1,
    "logprobs": lambda v: v is True,
    "top_logprobs": _positive,
    "stop": bool,
    "logit_bias": bool,
    "audio": lambda v: v is not None,
    "modalities": lambda v: isinstance(v, list) and any(m != "text" for m in v),
    "prediction": lambda v: v is not None,
}
IMAGES = "images"
NAMED_TOOL = "tool_choice.function"  # `tool_choice` naming one function, beyond required/none


def used_fields(body: dict[str, Any], images: bool | None = None) -> frozenset[str]:
    """The meaning-changing fields this chat request uses. `images`: whether a message
    carries one, when the caller has already walked the messages."""
    used = {name for name, value in body.items() if value is not None and (test := MEANINGFUL.get(name)) and test(value)}
    if body.get("tools") and body.get("tool_choice") not in (None, "auto"):
        used.add("tool_choice")  # forcing or forbidding a call changes the answer
        if isinstance(body.get("tool_choice"), dict):
            used.add(NAMED_TOOL)  # forcing one named function: not every provider can say that
    if has_images(body) if images is None else images:
        used.add(IMAGES)
    return frozenset(used)


def has_images(body: dict[str, Any]) -> bool:
    """Whether a message of this chat body carries an image part."""
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(isinstance(p, dict) and p.get("type") == "image_url" for p in content):
            return True
    return False


def unmapped(target: Target, fields: frozenset[str]) -> list[str]:
    """The fields of `fields` the target's pack does not carry, sorted; [] when it carries all."""
    if not fields:
        return []
    maps = getattr(target.pack, "maps", None)
    if maps is None:
        return []
    return sorted(fields - maps)


def param_of(field: str) -> str:
    """The request field a 400 names (images are parts of `messages`; a named function is `tool_choice`)."""
    return "messages" if field == IMAGES else "tool_choice" if field == NAMED_TOOL else field
