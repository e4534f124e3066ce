"""POST /v1/completions: OpenAI's legacy text completions, on the same routes as chat.

The body is translated to chat once and completed by the shared request path
(`completion.complete`): same routes, keys, limits, cost, cache and metrics. Targets
whose pack serves the legacy endpoint get the client's own body (see
`gateway.legacy_completions`) and their answer back as it came; every other answer, or
each frame of its stream, is written as a `text_completion`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway import legacy_completions as legacy
from gateway.auth import identify
from gateway.endpoints.chat import SSE_HEADERS
from gateway.endpoints.completion import COMPLETIONS, complete
from gateway.endpoints.handler import Exchange, endpoint, json_response
from gateway.payload import model_of, read_json
from gateway.plan import MAX_TIER_HEADER
from gateway.runtime import Runtime


@endpoint("completions")
async def create_completion(request: Request, exchange: Exchange) -> Response:
    runtime: Runtime = request.app.state.runtime
    snapshot = runtime.snapshot
    key = identify(snapshot, request.headers)
    body = await read_json(request, snapshot.max_body_bytes)
    model_of(body)
    legacy.check(body)
    chat_body = legacy.to_chat(body)
    native = legacy.NativeCompletions.of(body)
    done = await complete(
        runtime, snapshot, key, chat_body, exchange, COMPLETIONS, request.headers.get(MAX_TIER_HEADER), native
    )
    outcome = done.outcome
    if outcome.stream is not None:
        frames = outcome.stream if outcome.native_stream else legacy.text_frames(outcome.stream)
        return StreamingResponse(frames, media_type="text/event-stream", headers={**done.headers, **SSE_HEADERS})
    if outcome.native_answer is not None:
        return Response(outcome.native_answer, headers=done.headers, media_type="application/json")
    return json_response(legacy.text_answer(outcome.answer or {}), headers=done.headers)
