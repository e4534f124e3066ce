"""One upstream for every dialect a preset may speak, recording what reaches it.

It answers any path, in the shape the path's API uses (OpenAI's chat completions,
Anthropic's messages, Gemini's generateContent, Cohere's v2 chat, Ollama's /api/chat),
so a table of presets can be run against one server and each row checks the exact path
and auth header its request arrived with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Arrival:
    path: str
    query: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class AnyUpstream:
    arrivals: list[Arrival] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self.answer, methods=["POST"])])

    async def answer(self, request: Request) -> Response:
        raw = await request.body()
        body = orjson.loads(raw) if raw else {}
        self.arrivals.append(Arrival(request.url.path, request.url.query, dict(request.headers), body))
        return Response(orjson.dumps(_answer_for(request.url.path, body)), media_type="application/json")


def _answer_for(path: str, body: dict[str, Any]) -> dict[str, Any]:
    model = body.get("model", "")
    if path.endswith("/v1/messages") or path.endswith(":rawPredict"):
        return {
            "id": "msg_1", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": "hello from anthropic"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 2},
        }
    if path.endswith(":generateContent"):
        return {
            "candidates": [{"content": {"role": "model", "parts": [{"text": "hello from gemini"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5},
        }
    if path.endswith("/v2/chat"):
        return {
            "id": "c1", "finish_reason": "COMPLETE",
            "message": {"role": "assistant", "content": [{"type": "text", "text": "hello from cohere"}]},
            "usage": {"billed_units": {"input_tokens": 3, "output_tokens": 2}, "tokens": {"input_tokens": 3, "output_tokens": 2}},
        }
    if path.endswith("/api/chat"):
        return {
            "model": model, "message": {"role": "assistant", "content": "hello from ollama"}, "done": True,
            "done_reason": "stop", "prompt_eval_count": 3, "eval_count": 2,
        }
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello from openai"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
