"""POST /v1/embeddings: the same path as chat (`completion.complete`), never streamed."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.pipeline.identify import identify
from gateway.pipeline.complete import EMBEDDING, complete
from gateway.api.endpoint import Exchange, endpoint, json_response
from gateway.api.body import read_json
from gateway.pipeline.plan import MAX_TIER_HEADER
from gateway.pipeline.runtime import Runtime


@endpoint("embeddings")
async def embeddings(request: Request, exchange: Exchange) -> Response:
    runtime: Runtime = request.app.state.runtime
    snapshot = runtime.snapshot
    key = identify(snapshot, request.headers)
    body = await read_json(request, snapshot.max_body_bytes)
    done = await complete(
        runtime, snapshot, key, body, exchange, EMBEDDING, request.headers.get(MAX_TIER_HEADER),
        cache_control=request.headers.get("cache-control"),
    )
    return json_response(done.outcome.answer, headers=done.headers)
