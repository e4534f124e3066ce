"""The Response object a Responses client gets, built from the pipeline's answer.

Every field the API defines is present (null, or the value the request implied, where
it does not apply), because strict clients and the Open Responses validators reject an
object with one missing. Output items come from a chat completion's message (its
reasoning text as a `reasoning` item, its text as a `message` item with one `output_text`
part, each tool call as a `function_call` item) or, for a target that speaks the
Responses API, from its own answer, renamed.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.api.openai.response_input import GATEWAY_REASONING, ResponsesCall, item_id
from gateway.providers.tokens import CHARS_PER_TOKEN

# Finish reasons that leave a response incomplete, and the reason the API gives for each.
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def envelope(call: ResponsesCall, response_id: str, created_at: int, status: str) -> dict[str, Any]:
    """The response's every field but its output and usage, as the request set them."""
    body = call.body
    reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else {}
    text = body.get("text") if isinstance(body.get("text"), dict) else {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": call.alias,
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": "default",
        "store": call.store,
        "temperature": _number(body.get("temperature"), 1.0),
        "text": {"format": {"type": "text"}, **text},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": [_tool(t) for t in body.get("tools") or () if isinstance(t, dict)],
        "top_logprobs": body.get("top_logprobs") if isinstance(body.get("top_logprobs"), int) else 0,
        "top_p": _number(body.get("top_p"), 1.0),
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "truncation": body.get("truncation") or "disabled",
        "usage": None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") != "function":
        return tool
    return {"type": "function", "name": tool.get("name"), "description": tool.get("description"),
            "parameters": tool.get("parameters"), "strict": tool.get("strict")}


def usage_of(usage: Any, estimate: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    """Chat usage in the Responses API's terms, every detail the clients require present."""
    if not isinstance(usage, dict):
        usage = {"prompt_tokens": estimate[0], "completion_tokens": estimate[1]}
    prompt = int(usage.get("prompt_tokens") or 0)
    output = int(usage.get("completion_tokens") or 0)
    prompt_details = usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), dict) else {}
    output_details = (usage.get("completion_tokens_details")
                      if isinstance(usage.get("completion_tokens_details"), dict) else {})
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": int(prompt_details.get("cached_tokens") or 0),
                                 "cache_write_tokens": int(prompt_details.get("cache_write_tokens") or 0)},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": int(output_details.get("reasoning_tokens") or 0)},
        "total_tokens": int(usage.get("total_tokens") or prompt + output),
    }


def message_item(text: str, status: str = "completed", item: str | None = None) -> dict[str, Any]:
    return {"id": item or item_id("msg"), "type": "message", "status": status, "role": "assistant",
            "content": [text_part(text)]}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def reasoning_item(text: str, status: str = "completed", item: str | None = None) -> dict[str, Any]:
    """A chat target's reasoning text (`reasoning_content`, as DeepSeek, vLLM and other
    OpenAI-compatible servers send it) as a `reasoning` item: its text as `reasoning_text`
    content, with no summary (the model wrote none)."""
    return {"id": item or item_id(GATEWAY_REASONING), "type": "reasoning", "status": status, "summary": [],
            "content": [{"type": "reasoning_text", "text": text}]}


def call_item(call_id: str, name: str, arguments: str, status: str = "completed", item: str | None = None) -> dict[str, Any]:
    return {"id": item or item_id("fc"), "type": "function_call", "status": status, "call_id": call_id,
            "name": name, "arguments": arguments}


def finished(response: dict[str, Any], reason: str | None) -> dict[str, Any]:
    """Mark a response complete, or incomplete for a finish reason that cut it short."""
    why = INCOMPLETE.get(reason or "")
    response["status"] = "incomplete" if why else "completed"
    response["incomplete_details"] = {"reason": why} if why else None
    response["completed_at"] = int(time.time())
    return response


def from_chat(call: ResponsesCall, response_id: str, chat: dict[str, Any]) -> dict[str, Any]:
    """The Response for a chat completion (its first choice)."""
    response = envelope(call, response_id, int(time.time()), "completed")
    choices = chat.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    content = message.get("content")
    text = content if isinstance(content, str) else ""
    if not text and isinstance(message.get("refusal"), str):
        text = message["refusal"]
    output: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        output.append(reasoning_item(reasoning))
    if text or not message.get("tool_calls"):
        output.append(message_item(text))
    for tool_call in message.get("tool_calls") or ():
        function = tool_call.get("function") or {}
        output.append(call_item(str(tool_call.get("id") or item_id("call")), str(function.get("name") or ""),
                                str(function.get("arguments") or "")))
    response["output"] = output
    estimate = (call.request.prompt_tokens, -(-len(text) // CHARS_PER_TOKEN))
    response["usage"] = usage_of(chat.get("usage"), estimate)
    return finished(response, choice.get("finish_reason"))


def from_native(call: ResponsesCall, response_id: str, upstream: dict[str, Any]) -> dict[str, Any]:
    """An upstream's own Response, under the gateway's id and the client's alias, every
    field the API defines present."""
    created = upstream.get("created_at")
    response = envelope(call, response_id, created if isinstance(created, int) else int(time.time()),
                        str(upstream.get("status") or "completed"))
    response.update(upstream)
    response.update(id=response_id, model=call.alias, previous_response_id=call.body.get("previous_response_id"),
                    store=call.store)
    if isinstance(response.get("usage"), dict):
        response["usage"] = _complete_usage(response["usage"])
    return response


def _complete_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """An upstream's usage with every detail field the clients require."""
    details = dict(usage.get("input_tokens_details") or {})
    details.setdefault("cached_tokens", 0)
    details.setdefault("cache_write_tokens", 0)
    out_details = dict(usage.get("output_tokens_details") or {})
    out_details.setdefault("reasoning_tokens", 0)
    return {**usage, "input_tokens_details": details, "output_tokens_details": out_details}
