"""A real server speaking OpenAI's Responses API (POST /v1/responses), for the native path.

It answers `Native <model>: <last user text>` as a Response object, or as the API's
event stream, with ids and a model name of its own (the gateway must rename them).
Faults by model name: `fail-500*` answers 500; `cut*` stops its stream after two deltas;
`failed*` ends its stream with `response.failed`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.support.openai_upstream import Seen

USAGE = {"input_tokens": 21, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 5,
         "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 26}


@dataclass
class ResponsesUpstream:
    requests: list[Seen] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/responses", self.create, methods=["POST"])])

    async def create(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(Seen(request.url.path, dict(request.headers), body))
        model = str(body["model"])
        if model.startswith("fail-500"):
            return Response(orjson.dumps({"error": {"message": "native exploded", "type": "server_error"}}), 500,
                            media_type="application/json")
        text = f"Native {model}: {last_user_text(body)}"
        if body.get("stream"):
            return StreamingResponse(events(model, text), media_type="text/event-stream")
        return Response(orjson.dumps(response(model, text, "completed")), media_type="application/json")


def last_user_text(body: dict[str, Any]) -> str:
    for item in reversed(body.get("input") or []):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(body.get("input")) if isinstance(body.get("input"), str) else ""


def response(model: str, text: str, status: str) -> dict[str, Any]:
    return {
        "id": "resp_upstream_1", "object": "response", "created_at": int(time.time()), "status": status,
        "model": f"{model}-2026-01-01", "output": [
            {"id": "rs_upstream_1", "type": "reasoning", "summary": []},
            {"id": "msg_upstream_1", "type": "message", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]},
        ],
        "usage": USAGE, "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "error": None,
        "incomplete_details": None, "instructions": None, "metadata": {}, "temperature": 1.0, "top_p": 1.0,
    }


def _event(sequence: int, kind: str, **fields: Any) -> bytes:
    data = {"type": kind, "sequence_number": sequence, **fields}
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def events(model: str, text: str):
    started = {**response(model, "", "in_progress"), "output": [], "usage": None}
    yield _event(0, "response.created", response=started)
    yield _event(1, "response.in_progress", response=started)
    item = {"id": "msg_upstream_1", "type": "message", "status": "in_progress", "role": "assistant", "content": []}
    yield _event(2, "response.output_item.added", output_index=0, item=item)
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    yield _event(3, "response.content_part.added", item_id="msg_upstream_1", output_index=0, content_index=0, part=part)
    sequence = 4
    for i, word in enumerate(text.split(" ")):
        if model.startswith("cut") and i == 2:
            return
        if model.startswith("failed") and i == 2:
            failed = {**response(model, "", "failed"), "error": {"code": "server_error", "message": "it broke"}}
            yield _event(sequence, "response.failed", response=failed)
            return
        yield _event(sequence, "response.output_text.delta", item_id="msg_upstream_1", output_index=0,
                     content_index=0, delta=word if i == 0 else " " + word, logprobs=[])
        sequence += 1
    yield _event(sequence, "response.output_text.done", item_id="msg_upstream_1", output_index=0, content_index=0,
                 text=text, logprobs=[])
    yield _event(sequence + 1, "response.completed", response=response(model, text, "completed"))
