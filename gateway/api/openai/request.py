"""Reading an OpenAI client's body into the pipeline's `ModelRequest`.

Only the fields the gateway itself acts on are checked; anything else passes through
to the provider untouched, so new OpenAI parameters work without a release. OpenAI's
chat and embeddings bodies already are the pipeline's own shape: the body is handed
on as it is.
"""

from __future__ import annotations

from typing import Any, NoReturn

from starlette.datastructures import Headers

from gateway.api import parameters
from gateway.errors import BadRequest
from gateway.pipeline.plan import MAX_TIER_HEADER, PROVIDER_HEADER
from gateway.pipeline.request import (
    USER_HEADER,
    ModelRequest,
    chat_request,
    embedding_request,
)

API = "openai"
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def read_chat(body: dict[str, Any], headers: Headers) -> ModelRequest:
    model_of(body)
    check_chat(body)
    return chat_request(
        API, body, max_tier=headers.get(MAX_TIER_HEADER), cache_control=headers.get("cache-control"),
        provider=headers.get(PROVIDER_HEADER), user=headers.get(USER_HEADER),
    )


def read_embeddings(body: dict[str, Any], headers: Headers) -> ModelRequest:
    model_of(body)
    check_embeddings(body)
    return embedding_request(
        API, body, max_tier=headers.get(MAX_TIER_HEADER), cache_control=headers.get("cache-control"),
        provider=headers.get(PROVIDER_HEADER), user=headers.get(USER_HEADER),
    )


# The optional chat fields the gateway reads, and the JSON types each must have.
_CHAT_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "stream": ((bool,), "a boolean"),
    "max_tokens": ((int,), "an integer"),
    "max_completion_tokens": ((int,), "an integer"),
    "n": ((int,), "an integer"),
    "temperature": ((int, float), "a number"),
    "top_p": ((int, float), "a number"),
    "tools": ((list,), "a list"),
    "stream_options": ((dict,), "an object"),
    "response_format": ((dict,), "an object"),
    "stop": ((str, list), "a string or a list of strings"),
}


def _check_types(body: dict[str, Any], rules: dict[str, tuple[tuple[type, ...], str]]) -> None:
    """Each field the body has that `rules` names must be null or of its types (a bool is
    not an integer). Walks the body's few fields rather than every rule."""
    for name, value in body.items():
        rule = rules.get(name)
        if rule is None or value is None:
            continue
        kinds, what = rule
        if not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds:
            raise BadRequest(f"'{name}' must be {what}", param=name, code="invalid_type")


def model_of(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required and must be a string naming a route", param="model")
    return model


def check_chat(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' is required and must be a non-empty list", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequest(f"messages[{i}] must be an object", param=f"messages[{i}]")
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise BadRequest(f"messages[{i}].role must be one of {', '.join(sorted(ROLES))}", param=f"messages[{i}].role")
        content = message.get("content")
        if isinstance(content, list):
            parameters.check_content_parts(content, f"messages[{i}].content")
        elif content is None:
            _check_contentless(message, role, i)
        elif not isinstance(content, str):
            raise BadRequest(f"messages[{i}].content must be a string or a list of parts", param=f"messages[{i}].content")
        calls = message.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            raise BadRequest(f"messages[{i}].tool_calls must be a list", param=f"messages[{i}].tool_calls",
                             code="invalid_type")
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            _missing(f"messages[{i}].tool_call_id")
    _check_types(body, _CHAT_FIELDS)
    parameters.check_bounds(body, parameters.OPENAI_CHAT)
    if body.get("tools") is not None:
        parameters.check_function_tools(body["tools"])


# What an assistant message may carry instead of content (OpenAI: content is "required
# unless tool_calls or function_call is specified"; a refusal or an earlier audio reply
# also stands for it).
_INSTEAD_OF_CONTENT = ("tool_calls", "function_call", "refusal", "audio")


def _check_contentless(message: dict[str, Any], role: str, i: int) -> None:
    """A message whose content is missing or null: only an assistant turn that carries
    something else may have none (and a legacy function result, whose content is nullable).
    Every provider refuses the rest, so the client hears it here, in its own API's words,
    before a limit is drawn from or an upstream called."""
    if role == "function" or role == "assistant" and any(message.get(k) for k in _INSTEAD_OF_CONTENT):
        return
    _missing(f"messages[{i}].content")


def _missing(param: str) -> NoReturn:
    raise BadRequest(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def check_embeddings(body: dict[str, Any]) -> None:
    dimensions = body.get("dimensions")
    if dimensions is not None and (not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1):
        raise BadRequest("'dimensions' must be a positive integer", param="dimensions", code="invalid_type")
    value = body.get("input")
    if isinstance(value, str):
        return
    if isinstance(value, list) and value and (
        all(isinstance(v, str) for v in value)  # several texts
        or all(_is_token(v) for v in value)  # one text as tokens
        or all(isinstance(v, list) and v and all(_is_token(t) for t in v) for v in value)  # several, as tokens
    ):
        return
    raise BadRequest("'input' is required: a string, a list of strings, a list of tokens or a list of token lists "
                     "(not a mix)", param="input")


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
