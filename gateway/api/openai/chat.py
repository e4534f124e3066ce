"""POST /v1/chat/completions: read the body, complete it, write the answer or its stream."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.pipeline.identify import identify
from gateway.pipeline.complete import CHAT, complete
from gateway.api.endpoint import Exchange, endpoint, json_response
from gateway.api.body import read_json
from gateway.pipeline.plan import MAX_TIER_HEADER
from gateway.pipeline.runtime import Runtime

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


@endpoint("chat")
async def chat_completions(request: Request, exchange: Exchange) -> Response:
    runtime: Runtime = request.app.state.runtime
    snapshot = runtime.snapshot
    key = identify(snapshot, request.headers)
    body = await read_json(request, snapshot.max_body_bytes)
    done = await complete(
        runtime, snapshot, key, body, exchange, CHAT, request.headers.get(MAX_TIER_HEADER),
        cache_control=request.headers.get("cache-control"),
    )
    if done.outcome.stream is not None:
        return StreamingResponse(
            done.outcome.stream, media_type="text/event-stream", headers={**done.headers, **SSE_HEADERS}
        )
    return json_response(done.outcome.answer, headers=done.headers)
