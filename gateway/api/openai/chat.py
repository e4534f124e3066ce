"""POST /v1/chat/completions: read the body, complete it, write the answer or its stream."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.api.body import read_json
from gateway.api.endpoint import Exchange, JSONAnswer, endpoint, json_response
from gateway.api.openai import stream
from gateway.api.openai.request import read_chat
from gateway.pipeline.complete import Completion, complete
from gateway.pipeline.identify import identify
from gateway.pipeline.runtime import Runtime


@endpoint("chat")
async def chat_completions(request: Request, exchange: Exchange) -> Response:
    runtime: Runtime = request.app.state.runtime
    snapshot = runtime.snapshot
    key = await identify(snapshot, request.headers, runtime.key_sets)
    model_request = read_chat(await read_json(request, snapshot.max_body_bytes), request.headers)
    done = await complete(runtime, snapshot, key, model_request, exchange)
    if done.outcome.stream is not None:
        events = stream.sse(done.outcome.stream, done.model, model_request.include_usage)
        return StreamingResponse(events, media_type="text/event-stream", headers={**done.headers, **stream.HEADERS})
    return answer_response(done)


def answer_response(done: Completion) -> Response:
    """A plain answer in OpenAI's shape: the upstream's own bytes when they already are."""
    answer = done.outcome.answer
    assert answer is not None
    if answer.raw is not None and answer.wire == stream.WIRE:
        return JSONAnswer(answer.raw, headers=done.headers)
    return json_response(answer.body, headers=done.headers)
