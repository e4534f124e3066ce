"""A real OpenAI-compatible server for tests, with faults chosen by the model name.

The gateway replaces `model` with the target's upstream name, so a providers.yaml
model called `fail-500` makes this server fail for exactly the targets that name it:

  fail-500*  500 with an OpenAI error body      fail-429*  429 with Retry-After
  fail-503*  503 plain text                      hang*      never answers (read timeout)
  garbage*   200 with a body that is not JSON   context*   400 context_length_exceeded
  bad-request*  400 invalid_request_error       echo-key*  401 quoting the key it was sent
  cut*       a stream that breaks after 3 chunks   anything else: a normal answer
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


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class OpenAIUpstream:
    requests: list[Seen] = field(default_factory=list)

    def models_called(self) -> list[str]:
        return [r.body.get("model") for r in self.requests]

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
        ])

    async def _record(self, request: Request) -> dict[str, Any]:
        body = orjson.loads(await request.body())
        self.requests.append(Seen(request.url.path, dict(request.headers), body))
        return body

    async def chat(self, request: Request) -> Response:
        body = await self._record(request)
        model = body["model"]
        fault = fault_response(model, request)
        if fault is not None:
            return fault
        if model.startswith("hang"):
            await asyncio.sleep(60)
        text = f"Upstream {model}: {last_user_text(body)}"
        if body.get("stream"):
            return StreamingResponse(stream(model, text, body), media_type="text/event-stream")
        return json({
            "id": "chatcmpl-upstream", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        })

    async def embeddings(self, request: Request) -> Response:
        body = await self._record(request)
        fault = fault_response(body["model"], request)
        if fault is not None:
            return fault
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": [0.5, float(i)]} for i in range(len(inputs))]
        return json({"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": 3, "total_tokens": 3}})


def json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, headers=headers, media_type="application/json")


def error(status: int, message: str, type_: str, code: str | None, headers: dict[str, str] | None = None) -> Response:
    return json({"error": {"message": message, "type": type_, "param": None, "code": code}}, status, headers)


def fault_response(model: str, request: Request) -> Response | None:
    if model.startswith("fail-500"):
        return error(500, "upstream exploded", "server_error", None)
    if model.startswith("fail-429"):
        return error(429, "slow down", "rate_limit_error", "rate_limit_exceeded", {"retry-after": "0"})
    if model.startswith("fail-503"):
        return Response("service unavailable", status_code=503)
    if model.startswith("garbage"):
        return Response("<html>not json</html>", media_type="application/json")
    if model.startswith("context"):
        return error(400, "This model's maximum context length is 10 tokens", "invalid_request_error", "context_length_exceeded")
    if model.startswith("bad-request"):
        return error(400, "temperature is out of range", "invalid_request_error", "invalid_value")
    if model.startswith("echo-key"):
        sent = request.headers.get("authorization", "")
        return error(401, f"Incorrect API key provided: {sent.removeprefix('Bearer ')}", "invalid_request_error", "invalid_api_key")
    return None


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return ""


async def stream(model: str, text: str, body: dict[str, Any]):
    base = {"id": "chatcmpl-upstream", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
    words = text.split(" ")
    yield frame({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
    for i, word in enumerate(words):
        if model.startswith("cut") and i == 3:
            raise ConnectionResetError("the upstream stream is cut on purpose")
        piece = word if i == 0 else " " + word
        yield frame({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
        await asyncio.sleep(0)
    yield frame({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        yield frame({**base, "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": len(words), "total_tokens": 11 + len(words)}})
    yield b"data: [DONE]\n\n"


def frame(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"
