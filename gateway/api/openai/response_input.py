"""A Responses API request, read into the pipeline's chat body.

`/v1/responses` is the third front-end on the shared pipeline: its body is checked and
translated here, once, into the chat body every pack renders from, so routes, limits,
cache, fallbacks and every provider serve Responses clients with no translator per
provider. A target whose pack speaks the Responses API natively is sent the client's
own body instead (with the conversation the gateway keeps written into `input`).

The conversation: input items, normalised to the API's item shapes with ids, are what a
stored response keeps and what `previous_response_id` continues from.

What chat completions cannot carry (built-in tools such as web search, item references,
reasoning items) is refused with a 400 naming the field, unless the route has a target
that takes the body as it is: then only that target is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers

from gateway.api import parameters
from gateway.api.openai import compaction
from gateway.config.snapshot import RESPONSES_API, Snapshot
from gateway.errors import BadRequest
from gateway.ids import new_id
from gateway.pipeline.plan import MAX_TIER_HEADER
from gateway.pipeline.request import USER_HEADER, ModelRequest, chat_request

INPUT_ROLES = ("user", "system", "developer", "assistant")
# The id prefix of reasoning items the gateway makes from a chat target's text: no provider
# could read one back, so a conversation sent on to a Responses target leaves them out.
GATEWAY_REASONING = "rs_gw"
PHASES = ("commentary", "final_answer")  # an assistant message's `phase`: kept and sent back as given

# Optional fields the gateway reads, and the JSON types each must have.
_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "instructions": ((str,), "a string"),
    "stream": ((bool,), "a boolean"),
    "store": ((bool,), "a boolean"),
    "background": ((bool,), "a boolean"),
    "parallel_tool_calls": ((bool,), "a boolean"),
    "tools": ((list,), "a list"),
    "tool_choice": ((str, dict), "a string or an object"),
    "text": ((dict,), "an object"),
    "reasoning": ((dict,), "an object"),
    "metadata": ((dict,), "an object"),
    "user": ((str,), "a string"),
    "previous_response_id": ((str,), "a string"),
}
_UNSUPPORTED = {
    "background": "background responses are not supported by the gateway: send the request without 'background'",
    "conversation": "'conversation' objects are not supported: continue with 'previous_response_id'",
    "prompt": "stored prompt templates are not supported: send 'instructions' and 'input'",
}


class Untranslatable(BadRequest):
    """A well-formed part of a Responses body that chat completions have no place for."""


@dataclass(frozen=True, slots=True)
class ResponsesCall:
    """A Responses request as the front-end keeps it: the client's body, the conversation the
    model sees (the stored one, then this request's input), and the pipeline's request."""

    body: dict[str, Any]
    alias: str
    input: list[dict[str, Any]]  # every input item the model sees, with ids: what a stored response keeps
    store: bool
    request: ModelRequest


def item_id(prefix: str) -> str:
    """A new id such as `resp_…`, `msg_…`, `fc_…`: 128 random bits."""
    return new_id(prefix)


def check_body(body: dict[str, Any]) -> str:
    """The alias; every field the gateway reads checked, so a bad one is a 400 naming it."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required and must be a string naming a route", param="model")
    for name, value in body.items():
        if name in _UNSUPPORTED and value not in (None, False):
            raise BadRequest(_UNSUPPORTED[name], param=name, code="unsupported_parameter")
        rule = _FIELDS.get(name)
        if rule is None or value is None:
            continue
        kinds, what = rule
        if not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds:
            raise BadRequest(f"'{name}' must be {what}", param=name, code="invalid_type")
    parameters.check_bounds(body, parameters.OPENAI_RESPONSES)  # numbers and their ranges
    if body.get("tools") is not None:
        parameters.check_function_tools(body["tools"], nested=False)
    if "input" not in body or body["input"] is None:
        raise BadRequest("'input' is required: a string or a list of input items", param="input")
    return model


# ------------------------------------------------------------------ input items


