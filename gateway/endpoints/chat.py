"""POST /v1/chat/completions: the request path, top to bottom."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.auth import authorize, identify
from gateway.dispatch import Outcome, dispatch_chat
from gateway.endpoints.handler import Exchange, endpoint, json_response
from gateway.payload import check_chat, model_of, read_json
from gateway.plan import find_route, plan_candidates
from gateway.runtime import Runtime
from gateway.snapshot import Snapshot

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


@endpoint("chat")
async def chat_completions(request: Request, exchange: Exchange) -> Response:
    runtime: Runtime = request.app.state.runtime
    snapshot = runtime.snapshot
    key = identify(snapshot, request.headers)
    body = await read_json(request, snapshot.max_body_bytes)
    alias = model_of(body)
    check_chat(body)
    route = find_route(snapshot, alias, "chat")
    authorize(key, alias)
    exchange.route = alias
    plan = plan_candidates(snapshot, route, body, key)
    stream = body.get("stream") is True
    outcome = await dispatch_chat(runtime.upstream, route, plan.candidates, body, stream)
    exchange.target = outcome.target.id  # type: ignore[union-attr]
    headers = gateway_headers(exchange, snapshot, outcome)
    if outcome.stream is not None:
        return StreamingResponse(outcome.stream, media_type="text/event-stream", headers={**headers, **SSE_HEADERS})
    return json_response(outcome.answer, headers=headers)
