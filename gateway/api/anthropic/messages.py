"""POST /v1/messages and /v1/messages/count_tokens: Anthropic's Messages API.

The client's body is translated to OpenAI's chat shape once and served by the same
request path as /v1/chat/completions (`completion.complete`): same routes, keys, limits,
cache and fallbacks. A target whose pack is `anthropic` is sent the client's own body
instead (`anthropic_native`) and its answer comes back untouched; any other target's
answer, or each of its stream events, is written back in Anthropic's shape. Errors are
too, so Anthropic's SDKs raise their own exception classes.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.api.anthropic.native import NativeMessages, speaks_messages
from gateway.api.anthropic.request import Untranslatable, prompt_to_openai, to_openai
from gateway.api.anthropic.shape import error_body, from_openai
from gateway.api.anthropic.stream import MessageEvents, anthropic_events
from gateway.pipeline.identify import authorize, identify
from gateway.api.openai.chat import SSE_HEADERS
from gateway.pipeline.complete import CHAT, complete
from gateway.api.endpoint import Exchange, endpoint, json_response
from gateway.api.body import read_json
from gateway.pipeline.plan import MAX_TIER_HEADER, find_route
from gateway.pipeline.runtime import Runtime
from gateway.config.snapshot import Snapshot
from gateway.providers.tokens import estimate_prompt_tokens


def openai_body(snapshot: Snapshot, body: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI-shaped body for the route's other targets.

    Blocks OpenAI's shape cannot hold (server tool results and the like) are refused,
    unless the route has an Anthropic target that can take the body as it is: then they
    are left out only for the targets that could not read them anyway.
    """
    try:
        return to_openai(body)
    except Untranslatable:
        route = snapshot.routes.get(body["model"])  # a string: to_openai checked it first
        if route is not None and not any(speaks_messages(rt.target) for rt in route.targets):
            raise
        return to_openai(body, lenient=True)


@endpoint("messages", error_body=error_body)
async def create_message(request: Request, exchange: Exchange) -> Response:
    runtime: Runtime = request.app.state.runtime
    snapshot = runtime.snapshot
    key = identify(snapshot, request.headers)
    body = await read_json(request, snapshot.max_body_bytes)
    chat_body = openai_body(snapshot, body)
    native = NativeMessages.of(body, chat_body, request.headers)
    done = await complete(
        runtime, snapshot, key, chat_body, exchange, CHAT, request.headers.get(MAX_TIER_HEADER), native,
        request.headers.get("cache-control"),
    )
    outcome = done.outcome
    model = outcome.target.model  # type: ignore[union-attr]
    if outcome.native_stream:
        return StreamingResponse(outcome.stream, media_type="text/event-stream", headers={**done.headers, **SSE_HEADERS})
    if outcome.native_answer is not None:
        return Response(outcome.native_answer, headers=done.headers, media_type="application/json")
    if outcome.stream is not None:
        state = MessageEvents(model, estimate_prompt_tokens(chat_body))
        events = anthropic_events(outcome.stream, state)
        return StreamingResponse(events, media_type="text/event-stream", headers={**done.headers, **SSE_HEADERS})
    return json_response(from_openai(outcome.answer or {}, model), headers=done.headers)


@endpoint("count_tokens", error_body=error_body)
async def count_tokens(request: Request, exchange: Exchange) -> Response:
    """An estimate made in the gateway (about four characters a token), not a provider's count.

    It answers without an upstream call, so it is free and works for every route; the
    same estimate is what limits and context-window checks use before a request is sent.
    """
    runtime: Runtime = request.app.state.runtime
    snapshot = runtime.snapshot
    key = identify(snapshot, request.headers)
    body = await read_json(request, snapshot.max_body_bytes)
    prompt = prompt_to_openai(body, lenient=True)
    alias = prompt["model"]
    find_route(snapshot, alias, "chat")
    authorize(key, alias)
    exchange.route = alias
    headers = {"x-gateway-route": alias, "x-gateway-config": snapshot.version, "x-gateway-estimate": "true"}
    return json_response({"input_tokens": estimate_prompt_tokens(prompt)}, headers=headers)
