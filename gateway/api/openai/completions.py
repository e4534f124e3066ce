"""POST /v1/completions: OpenAI's legacy text completions, on the same routes as chat.

The body is translated to chat once (`legacy.to_chat`) and completed by the shared
pipeline: same routes, keys, limits, cost, cache and metrics. A target whose pack
serves the legacy endpoint (its `completions:` call) gets the client's own body and its
answer or stream back as it came; every other answer, or stream, is written here as a
`text_completion`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.api.body import read_json
from gateway.api.endpoint import Exchange, JSONAnswer, endpoint, json_response
from gateway.api.openai import legacy
from gateway.api.openai.request import model_of
from gateway.api.openai.stream import HEADERS as SSE_HEADERS
from gateway.pipeline.complete import complete
from gateway.pipeline.identify import identify
from gateway.pipeline.plan import MAX_TIER_HEADER, PROVIDER_HEADER
from gateway.pipeline.request import USER_HEADER, chat_request
from gateway.pipeline.runtime import Runtime


@endpoint("completions")
async def create_completion(request: Request, exchange: Exchange) -> Response:
    runtime: Runtime = request.app.state.runtime
    snapshot = runtime.snapshot
    key = await identify(snapshot, request.headers, runtime.key_sets)
    body = await read_json(request, snapshot.max_body_bytes)
    model_of(body)
    legacy.check(body)
    model_request = chat_request(
        legacy.API, legacy.to_chat(body),
        native_body=body,
        native_only=tuple(legacy.native_only(body)),
        max_tier=request.headers.get(MAX_TIER_HEADER),
        cache_control=request.headers.get("cache-control"),
        provider=request.headers.get(PROVIDER_HEADER),
        user=request.headers.get(USER_HEADER),
    )
    done = await complete(runtime, snapshot, key, model_request, exchange)
    stream = done.outcome.stream
    if stream is not None:
        events = legacy.text_sse(stream, done.model, model_request.include_usage)
        return StreamingResponse(events, media_type="text/event-stream", headers={**done.headers, **SSE_HEADERS})
    answer = done.outcome.answer
    assert answer is not None
    if answer.raw is not None and answer.wire == legacy.API:
        return JSONAnswer(answer.raw, headers=done.headers)
    return json_response(legacy.text_answer(answer.body), headers=done.headers)
