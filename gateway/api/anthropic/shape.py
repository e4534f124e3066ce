"""Answers and errors written in Anthropic's Messages shape.

The request path answers in OpenAI's shape whatever provider served it; `/v1/messages`
writes that answer back as an Anthropic message here, and any `GatewayError` as
Anthropic's error body, so Anthropic's SDKs read them as they would Anthropic's own.
Streams are written by `anthropic_stream`.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import GatewayError
from gateway.ids import short_id

# The `signature` of a thinking block the gateway writes from a chat target's reasoning
# text. Anthropic signs its own thinking and checks the signature when a conversation
# sends it back, so blocks bearing this one are never sent to an Anthropic target.
GATEWAY_SIGNATURE = "gateway-unsigned"

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# Anthropic's SDK picks its exception class from the status; the type names the category.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


# ---------------------------------------------------------------- answer: OpenAI -> Anthropic


def message_id() -> str:
    return short_id("msg_")


def stop_reason(finish_reason: Any, has_tool_calls: bool) -> str:
    if has_tool_calls:
        return "tool_use"
    return STOP_REASONS.get(finish_reason, "end_turn") if finish_reason else "end_turn"


def usage_of(usage: Any) -> dict[str, Any]:
    """Anthropic counts cache reads apart from input tokens; OpenAI's prompt_tokens include them."""
    if not isinstance(usage, dict):
        return {"input_tokens": 0, "output_tokens": 0}
    prompt = _count(usage.get("prompt_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    written = _count(details.get("cache_creation_tokens")) if isinstance(details, dict) else 0
    out = {"input_tokens": max(prompt - cached - written, 0), "output_tokens": _count(usage.get("completion_tokens"))}
    if cached or written:
        out["cache_read_input_tokens"] = cached
        out["cache_creation_input_tokens"] = written
    return out


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def tool_input(arguments: Any) -> dict[str, Any]:
    """A tool call's arguments as an object; a model that wrote broken JSON is the upstream's fault."""
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise GatewayError("the model returned tool arguments that are not valid JSON", status=502, code="bad_upstream_response") from None
    if not isinstance(value, dict):
        raise GatewayError("the model returned tool arguments that are not a JSON object", status=502, code="bad_upstream_response")
    return value


def wants_thinking(body: dict[str, Any]) -> bool:
    """Whether the client asked for thinking (`thinking: {type: enabled | adaptive}`): only
    then is a chat target's reasoning text shown, as Anthropic shows thinking only then."""
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") not in (None, "disabled")


def from_openai(answer: dict[str, Any], fallback_model: str, thinking: bool = False) -> dict[str, Any]:
    """The Messages answer for an OpenAI chat completion (its first choice); with `thinking`,
    its reasoning text (`reasoning_content`) comes first as a thinking block."""
    choices = answer.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    content: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content")
    if thinking and isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": GATEWAY_SIGNATURE})
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal and not content:
        content.append({"type": "text", "text": refusal})
    calls = [c for c in message.get("tool_calls") or () if isinstance(c, dict)]
    for call in calls:
        function = call.get("function") or {}
        content.append({
            "type": "tool_use",
            "id": call.get("id") or short_id("toolu_"),
            "name": function.get("name") or "",
            "input": tool_input(function.get("arguments")),
        })
    reason = "refusal" if refusal and not calls and not text else stop_reason(choice.get("finish_reason"), bool(calls))
    return {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": answer.get("model") or fallback_model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": None,
        "usage": usage_of(answer.get("usage")),
    }


# ---------------------------------------------------------------- errors


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")


def error_object(error: GatewayError) -> dict[str, Any]:
    """The gateway's error as Anthropic's `error` object; the gateway's code and details ride along."""
    detail: dict[str, Any] = {"type": error_type(error.status), "message": error.message}
    if error.code:
        detail["code"] = error.code
    if error.param:
        detail["param"] = error.param
    detail.update(error.extra)
    return detail


def error_body(error: GatewayError, request_id: str) -> bytes:
    return orjson.dumps({"type": "error", "error": error_object(error), "request_id": request_id})