def input_items(raw: Any) -> list[dict[str, Any]]:
    """The request's input as the API's items, each with an id (a string is one user message)."""
    if isinstance(raw, str):
        return [_message("user", [{"type": "input_text", "text": raw}])]
    if not isinstance(raw, list):
        raise BadRequest("'input' must be a string or a list of input items", param="input")
    return [_item(entry, f"input[{i}]") for i, entry in enumerate(raw)]


def _message(role: str, content: list[dict[str, Any]], given: str | None = None,
             phase: str | None = None) -> dict[str, Any]:
    message = {"id": given or item_id("msg"), "type": "message", "role": role, "status": "completed",
               "content": content}
    if phase is not None:
        message["phase"] = phase
    return message


def _item(entry: Any, where: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise BadRequest(f"{where} must be an object", param=where)
    kind = entry.get("type", "message")
    given = entry.get("id") if isinstance(entry.get("id"), str) else None
    if kind == "message":
        role = entry.get("role")
        if role not in INPUT_ROLES:
            raise BadRequest(f"{where}.role must be one of {', '.join(INPUT_ROLES)}", param=f"{where}.role")
        phase = entry.get("phase")
        if phase is not None and phase not in PHASES:
            raise BadRequest(f"{where}.phase must be one of {', '.join(PHASES)}", param=f"{where}.phase")
        kept_phase = phase if role == "assistant" else None  # the API uses it on assistant messages only
        return _message(role, _content(entry.get("content"), role, f"{where}.content"), given, kept_phase)
    if kind == "function_call":
        for name in ("call_id", "name"):
            if not isinstance(entry.get(name), str) or not entry[name]:
                raise BadRequest(f"{where}.{name} is required", param=f"{where}.{name}")
        arguments = entry.get("arguments", "")
        if not isinstance(arguments, str):
            raise BadRequest(f"{where}.arguments must be a string of JSON", param=f"{where}.arguments")
        return {"id": given or item_id("fc"), "type": "function_call", "call_id": entry["call_id"],
                "name": entry["name"], "arguments": arguments, "status": "completed"}
    if kind == "function_call_output":
        if not isinstance(entry.get("call_id"), str) or not entry["call_id"]:
            raise BadRequest(f"{where}.call_id is required", param=f"{where}.call_id")
        output = entry.get("output")
        if not isinstance(output, (str, list)):
            raise BadRequest(f"{where}.output must be a string or a list of content parts", param=f"{where}.output")
        return {"id": given or item_id("fco"), "type": "function_call_output", "call_id": entry["call_id"],
                "output": output, "status": "completed"}
    if kind == "compaction":
        if not isinstance(entry.get("encrypted_content"), str) or not entry["encrypted_content"]:
            raise BadRequest(f"{where}.encrypted_content is required", param=f"{where}.encrypted_content")
        item = {"id": given or item_id("cmp"), "type": "compaction", "encrypted_content": entry["encrypted_content"]}
        if compaction.is_ours(item):
            compaction.summary_of(item, where)  # a damaged one is refused here, whichever target is used
        return item
    if not isinstance(kind, str):
        raise BadRequest(f"{where}.type must be a string", param=f"{where}.type")
    return dict(entry)  # reasoning, item_reference, hosted tool calls: kept for a native target


def _content(content: Any, role: str, where: str) -> list[dict[str, Any]]:
    """A message's content as a list of parts (a string becomes one text part)."""
    text_type = "output_text" if role == "assistant" else "input_text"
    if isinstance(content, str):
        part: dict[str, Any] = {"type": text_type, "text": content}
        if role == "assistant":
            part.update(annotations=[], logprobs=[])
        return [part]
    if not isinstance(content, list):
        raise BadRequest(f"{where} must be a string or a list of content parts", param=where)
    parts = []
    for i, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise BadRequest(f"{where}[{i}] must be a content part with a 'type'", param=f"{where}[{i}]")
        if part["type"] in ("input_text", "output_text") and not isinstance(part.get("text"), str):
            raise BadRequest(f"{where}[{i}].text must be a string", param=f"{where}[{i}].text")
        if part["type"] == "output_text" and role == "assistant":
            part = {"annotations": [], "logprobs": [], **part}
        parts.append(part)
    return parts


# --------------------------------------------------------------- to chat messages


def chat_messages(instructions: str | None, items: list[dict[str, Any]], lenient: bool) -> list[dict[str, Any]]:
    """The chat messages that say what these items say: function calls join the assistant
    turn before them, outputs become `tool` messages."""
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    for index, item in enumerate(items):
        where = f"input[{index}]"
        kind = item["type"]
        if kind == "message":
            messages.append(_chat_message(item, where, lenient))
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"] or "{}"}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":  # text and calls of one turn
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": _output_text(item["output"])})
        elif kind == "reasoning":
            continue  # a model's own reasoning: chat targets take none back
        elif compaction.is_ours(item):
            messages.append(compaction.summary_message(item, where))
        elif not lenient:
            raise Untranslatable(f"{where}: item type '{kind}' can only be sent to a target that speaks the "
                                 "Responses API", param=where)
    return messages


def _chat_message(item: dict[str, Any], where: str, lenient: bool) -> dict[str, Any]:
    role = item["role"]
    parts = item["content"]
    if role == "assistant":
        text = "".join(str(p.get("text") or p.get("refusal") or "") for p in parts
                       if p.get("type") in ("output_text", "input_text", "refusal"))
        return {"role": "assistant", "content": text}
    chat_parts = []
    texts = True
    for i, part in enumerate(parts):
        converted = _chat_part(part, where, i, lenient)
        if converted is not None:
            chat_parts.append(converted)
            texts = texts and converted["type"] == "text"
    if texts:
        return {"role": role, "content": "".join(p["text"] for p in chat_parts)}
    return {"role": role, "content": chat_parts}


def _chat_part(part: dict[str, Any], message: str, index: int, lenient: bool) -> dict[str, Any] | None:
    kind = part["type"]
    where = f"{message}.content[{index}]" if kind not in ("input_text", "output_text") else ""
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": part["text"]}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            if lenient:
                return None
            raise Untranslatable(f"{where}: an input_image needs an 'image_url' (a URL or a data URL); file ids "
                                 "are not supported", param=f"{where}.image_url")
        image: dict[str, Any] = {"url": url}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        data = part.get("file_data")
        if isinstance(data, str) and data:
            return {"type": "file", "file": {"filename": str(part.get("filename") or "file"), "file_data": data}}
    if lenient:
        return None
    raise Untranslatable(f"{where}: content part '{kind}' can only be sent to a target that speaks the Responses "
                         "API", param=where)


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    return "".join(str(p.get("text") or "") for p in output if isinstance(p, dict))


# ---------------------------------------------------------------- other fields


def chat_tools(tools: list[Any], lenient: bool) -> list[dict[str, Any]]:
    """Function tools in chat's shape; a hosted tool (web search, ...) only a native target runs."""
    out = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise BadRequest(f"{where} must be an object", param=where)
        if tool.get("type") != "function":
            if lenient:
                continue
            raise Untranslatable(f"{where}: tool type '{tool.get('type')}' can only be sent to a target that speaks "
                                 "the Responses API; function tools work everywhere", param=f"{where}.type")
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise BadRequest(f"{where}.name is required", param=f"{where}.name")
        function: dict[str, Any] = {"name": name}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                function[key] = tool[key]
        out.append({"type": "function", "function": function})
    return out


def chat_tool_choice(choice: Any, lenient: bool) -> Any:
    if choice is None or isinstance(choice, str):
        if choice not in (None, "auto", "none", "required"):
            raise BadRequest("'tool_choice' must be auto, none, required or an object", param="tool_choice")
        return choice
    kind = choice.get("type")
    if kind == "function":
        if not isinstance(choice.get("name"), str):
            raise BadRequest("tool_choice.name is required for a function", param="tool_choice.name")
        return {"type": "function", "function": {"name": choice["name"]}}
    if kind == "allowed_tools":
        return "required" if choice.get("mode") == "required" else "auto"
    if lenient:
        return None
    raise Untranslatable(f"tool_choice type '{kind}' can only be sent to a target that speaks the Responses API",
                         param="tool_choice")


def response_format(text: Any) -> dict[str, Any] | None:
    """`text.format` as chat's `response_format` (plain text asks for nothing)."""
    if not isinstance(text, dict) or text.get("format") is None:
        return None
    fmt = text["format"]
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        if not isinstance(fmt.get("name"), str) or not isinstance(fmt.get("schema"), dict):
            raise BadRequest("text.format of type json_schema needs a 'name' and a 'schema' object",
                             param="text.format")
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if fmt.get(k) is not None}
        return {"type": "json_schema", "json_schema": schema}
    raise BadRequest("text.format.type must be text, json_object or json_schema", param="text.format.type")


