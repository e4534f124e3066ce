"""POST /v1/embeddings: the same pipeline as chat, never streamed."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.body import read_json
from gateway.api.endpoint import Exchange, endpoint
from gateway.api.openai.chat import answer_response
from gateway.api.openai.request import read_embeddings
from gateway.pipeline.complete import complete
from gateway.pipeline.identify import identify
from gateway.pipeline.runtime import Runtime


@endpoint("embeddings")
async def embeddings(request: Request, exchange: Exchange) -> Response:
    runtime: Runtime = request.app.state.runtime
    snapshot = runtime.snapshot
    key = await identify(snapshot, request.headers, runtime.key_sets)
    model_request = read_embeddings(await read_json(request, snapshot.max_body_bytes), request.headers)
    return answer_response(await complete(runtime, snapshot, key, model_request, exchange))
