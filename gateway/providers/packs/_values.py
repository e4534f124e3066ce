"""Values crossing the pack boundary: rendered bodies cleaned for sending, rendered
answers checked for what the upstream left out, upstream JSON decoded, and error
values turned into classified failures. Shared by calls and streams.
"""

from __future__ import annotations

from typing import Any

import orjson
from jinja2 import StrictUndefined, Undefined

from gateway.config.snapshot import Target
from gateway.providers.packs.wire import (
    FALLBACK_CLASSES,
    UpstreamFailure,
    bad_upstream_body,
    classify_status,
)

_UNDEFINED = (Undefined, StrictUndefined)
_CONTAINERS = (dict, list)


def request_value(value: Any) -> Any:
    """A rendered request body: absent (undefined) and null fields are left out.

    Written for speed (type identity, no recursion into leaves): it walks every rendered
    body once, and message texts and images are leaves it never looks into.
    """
    kind = type(value)
    if kind is dict:
        out = {}
        for key, item in value.items():
            if item is None or type(item) in _UNDEFINED:
                continue
            out[key] = request_value(item) if type(item) in _CONTAINERS else item
        return out
    if kind is list:
        return [request_value(item) if type(item) in _CONTAINERS else item for item in value if type(item) not in _UNDEFINED]
    return value


def answer_value(value: Any) -> Any:
    """A rendered answer: an undefined field means the upstream left out something required."""
    kind = type(value)
    if kind is dict:
        for item in value.values():
            if type(item) in _CONTAINERS or type(item) in _UNDEFINED:
                answer_value(item)
    elif kind is list:
        for item in value:
            if type(item) in _CONTAINERS or type(item) in _UNDEFINED:
                answer_value(item)
    elif kind in _UNDEFINED:
        value._fail_with_undefined_error()
    return value


def reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def decode(target: Target, raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_upstream_body(target, "a body that is not JSON") from None


def decode_event(target: Target, payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise bad_upstream_body(target, "a stream event that is not JSON") from None


def openai_shaped(target: Target, data: Any, required: str) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get(required), list):
        raise bad_upstream_body(target, f"an answer without '{required}'")
    return data


def chat_of_text_completion(completion: dict[str, Any]) -> dict[str, Any]:
    """A legacy text completion read as a chat completion: what accounting and the cache keep."""
    choices = [
        {"index": c.get("index", 0), "message": {"role": "assistant", "content": c.get("text") or ""},
         "finish_reason": c.get("finish_reason") or "stop"}
        for c in completion.get("choices") or () if isinstance(c, dict)
    ]
    out = {"id": completion.get("id"), "object": "chat.completion", "created": completion.get("created"),
           "model": completion.get("model"), "choices": choices}
    if isinstance(completion.get("usage"), dict):
        out["usage"] = completion["usage"]
    return out


def openai_failure(data: dict[str, Any], status: int) -> UpstreamFailure:
    """Read OpenAI's `{"error": {...}}` (or the unwrapped form some servers send)."""
    error = data.get("error", data)
    if not isinstance(error, dict):
        error = {"message": str(error)}
    return failure_from_value(error, status)


def failure_from_value(value: dict[str, Any], status: int) -> UpstreamFailure:
    status = int(value.get("status") or status)
    code = value.get("code")
    code = str(code) if code is not None else None
    clean = {
        "message": str(value.get("message") or f"upstream answered HTTP {status}"),
        "type": str(value.get("type") or "upstream_error"),
        "param": value.get("param"),
        "code": code,
    }
    fallback = value.get("class", classify_status(status, code)) if "class" in value else classify_status(status, code)
    if fallback is not None and fallback not in FALLBACK_CLASSES:
        fallback = classify_status(status, code)
    retry_after = value.get("retry_after")
    return UpstreamFailure(status, clean, fallback, float(retry_after) if isinstance(retry_after, (int, float)) else None)
