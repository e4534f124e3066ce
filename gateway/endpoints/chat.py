"""POST /v1/chat/completions: the request path, top to bottom."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.auth import authorize, identify
from gateway.dispatch import NativeCall, Outcome, dispatch_chat
from gateway.endpoints.handler import Exchange, endpoint, json_response
from gateway.payload import check_chat, model_of, read_json
from gateway.plan import MAX_TIER_HEADER, find_route, plan_candidates, usable
from gateway.runtime import Runtime
from gateway.snapshot import Key, Snapshot

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def gateway_headers(exchange: Exchange, snapshot: Snapshot, outcome: Outcome) -> dict[str, str]:
    overhead = time.perf_counter() - exchange.started - outcome.upstream_seconds
    return {
        "x-gateway-route": exchange.route,
        "x-gateway-target": exchange.target,
        "x-gateway-attempts": str(outcome.calls),
        "x-gateway-overhead-ms": f"{max(overhead, 0.0) * 1000:.2f}",
        "x-gateway-config": snapshot.version,
    }


@dataclass(slots=True)
class Completion:
    """An answered chat request, before it is written in any client's shape."""

    outcome: Outcome
    headers: dict[str, str]


async def complete_chat(
    runtime: Runtime, snapshot: Snapshot, key: Key | None, body: dict[str, Any], exchange: Exchange,
    max_tier: str | None = None, native: NativeCall | None = None,
) -> Completion:
    """Everything after identify and parse for an OpenAI-shaped chat body.

    Shared by every endpoint that serves chat (OpenAI's and Anthropic's), so a route,
    its limits, cache and fallbacks behave the same whatever shape the client speaks.
    `max_tier` is the request's x-gateway-max-tier header, if it sent one; `native` the
    client's own body for targets that speak its API (see `dispatch_chat`).
    """
    alias = model_of(body)
    check_chat(body)
    route = find_route(snapshot, alias, "chat")
    authorize(key, alias)
    exchange.route = alias
    exchange.key = key.name if key is not None else ""
    plan = plan_candidates(snapshot, route, body, key, runtime.circuits, runtime.latency, max_tier)
    stream = body.get("stream") is True
    outcome = await dispatch_chat(runtime, route, usable(plan), body, stream, native)
    exchange.target = outcome.target.id  # type: ignore[union-attr]
    exchange.outcome = outcome
    return Completion(outcome, gateway_headers(exchange, snapshot, outcome))


@endpoint("chat")
async def chat_completions(request: Request, exchange: Exchange) -> Response:
    runtime: Runtime = request.app.state.runtime
    snapshot = runtime.snapshot
    key = identify(snapshot, request.headers)
    body = await read_json(request, snapshot.max_body_bytes)
    done = await complete_chat(runtime, snapshot, key, body, exchange, request.headers.get(MAX_TIER_HEADER))
    if done.outcome.stream is not None:
        return StreamingResponse(
            done.outcome.stream, media_type="text/event-stream", headers={**done.headers, **SSE_HEADERS}
        )
    return json_response(done.outcome.answer, headers=done.headers)
