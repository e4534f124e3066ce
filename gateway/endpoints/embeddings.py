"""POST /v1/embeddings."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway import account, cache
from gateway.admit import admit
from gateway.auth import authorize, identify
from gateway.dispatch import dispatch_embeddings
from gateway.endpoints.chat import cache_header, from_cache, gateway_headers
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
    candidates = usable(plan)
    admission = await admit(runtime.store, snapshot, key, route, body, candidates, runtime.tasks)
    cache_key = cache.cache_key("embeddings", alias, body) if route.cache_ttl else None
    if cache_key is not None:
        exchange.cache = "miss"
        hit = await cache.lookup(runtime.store, alias, cache_key)
        if hit is not None and hit.target in snapshot.targets:
            done = await from_cache(exchange, snapshot, admission, hit, body, False)
            return json_response(done.outcome.answer, headers=done.headers)
    try:
        outcome = await dispatch_embeddings(runtime, route, candidates, body, admission.take_target)
    except BaseException:
        await account.failed(admission)
        raise
    target = outcome.target
    assert target is not None
    exchange.target = target.id
    exchange.outcome = outcome
    await account.answered(admission, target, outcome.answer or {}, body, "embedding", cache_key, route.cache_ttl)
    headers = {**gateway_headers(exchange, snapshot, outcome), **admission.headers, **cache_header(exchange)}
    return json_response(outcome.answer, headers=headers)
