"""POST /v1/embeddings."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.auth import authorize, identify
from gateway.dispatch import dispatch_embeddings
from gateway.endpoints.chat import gateway_headers
from gateway.endpoints.handler import Exchange, endpoint, json_response
from gateway.payload import check_embeddings, model_of, read_json
from gateway.plan import MAX_TIER_HEADER, find_route, plan_candidates, usable
from gateway.runtime import Runtime


@endpoint("embeddings")
async def embeddings(request: Request, exchange: Exchange) -> Response:
    runtime: Runtime = request.app.state.runtime
    snapshot = runtime.snapshot
    key = identify(snapshot, request.headers)
    body = await read_json(request, snapshot.max_body_bytes)
    alias = model_of(body)
    check_embeddings(body)
    route = find_route(snapshot, alias, "embedding")
    authorize(key, alias)
    exchange.route = alias
    exchange.key = key.name if key is not None else ""
    plan = plan_candidates(
        snapshot, route, body, key, runtime.circuits, runtime.latency, request.headers.get(MAX_TIER_HEADER)
    )
    outcome = await dispatch_embeddings(runtime, route, usable(plan), body)
    exchange.target = outcome.target.id  # type: ignore[union-attr]
    exchange.outcome = outcome
    return json_response(outcome.answer, headers=gateway_headers(exchange, snapshot, outcome))
