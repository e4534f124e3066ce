"""A real server speaking Azure OpenAI's deployments API.

The deployment in the path picks the model; `api-version` and the `api-key` header are
required. Streams open with a content-filter chunk that has no choices and close with
a filter-results chunk, as Azure's do; 429 bodies carry a string code and no type.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.support.scripted import Script, script_for, words


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, headers=headers, media_type="application/json")


@dataclass
class AzureUpstream:
    requests: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/openai/deployments/{deployment}/chat/completions", self.chat, methods=["POST"]),
            Route("/openai/deployments/{deployment}/embeddings", self.embeddings, methods=["POST"]),
        ])

    def _refuse(self, request: Request) -> Response | None:
        if not request.query_params.get("api-version"):
            return _json({"error": {"code": "404", "message": "Resource not found"}}, 404)
        if not request.headers.get("api-key"):
            return _json({"error": {"code": "401", "message": "Access denied due to invalid subscription key"}}, 401)
        return None

    async def embeddings(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(body)
        refused = self._refuse(request)
        if refused is not None:
            return refused
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return _json({"object": "list", "model": "ada", "data": [{"object": "embedding", "index": i, "embedding": [0.5, float(i)]} for i in range(len(inputs))],
                      "usage": {"prompt_tokens": 3, "total_tokens": 3}})

    async def chat(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(body)
        self.paths.append(request.url.path + "?" + request.url.query)
        refused = self._refuse(request)
        if refused is not None:
            return refused
        deployment = request.path_params["deployment"]
        fault = _fault(deployment)
        if fault is not None:
            return fault
        script = _script(body, deployment)
        if body.get("stream"):
            return StreamingResponse(_stream(deployment, script, body), media_type="text/event-stream")
        if deployment.startswith("missing"):
            return _json({"id": "chatcmpl-1", "object": "chat.completion"})
        message: dict[str, Any] = {"role": "assistant", "content": script.text}
        if script.calls:
            message["tool_calls"] = _calls(script)
        return _json({"id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()), "model": "gpt-4o-2024",
                      "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
                      "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if script.calls else "stop",
                                   "content_filter_results": {}}],
                      "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}})


def _fault(deployment: str) -> Response | None:
    if deployment.startswith("fail-429"):
        return _json({"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation have exceeded the rate limit."}}, 429, {"retry-after": "0"})
    if deployment.startswith("fail-500"):
        return _json({"error": {"code": "InternalServerError", "message": "The server had an error."}}, 500)
    if deployment.startswith("overloaded"):
        return Response("Service Unavailable", status_code=503)
    if deployment.startswith("context"):
        return _json({"error": {"message": "This model's maximum context length is 128000 tokens.", "type": "invalid_request_error",
                                "param": "messages", "code": "context_length_exceeded"}}, 400)
    if deployment.startswith("garbage"):
        return Response("<html>not json</html>", media_type="application/json")
    return None


def _script(body: dict[str, Any], deployment: str) -> Script:
    last = body["messages"][-1]
    content = last.get("content")
    text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content or [] if p["type"] == "text")
    if last["role"] == "tool":
        return script_for("Azure", deployment, "", [], text)
    return script_for("Azure", deployment, text, [t["function"]["name"] for t in body.get("tools") or []], None)


def _calls(script: Script) -> list[dict[str, Any]]:
    return [{"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": orjson.dumps(a).decode()}}
            for i, (n, a) in enumerate(script.calls)]


def _frame(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


async def _stream(deployment: str, script: Script, body: dict[str, Any]):
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": int(time.time()), "model": "gpt-4o-2024"}
    yield _frame({"id": "", "object": "", "created": 0, "model": "", "choices": [],
                  "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]})
    yield _frame({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
    for i, piece in enumerate(words(script.text)):
        if deployment.startswith("midstream") and i == 1:
            yield _frame({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "code": None}})
            return
        if deployment.startswith("cut") and i == 1:
            return
        yield _frame({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
        await asyncio.sleep(0)
    for i, call in enumerate(_calls(script)):
        arguments = call["function"]["arguments"]
        first = {"index": i, "id": call["id"], "type": "function", "function": {"name": call["function"]["name"], "arguments": ""}}
        yield _frame({**base, "choices": [{"index": 0, "delta": {"tool_calls": [first]}, "finish_reason": None}]})
        yield _frame({**base, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": i, "function": {"arguments": arguments}}]}, "finish_reason": None}]})
    yield _frame({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls" if script.calls else "stop"}]})
    yield _frame({**base, "choices": [{"index": 0, "delta": {}, "content_filter_results": {}, "finish_reason": None}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        yield _frame({**base, "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}})
    yield b"data: [DONE]\n\n"