def chat_body(body: dict[str, Any], alias: str, items: list[dict[str, Any]], lenient: bool) -> dict[str, Any]:
    """The chat completions body asking for what this Responses body asks for."""
    messages = chat_messages(body.get("instructions"), items, lenient)
    if not messages:
        raise BadRequest("'input' has nothing to send: give at least one message", param="input")
    out: dict[str, Any] = {"model": alias, "messages": messages}
    tools = chat_tools(body.get("tools") or [], lenient)
    if tools:
        out["tools"] = tools
        choice = chat_tool_choice(body.get("tool_choice"), lenient)
        if choice is not None:
            out["tool_choice"] = choice
        if isinstance(body.get("parallel_tool_calls"), bool):
            out["parallel_tool_calls"] = body["parallel_tool_calls"]
    for name in ("temperature", "top_p", "user"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("max_output_tokens") is not None:
        out["max_tokens"] = body["max_output_tokens"]
    fmt = response_format(body.get("text"))
    if fmt is not None:
        out["response_format"] = fmt
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def native_body(body: dict[str, Any], items: list[dict[str, Any]], continued: bool) -> dict[str, Any]:
    """The client's own body for a target that speaks the Responses API: as written, or,
    when it continues a stored conversation, with that conversation written into `input`
    (the gateway keeps conversations, so the upstream need not know the previous id).
    The gateway's own compaction items, which no upstream can read, become the summary
    they carry, and the reasoning items it wrote from a chat target's text are left out."""
    if not continued and not any(compaction.is_ours(item) or _made_here(item) for item in items):
        return body
    out = {k: v for k, v in body.items() if k != "previous_response_id"}
    out["input"] = [_upstream_item(item, f"input[{i}]") for i, item in enumerate(items) if not _made_here(item)]
    return out


def _made_here(item: dict[str, Any]) -> bool:
    """A reasoning item the gateway wrote from a chat target's text: no upstream takes it back."""
    return item["type"] == "reasoning" and str(item.get("id", "")).startswith(GATEWAY_REASONING + "_")


def _upstream_item(item: dict[str, Any], where: str) -> dict[str, Any]:
    """An item as an upstream takes it back: the gateway's own ids and statuses left out."""
    if compaction.is_ours(item):
        return compaction.summary_item(item, where)
    if item["type"] in ("message", "function_call", "function_call_output", "compaction"):
        return {k: v for k, v in item.items() if k not in ("id", "status")}
    return item


def speaks_responses(snapshot: Snapshot, alias: str) -> bool:
    route = snapshot.routes.get(alias)
    return route is not None and any(RESPONSES_API in rt.target.speaks for rt in route.targets)


def read_responses(
    snapshot: Snapshot, body: dict[str, Any], headers: Headers, context: list[dict[str, Any]]
) -> ResponsesCall:
    """The call for this body, `context` being the stored conversation it continues (if any)."""
    alias = check_body(body)
    items = context + input_items(body["input"])
    native_only: tuple[str, ...] = ()
    try:
        chat = chat_body(body, alias, items, lenient=False)
    except Untranslatable as refused:
        if not speaks_responses(snapshot, alias):
            raise
        chat = chat_body(body, alias, items, lenient=True)
        native_only = (refused.param or "input",)
    request = chat_request(
        RESPONSES_API, chat, native_body=native_body(body, items, bool(context)), native_only=native_only,
        max_tier=headers.get(MAX_TIER_HEADER), cache_control=headers.get("cache-control"),
        user=headers.get(USER_HEADER), ceiling_name="max_output_tokens",
    )
    store = body.get("store") is not False
    return ResponsesCall(body, alias, items, store, request)
