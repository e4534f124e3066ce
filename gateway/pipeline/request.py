"""The one typed value a client's request becomes, whatever API it came in by.

An API front-end reads the client's body once, checks it, and builds a `ModelRequest`:
the alias, the kind of call, whether it streams, what it needs of a model, its prompt
estimate and output ceiling, and the body in the pipeline's own shape (the chat or
embeddings body every pack renders from, which is OpenAI's). Planning, admission, the
cache, dispatch and accounting read this value; none of them goes back to the raw body
to count tokens again.

A front-end whose API some provider speaks natively (Anthropic's Messages) also hands
over the client's own body: a target whose pack `speaks` that API is sent it as it is.
The pipeline compares the names; it never branches on which API it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Any

from gateway.errors import BadRequest
from gateway.pipeline.mapping import has_images, used_fields
from gateway.providers.tokens import estimate_input_tokens, survey_prompt
from gateway.values import value

CHAT = "chat"
EMBEDDING = "embedding"
USER_HEADER = "x-gateway-user"  # the end user an app serving many users names, beside the body's `user`
MAX_USER_LENGTH = 256


@value
class ModelRequest:
    api: str  # the client's API ("openai", "anthropic", ...): a pack that speaks it gets `native_body`
    kind: str  # CHAT | EMBEDDING: the kind of route that serves it
    alias: str
    body: dict[str, Any]  # in the pipeline's shape: OpenAI's chat or embeddings body
    stream: bool = False
    needs: frozenset[str] = frozenset()  # tools | vision | json: what a target must support
    fields: frozenset[str] = frozenset()  # fields that change the answer's meaning: a target's pack must carry them
    prompt_tokens: int = 0  # estimated before any upstream call
    output_tokens: int | None = None  # the output ceiling the client asked for, if any
    output_field: str = "max_tokens"  # the client's name for that ceiling, for errors
    include_usage: bool = False  # a streamed answer ends with usage (OpenAI's stream_options)
    native_body: dict[str, Any] | None = None  # the client's own body, for a pack that speaks `api`
    native_headers: Mapping[str, str] = field(default_factory=dict)  # client headers such a pack is sent
    native_only: tuple[str, ...] = ()  # fields only a target taking `native_body` can honour
    max_tier: str | None = None  # the request's own tier cap (x-gateway-max-tier)
    cache_control: str | None = None  # the request's cache-control header
    choices: int = 1  # answers asked for (OpenAI's `n`): output estimates count each of them
    provider: str | None = None  # the request's x-gateway-provider: one provider among the route's targets
    user: str | None = None  # the request's x-gateway-user: the end user an app names (beside the body's `user`)


def chat_request(api: str, body: dict[str, Any], ceiling_name: str | None = None, **extra: Any) -> ModelRequest:
    """A chat request from a checked body in the pipeline's shape: needs and estimates, once.

    `ceiling_name` is the client's own name for the output ceiling where its API calls it
    something else than chat does (Responses' `max_output_tokens`), for the errors it reads."""
    ceiling, field_name = output_ceiling(body)
    if ceiling_name is not None and ceiling is not None:
        field_name = ceiling_name
    options = body.get("stream_options")
    prompt, images = survey_prompt(body)
    # By position, in the fields' order: a call naming sixteen keywords spends more on
    # matching them than the record costs to build, once per request.
    return ModelRequest(
        api,  # api
        CHAT,  # kind
        body["model"],  # alias
        body,  # body
        body.get("stream") is True,  # stream
        required_capabilities(body, images),  # needs
        used_fields(body, images),  # fields
        prompt,  # prompt_tokens
        ceiling,  # output_tokens
        field_name,  # output_field
        isinstance(options, dict) and options.get("include_usage") is True,  # include_usage
        choices=answer_count(body),
        **extra,
    )


def embedding_request(api: str, body: dict[str, Any], **extra: Any) -> ModelRequest:
    return ModelRequest(
        api=api, kind=EMBEDDING, alias=body["model"], body=body,
        prompt_tokens=estimate_input_tokens(body.get("input")), **extra,
    )


def end_user(request: ModelRequest) -> str | None:
    """The end user a request names: x-gateway-user, else the body's `user` (OpenAI's field;
    Anthropic's metadata.user_id arrives as it), else the client's own body's. A name longer
    than any user id is refused rather than cut, so two users never share one counter."""
    named = request.user
    if not named:
        named = request.body.get("user")
        if not named and request.native_body is not None:
            named = request.native_body.get("user")
    if not isinstance(named, str) or not named:
        return None
    if len(named) > MAX_USER_LENGTH:
        raise BadRequest(f"the end user's id is longer than {MAX_USER_LENGTH} characters", param="user")
    return named


def output_ceiling(body: dict[str, Any]) -> tuple[int | None, str]:
    """The most output tokens the request asks for, and the field that says so."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value, name
    return None, "max_tokens"


def answer_count(body: dict[str, Any]) -> int:
    """How many answers the body asks for (`n`, checked by the front-end): each costs output."""
    n = body.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1


def required_capabilities(body: dict[str, Any], images: bool | None = None) -> frozenset[str]:
    """What a target's `supports` must include to take this chat body. `images`: whether a
    message carries one, when the caller has already walked the messages."""
    needs: set[str] = set()
    if body.get("tools") or body.get("functions"):
        needs.add("tools")
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema"):
        needs.add("json")
    if images is None:
        images = has_images(body)
    if images:
        needs.add("vision")
    return frozenset(needs)
