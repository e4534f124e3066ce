"""An Anthropic Messages request, read into the OpenAI chat body the request path speaks.

`/v1/messages` reads the client's body once, here, so a route's limits, cache,
fallbacks and every provider pack serve Anthropic clients without a translator per
provider. The fields read are checked on the way, so a malformed body is a 400 that
names the field.

What OpenAI's shape cannot carry (thinking, cache_control, citations, server tools,
top_k) is left out of the translation; it still reaches a target whose pack is
`anthropic`, which is sent the client's own body (`anthropic_native`).
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.api import parameters
from gateway.errors import BadRequest

ROLES = ("user", "assistant")


class Untranslatable(BadRequest):
    """A well-formed block OpenAI's shape has no place for (server tool results and the like)."""


def to_openai(body: dict[str, Any], lenient: bool = False) -> dict[str, Any]:
    """The OpenAI chat body that asks for what this Messages body asks for.

    Checks the fields it reads as it goes, so a malformed body is a 400 naming the field.
    A block with no OpenAI equivalent raises `Untranslatable`, or is left out if `lenient`
    (when the route can also send the body as it is to an Anthropic target).
    """
    max_tokens = body.get("max_tokens")
    if not _is_int(max_tokens) or max_tokens < 1:
        raise BadRequest("'max_tokens' is required and must be a positive integer", param="max_tokens")
    parameters.check_bounds(body, parameters.ANTHROPIC_MESSAGES)
    out = prompt_to_openai(body, lenient)
    out["max_tokens"] = max_tokens
    _copy_sampling(body, out)
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise BadRequest("'metadata' must be an object", param="metadata")
        if isinstance(metadata.get("user_id"), str):
            out["user"] = metadata["user_id"]
    _copy_output_format(body.get("output_config"), out)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean", param="stream")
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}  # Anthropic always reports usage
    return out


def prompt_to_openai(body: dict[str, Any], lenient: bool = False) -> dict[str, Any]:
    """Model, messages, system and tools: all that a prompt is (and all count_tokens gets)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required and must be a string naming a route", param="model")
    messages = system_messages(body.get("system"))
    messages.extend(chat_messages(body.get("messages"), lenient))
    out: dict[str, Any] = {"model": model, "messages": messages}
    tools = body.get("tools")
    choice: dict[str, Any] = {}
    _copy_tool_choice(body.get("tool_choice"), choice)
    if tools is not None:
        functions = tool_definitions(tools)
        if functions:
            out["tools"] = functions
            out.update(choice)
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def system_messages(system: Any) -> list[dict[str, Any]]:
    if system is None:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}] if system else []
    if isinstance(system, list):
        texts = [_text_of(block, f"system[{i}]") for i, block in enumerate(system)]
        return [{"role": "system", "content": "\n\n".join(texts)}] if texts else []
    raise BadRequest("'system' must be a string or a list of text blocks", param="system")


def _text_of(block: Any, where: str) -> str:
    if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
        raise BadRequest(f"{where} must be a text block {{'type': 'text', 'text': ...}}", param=where)
    return block["text"]


def chat_messages(messages: Any, lenient: bool = False) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' is required and must be a non-empty list", param="messages")
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise BadRequest(f"{where} must be an object", param=where)
        role = message.get("role")
        if role not in ROLES:
            raise BadRequest(f"{where}.role must be 'user' or 'assistant'", param=f"{where}.role")
        content = message.get("content")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
        elif isinstance(content, list):
            blocks = [(f"{where}.content[{j}]", _block(b, f"{where}.content[{j}]")) for j, b in enumerate(content)]
            out.extend(assistant_turn(blocks, lenient) if role == "assistant" else user_turn(blocks, lenient))
        else:
            raise BadRequest(f"{where}.content must be a string or a list of blocks", param=f"{where}.content")
    return out


def _block(block: Any, where: str) -> dict[str, Any]:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise BadRequest(f"{where} must be a content block with a 'type'", param=where)
    return block


Blocks = list[tuple[str, dict[str, Any]]]  # (where in the body, block): the place names a 400


def user_turn(blocks: Blocks, lenient: bool = False) -> list[dict[str, Any]]:
    """Tool results become `tool` messages, placed first as OpenAI requires; the rest one user message."""
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for where, block in blocks:
        kind = block["type"]
        if kind == "tool_result":
            message, images = tool_result(block, where)
            results.append(message)
            parts.extend(images)
        else:
            part = user_part(block, where, lenient)
            if part is not None:
                parts.append(part)
    if parts:
        results.append({"role": "user", "content": parts})
    return results


def user_part(block: dict[str, Any], where: str, lenient: bool = False) -> dict[str, Any] | None:
    kind = block["type"]
    if kind == "text":
        return {"type": "text", "text": _text_of(block, where)}
    if kind == "image":
        return {"type": "image_url", "image_url": {"url": image_url(block.get("source"), where)}}
    if kind == "document":
        return document_part(block.get("source"), block.get("title"), where)
    if kind in ("thinking", "redacted_thinking"):
        return None
    if kind == "tool_use":
        raise BadRequest(f"{where}: a tool_use block belongs in an assistant message", param=where)
    return _untranslatable(kind, where, lenient)


def _untranslatable(kind: str, where: str, lenient: bool) -> None:
    if lenient:
        return None
    raise Untranslatable(f"{where}: block type '{kind}' can only be sent to an Anthropic target", param=where)


def image_url(source: Any, where: str) -> str:
    if isinstance(source, dict):
        if source.get("type") == "base64" and isinstance(source.get("data"), str):
            media_type = source.get("media_type")
            if not isinstance(media_type, str) or not media_type.startswith("image/"):
                raise BadRequest(f"{where}.source.media_type must be an image type", param=f"{where}.source.media_type")
            return f"data:{media_type};base64,{source['data']}"
        if source.get("type") == "url" and isinstance(source.get("url"), str):
            return source["url"]
    raise BadRequest(f"{where}.source must be a base64 or url image source", param=f"{where}.source")


def document_part(source: Any, title: Any, where: str) -> dict[str, Any]:
    if isinstance(source, dict):
        if source.get("type") == "text" and isinstance(source.get("data"), str):
            return {"type": "text", "text": source["data"]}
        if source.get("type") == "base64" and isinstance(source.get("data"), str):
            media_type = source.get("media_type") or "application/pdf"
            name = title if isinstance(title, str) and title else "document.pdf"
            return {"type": "file", "file": {"filename": name, "file_data": f"data:{media_type};base64,{source['data']}"}}
    raise BadRequest(f"{where}.source must be a text or base64 document source", param=f"{where}.source")


def tool_result(block: dict[str, Any], where: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A `tool` message; images in the result follow in the next user message (tool messages hold text only)."""
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise BadRequest(f"{where}.tool_use_id is required", param=f"{where}.tool_use_id")
    content = block.get("content", "")
    images: list[dict[str, Any]] = []
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            inner = f"{where}.content[{j}]"
            if isinstance(part, dict) and part.get("type") == "image":
                images.append({"type": "image_url", "image_url": {"url": image_url(part.get("source"), inner)}})
            else:
                texts.append(_text_of(part, inner))
        text = "\n".join(texts)
    else:
        raise BadRequest(f"{where}.content must be a string or a list of blocks", param=f"{where}.content")
    if block.get("is_error") is True:
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": tool_use_id, "content": text}, images


