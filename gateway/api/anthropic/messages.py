"""POST /v1/messages and /v1/messages/count_tokens: Anthropic's Messages API.

The client's body is translated once into the pipeline's shape and served by the same
pipeline as /v1/chat/completions: same routes, keys, limits, cache and fallbacks. The
client's own body goes along too: a target whose pack speaks Anthropic's API is sent it
as it is, and its answer or stream comes back untouched; any other target's answer, or
its stream's events, is written here in Anthropic's shape. Errors are too, so
Anthropic's SDKs raise their own exception classes.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.api.anthropic.request import Untranslatable, prompt_to_openai, to_openai
from gateway.api.anthropic.shape import (
    GATEWAY_SIGNATURE,
    error_body,
    from_openai,
    wants_thinking,
)
from gateway.api.anthropic.stream import WIRE, MessageEvents, anthropic_sse
from gateway.api.body import read_json
from gateway.api.endpoint import Exchange, JSONAnswer, endpoint, json_response
from gateway.api.openai.stream import HEADERS as SSE_HEADERS
from gateway.config.snapshot import Snapshot
from gateway.pipeline.complete import complete
from gateway.pipeline.identify import authorize, identify
from gateway.pipeline.plan import MAX_TIER_HEADER, PROVIDER_HEADER, find_route
from gateway.pipeline.request import USER_HEADER, ModelRequest, chat_request
from gateway.pipeline.runtime import Runtime
from gateway.providers.packs.wire import pack_of
from gateway.providers.tokens import estimate_prompt_tokens

FORWARDED_HEADERS = ("anthropic-beta",)  # what the client asks of Anthropic that the body cannot say


def speaks_messages(snapshot: Snapshot, alias: str) -> bool:
    """Whether some target of the route takes an Anthropic body as it is."""
    route = snapshot.routes.get(alias)
    if route is None and snapshot.addresses is not None:  # `anthropic/claude-…` named directly, or a pattern route
        route = snapshot.addresses.route(alias, "chat")
    return route is not None and any(WIRE in pack_of(rt.target).speaks for rt in route.targets)


def openai_body(snapshot: Snapshot, body: dict[str, Any]) -> dict[str, Any]:
    """The body in the pipeline's shape, for the route's other targets.

    Blocks OpenAI's shape cannot hold (server tool results and the like) are refused,
    unless the route has an Anthropic target that can take the body as it is: then they
    are left out only for the targets that could not read them anyway.
    """
    try:
        return to_openai(body)
    except Untranslatable:
        if not speaks_messages(snapshot, body["model"]):  # a string: to_openai checked it first
            raise
        return to_openai(body, lenient=True)


def read_messages(snapshot: Snapshot, body: dict[str, Any], headers: Headers) -> ModelRequest:
    return chat_request(
        WIRE, openai_body(snapshot, body),
        native_body=without_gateway_thinking(body),
        native_headers={name: headers[name] for name in FORWARDED_HEADERS if name in headers},
        max_tier=headers.get(MAX_TIER_HEADER),
        cache_control=headers.get("cache-control"),
        provider=headers.get(PROVIDER_HEADER),
        user=headers.get(USER_HEADER),
    )


def without_gateway_thinking(body: dict[str, Any]) -> dict[str, Any]:
    """The body for an Anthropic target: the thinking blocks the gateway wrote from another
    model's reasoning (its signature, which Anthropic would refuse) left out of the
    assistant turns that carry them; the body itself when there are none."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not any(_gateway_thinking(m) for m in messages):
        return body
    kept = []
    for message in messages:
        if _gateway_thinking(message):
            message = {**message, "content": [b for b in message["content"] if not _signed_here(b)]}
        kept.append(message)
    return {**body, "messages": kept}


def _gateway_thinking(message: Any) -> bool:
    return (isinstance(message, dict) and message.get("role") == "assistant" and isinstance(message.get("content"), list)
            and any(_signed_here(b) for b in message["content"]))


def _signed_here(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "thinking" and block.get("signature") == GATEWAY_SIGNATURE


@endpoint("messages", error_body=error_body)
async def create_message(request: Request, exchange: Exchange) -> Response:
    runtime: Runtime = request.app.state.runtime
    snapshot = runtime.snapshot
    key = await identify(snapshot, request.headers, runtime.key_sets)
    body = await read_json(request, snapshot.max_body_bytes)
    model_request = read_messages(snapshot, body, request.headers)
    thinking = wants_thinking(body)
    done = await complete(runtime, snapshot, key, model_request, exchange)
    stream = done.outcome.stream
    if stream is not None:
        events = anthropic_sse(stream, MessageEvents(done.model, model_request.prompt_tokens, thinking))
        return StreamingResponse(events, media_type="text/event-stream", headers={**done.headers, **SSE_HEADERS})
    answer = done.outcome.answer
    assert answer is not None
    if answer.raw is not None and answer.wire == WIRE:
        return JSONAnswer(answer.raw, headers=done.headers)
    return json_response(from_openai(answer.body, done.model, thinking), headers=done.headers)


@endpoint("count_tokens", error_body=error_body)
async def count_tokens(request: Request, exchange: Exchange) -> Response:
    """An estimate made in the gateway (about four characters a token), not a provider's count.

    It answers without an upstream call, so it is free and works for every route; the
    same estimate is what limits and context-window checks use before a request is sent.
    """
    runtime: Runtime = request.app.state.runtime
    snapshot = runtime.snapshot
    key = await identify(snapshot, request.headers, runtime.key_sets)
    body = await read_json(request, snapshot.max_body_bytes)
    prompt = prompt_to_openai(body, lenient=True)
    alias = prompt["model"]
    authorize(key, alias, find_route(snapshot, alias, "chat"))
    exchange.route = alias
    headers = {"x-gateway-route": alias, "x-gateway-config": snapshot.version, "x-gateway-estimate": "true"}
    return json_response({"input_tokens": estimate_prompt_tokens(prompt)}, headers=headers)
