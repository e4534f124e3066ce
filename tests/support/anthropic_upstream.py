"""A real server speaking Anthropic's Messages API, for round trips through the gateway.

It checks what Anthropic itself would refuse (no `x-api-key`, no `anthropic-version`,
no `max_tokens`, a system role inside `messages`, turns that do not alternate) and
answers with the shared script, as JSON or as Anthropic's named SSE events.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.support.scripted import Script, script_for, words


def rate_limits() -> dict[str, str]:
    """Anthropic's rate-limit headers: counts, and resets as RFC 3339 moments (here 30 s ahead)."""
    reset = datetime.fromtimestamp(time.time() + 30, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    return {
        "anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": reset, "anthropic-ratelimit-tokens-limit": "40000",
        "anthropic-ratelimit-tokens-remaining": "39000", "anthropic-ratelimit-tokens-reset": reset,
    }


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, headers=headers, media_type="application/json")


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json({"type": "error", "error": {"type": kind, "message": message}}, status, headers)


@dataclass
class AnthropicUpstream:
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/messages", self.messages, methods=["POST"])])

    async def messages(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if not request.headers.get("x-api-key"):
            return _error(401, "authentication_error", "x-api-key header is required")
        if not request.headers.get("anthropic-version"):
            return _error(400, "invalid_request_error", "anthropic-version header is required")
        if not isinstance(body.get("max_tokens"), int):
            return _error(400, "invalid_request_error", "max_tokens: Field required")
        roles = [m["role"] for m in body["messages"]]
        if "system" in roles or any(a == b for a, b in zip(roles, roles[1:])):
            return _error(400, "invalid_request_error", "messages: roles must alternate between user and assistant")
        model = body["model"]
        fault = _fault(model)
        if fault is not None:
            return fault
        script = _script(body)
        if body.get("stream"):
            return StreamingResponse(_stream(model, script), media_type="text/event-stream", headers=rate_limits())
        if model.startswith("missing"):
            return _json({"id": "msg_1", "type": "message", "role": "assistant", "model": model})
        content: list[dict[str, Any]] = [{"type": "text", "text": script.text}]
        for i, (name, args) in enumerate(script.calls):
            content.append({"type": "tool_use", "id": f"toolu_{i}", "name": name, "input": args})
        return _json({
            "id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": "tool_use" if script.calls else "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 11, "output_tokens": 7, "cache_creation_input_tokens": 2, "cache_read_input_tokens": 3},
        }, headers=rate_limits())


def _fault(model: str) -> Response | None:
    if model.startswith("fail-429"):
        return _error(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit", {"retry-after": "0"})
    if model.startswith("fail-500"):
        return _error(500, "api_error", "Internal server error")
    if model.startswith("overloaded"):
        return _error(529, "overloaded_error", "Overloaded")
    if model.startswith("context"):
        return _error(400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum")
    if model.startswith("garbage"):
        return Response("<html>bad gateway</html>", media_type="application/json")
    return None


def _script(body: dict[str, Any]) -> Script:
    last = body["messages"][-1]
    question, result = "", None
    content = last["content"]
    if isinstance(content, str):
        question = content
    else:
        for block in content:
            if block["type"] == "text":
                question = block["text"]
            elif block["type"] == "tool_result":
                result = block["content"] if isinstance(block["content"], str) else str(block["content"])
    tools = [t["name"] for t in body.get("tools") or []]
    return script_for("Anthropic", body["model"], question, tools, result)


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def _stream(model: str, script: Script):
    usage = {"input_tokens": 11, "output_tokens": 1, "cache_creation_input_tokens": 2, "cache_read_input_tokens": 3}
    yield _event("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": usage}})
    yield _event("ping", {"type": "ping"})
    yield _event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    for i, piece in enumerate(words(script.text)):
        if model.startswith("midstream") and i == 1:
            yield _event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
            return
        if model.startswith("cut") and i == 1:
            return
        yield _event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}})
        await asyncio.sleep(0)
    yield _event("content_block_stop", {"type": "content_block_stop", "index": 0})
    for n, (name, args) in enumerate(script.calls, start=1):
        yield _event("content_block_start", {"type": "content_block_start", "index": n,
                                             "content_block": {"type": "tool_use", "id": f"toolu_{n - 1}", "name": name, "input": {}}})
        text = orjson.dumps(args).decode()
        for part in (text[: len(text) // 2], text[len(text) // 2:]):
            yield _event("content_block_delta", {"type": "content_block_delta", "index": n,
                                                 "delta": {"type": "input_json_delta", "partial_json": part}})
        yield _event("content_block_stop", {"type": "content_block_stop", "index": n})
    yield _event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use" if script.calls else "end_turn",
                                                                      "stop_sequence": None}, "usage": {"output_tokens": 7}})
    yield _event("message_stop", {"type": "message_stop"})