def assistant_turn(blocks: Blocks, lenient: bool = False) -> list[dict[str, Any]]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for where, block in blocks:
        kind = block["type"]
        if kind == "text":
            texts.append(_text_of(block, where))
        elif kind == "tool_use":
            calls.append(tool_call(block, where))
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            _untranslatable(kind, where, lenient)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return [message]


def tool_call(block: dict[str, Any], where: str) -> dict[str, Any]:
    call_id, name = block.get("id"), block.get("name")
    if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
        raise BadRequest(f"{where}: a tool_use block needs an 'id' and a 'name'", param=where)
    arguments = block.get("input", {})
    if not isinstance(arguments, dict):
        raise BadRequest(f"{where}.input must be an object", param=f"{where}.input")
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": orjson.dumps(arguments).decode()}}


def tool_definitions(tools: Any) -> list[dict[str, Any]]:
    """Client tools as OpenAI functions. Anthropic's server tools (a versioned `type`) have no equivalent."""
    if not isinstance(tools, list):
        raise BadRequest("'tools' must be a list", param="tools")
    out = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not tool["name"]:
            raise BadRequest(f"{where} must be an object with a 'name'", param=where)
        if tool.get("type") not in (None, "custom"):
            continue
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise BadRequest(f"{where}.input_schema must be a JSON Schema object", param=f"{where}.input_schema")
        function: dict[str, Any] = {"name": tool["name"], "parameters": schema}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _copy_tool_choice(choice: Any, out: dict[str, Any]) -> None:
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool" and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise BadRequest("'tool_choice' must be {type: auto|any|none} or {type: tool, name}", param="tool_choice")
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        out["parallel_tool_calls"] = False


def _copy_sampling(body: dict[str, Any], out: dict[str, Any]) -> None:
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None:
            if not _is_number(value):
                raise BadRequest(f"'{name}' must be a number", param=name)
            out[name] = value
    top_k = body.get("top_k")
    if top_k is not None and not _is_int(top_k):
        raise BadRequest("'top_k' must be an integer", param="top_k")
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise BadRequest("'stop_sequences' must be a list of strings", param="stop_sequences")
        if stops:
            out["stop"] = stops


def _copy_output_format(config: Any, out: dict[str, Any]) -> None:
    """Structured output (`output_config.format`) is OpenAI's `response_format: json_schema`."""
    if not isinstance(config, dict):
        return
    fmt = config.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        out["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt["schema"], "strict": True}}
